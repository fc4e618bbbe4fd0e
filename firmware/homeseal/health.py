# The device's own health figures, for the sensors with a health source
# (firmware/README.md): uptime, free heap, relay reconnects. Counted where
# they happen (relay.py adds to `connects`) and read by entities.py; a
# support module, so that the two never import each other. The Wi-Fi signal
# is the hardware layer's (hw.wifi_signal).
import gc
import time

connects = 0  # successful relay authentications since boot (relay.py)

# Uptime in whole seconds plus the milliseconds not yet counted, accumulated
# from tick differences: ticks_ms() wraps (and on the unix port does not start
# at 0), and small ints stay small for decades this way.
_s = 0
_ms = 0
_last = time.ticks_ms()


def uptime():
    """Seconds since the firmware started. Exact as long as it is read at least
    every few days (a sensor reads it every `interval` s, at most 3600)."""
    global _s, _ms, _last  # noqa: PLW0603  (the module's one clock)
    now = time.ticks_ms()
    _ms += time.ticks_diff(now, _last)
    _last = now
    if _ms >= 1000:
        _s += _ms // 1000
        _ms %= 1000
    return _s


def free_heap():
    """Free bytes on the MicroPython heap."""
    return gc.mem_free()


def reconnects():
    """How often the relay connection was established again since boot."""
    return connects - 1 if connects > 1 else 0
