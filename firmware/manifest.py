# The firmware as a MicroPython package, in micropython-lib's manifest format
# (MicroPython's docs/reference/manifest.rst): the one list of what the
# firmware is, read with MicroPython's own tools/manifestfile.py by
#   - scripts/deploy (compile mode: mpy-cross for the board, then mpremote),
#   - the QEMU Cortex-M3 build (tests/qemu/manifest.py includes it to freeze
#     the protocol core), and benchmarks/firmware_bench.py (the unix port).
#
# Options, as include("firmware/manifest.py", hw="sim") or from a caller of
# manifestfile.py:
#   hw         "board" (default): homeseal/hw.py, machine pins on an ESP32 /
#              Pico W; "sim": homeseal/hw_sim.py, the unix port's simulated pins
#   core_only  only the protocol core: crypto, Noise and the wire codecs, which
#              need no clock, no asyncio and no I/O (what the QEMU build freezes)
#
# The groups below follow firmware/README.md's layout table; a module in
# homeseal/ that no group lists is a test failure (tests/firmware/test_layout.py).


def _version():
    # __version__ is written once, in homeseal/__init__.py (the device reports
    # it in `describe`); manifest.py runs with this directory as its cwd.
    with open("homeseal/__init__.py") as f:
        for line in f:
            if line.startswith("__version__ = "):
                return line.split("=", 1)[1].strip().strip('"')
    raise ValueError("no __version__ in homeseal/__init__.py")


metadata(
    description="HomeSeal device firmware: relay link, SPAKE2+ pairing, Noise KK sessions,"
    " GPIO entities",
    version=_version(),
)
options.defaults(hw="board", core_only=False)

# The protocol core: the package, the crypto primitives and Noise, the relay
# envelope, endpoint ids and application messages.
package(
    "homeseal",
    files=(
        "__init__.py",
        "ct.py",
        "kdf.py",
        "x25519.py",
        "chachapoly.py",
        "p256.py",
        "ecdsa.py",
        "spake2plus.py",
        "noise.py",
        "noise_patterns.py",
        "envelope.py",
        "ids.py",
        "messages.py",
    ),
)

if not options.core_only:
    package(
        "homeseal",
        files=(
            # the relay link: websocket client, relay auth
            "ws.py",
            "relay.py",
            # pairing, sessions, entities (actuators: only with a colour light, a
            # fan or a cover), the device glue (bootstate: at boot only)
            "pairing.py",
            "pairing_window.py",
            "session.py",
            "entities.py",
            "actuators.py",
            "device.py",
            "bootstate.py",
            # state files, config validation, the benchmark's memory probe, the
            # health sensors' figures
            "store.py",
            "errors.py",
            "config.py",
            "memstat.py",
            "health.py",
        ),
    )
    # The hardware layer: one of the twins.
    package("homeseal", files=("hw_sim.py",) if options.hw == "sim" else ("hw.py",))
    # The entry point, run at boot.
    module("main.py")
