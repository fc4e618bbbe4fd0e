# Frozen into the QEMU Cortex-M3 firmware by scripts/setup-qemu.
# MicroPython's manifest runner executes this with the current directory set
# to this file's directory. The board's heap is too small to compile the crypto
# modules from source, and frozen bytecode runs from flash like on a board.
import os

# Crypto and protocol modules of the firmware; each one is frozen once it exists.
MODULES = (
    "__init__",
    "ct",
    "kdf",
    "x25519",
    "chachapoly",
    "p256",
    "spake2plus",
    "noise",
    "messages",
    "envelope",
    "ids",
)

FIRMWARE = os.path.join("..", "..", "firmware")
present = tuple(
    f"homeseal/{name}.py"
    for name in MODULES
    if os.path.isfile(os.path.join(FIRMWARE, "homeseal", name + ".py"))
)
if present:
    freeze(FIRMWARE, present)  # noqa: F821 (provided by the manifest runner)

# The harness's own helpers (deterministic cycle counter, port probes).
freeze("frozen")  # noqa: F821
