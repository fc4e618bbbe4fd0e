# The hardware layer on a real board (ESP32, Pico W): one small class per
# kind of pin use. hw_sim.py has the same classes for the unix port; nothing
# above this layer can tell which one it has.
import sys
import time

import machine


class Output:
    """A GPIO output (switch relay, button pulse)."""

    def __init__(self, pin, inverted=False):
        self._inv = inverted
        self._p = machine.Pin(pin, machine.Pin.OUT)
        self.set(False)

    def set(self, on):
        self._p.value(1 if bool(on) != self._inv else 0)


class Pwm:
    """A PWM output: a dimmable light (set: level 0..255), a fan, a servo (duty)."""

    def __init__(self, pin, freq, inverted=False):
        self._inv = inverted
        self._pwm = machine.PWM(machine.Pin(pin), freq=freq)
        self.set(0)

    def set(self, level):
        self.duty(level * 257)  # 255 -> 65535

    def duty(self, d):
        """The duty cycle, 0..65535."""
        self._pwm.duty_u16(65535 - d if self._inv else d)


class Adc:
    """An analog input; read() is the raw 16-bit value."""

    def __init__(self, pin):
        self._a = machine.ADC(machine.Pin(pin))

    def read(self):
        return self._a.read_u16()


class InternalTemp:
    """The microcontroller's own temperature sensor, in °C."""

    def __init__(self):
        self._adc = None
        if sys.platform == "rp2":
            self._adc = machine.ADC(4)

    def read(self):
        if self._adc is not None:
            # RP2040 datasheet §4.9.5: 27 °C at 0.706 V, -1.721 mV/°C.
            v = self._adc.read_u16() * 3.3 / 65535
            return 27 - (v - 0.706) / 0.001721
        import esp32

        if hasattr(esp32, "mcu_temperature"):
            return esp32.mcu_temperature()
        return (esp32.raw_temperature() - 32) / 1.8


class Input:
    """A GPIO input with the internal pull-up; value() is the raw level."""

    def __init__(self, pin):
        self._p = machine.Pin(pin, machine.Pin.IN, machine.Pin.PULL_UP)

    def value(self):
        return self._p.value()


def ip_address():
    """The station interface's address, or None while it has none."""
    import network

    wlan = network.WLAN(network.STA_IF)
    return wlan.ifconfig()[0] if wlan.isconnected() else None


def wifi_signal():
    """The station link's signal in dBm, or None without a link (or on a board
    whose network driver does not report it)."""
    try:
        import network

        wlan = network.WLAN(network.STA_IF)
        if not wlan.isconnected():
            return None
        return wlan.status("rssi")
    except (ImportError, AttributeError, ValueError, TypeError, OSError):
        return None


_CAUSES = (
    ("PWRON_RESET", "power_on"),
    ("HARD_RESET", "hard_reset"),
    ("WDT_RESET", "watchdog"),
    ("DEEPSLEEP_RESET", "deep_sleep"),
    ("SOFT_RESET", "soft_reset"),
)


def restart_reason():
    """Why the board last started, from machine.reset_cause()."""
    cause = getattr(machine, "reset_cause", None)
    if cause is None:
        return "unknown"
    c = cause()
    for name, reason in _CAUSES:
        if getattr(machine, name, None) == c:
            return reason
    return "unknown"


class Watchdog:
    """The board's hardware watchdog: it resets the board unless fed within
    `timeout_ms`. Once started it cannot be stopped."""

    def __init__(self, timeout_ms):
        self._wdt = machine.WDT(timeout=timeout_ms)

    def feed(self):
        self._wdt.feed()


def restart(reason):
    """Restart the board now (after an unexpected error: `reason` is for the log)."""
    print("homeseal: restarting (%s)" % reason)
    time.sleep_ms(100)  # let the line reach the console
    machine.reset()


def power_on_boot():
    """True when this boot followed a power-on or the reset pin; False after a
    watchdog, a crash or a soft reset (which nobody needs to be present for)."""
    cause = getattr(machine, "reset_cause", None)
    if cause is None:
        return True
    return cause() in (machine.PWRON_RESET, machine.HARD_RESET)


async def network_up(wifi, log):
    """Join the configured Wi-Fi (if any) and wait until it has an address."""
    if not wifi:
        return
    import asyncio

    import network

    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if wlan.isconnected():
        return
    log("wifi connecting to " + wifi["ssid"])
    wlan.connect(wifi["ssid"], wifi["password"])
    t0 = time.ticks_ms()
    while not wlan.isconnected():
        if time.ticks_diff(time.ticks_ms(), t0) > 30000:
            wlan.disconnect()
            raise OSError("wifi: no connection after 30 s")
        await asyncio.sleep_ms(250)
    log("wifi up " + wlan.ifconfig()[0])


def start_control(host, port):
    return None
