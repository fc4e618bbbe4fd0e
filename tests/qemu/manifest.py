# Frozen into the QEMU Cortex-M3 firmware by scripts/setup-qemu
# (FROZEN_MANIFEST). MicroPython's manifest runner executes this with the
# current directory set to this file's directory. The board's heap is too
# small to compile the crypto modules from source, and frozen bytecode runs
# from flash like on a board.

# The firmware's protocol core, as firmware/manifest.py (the one list of the
# firmware's modules) describes it; require() gives it its own metadata.
add_library("homeseal", "../../firmware")
require("firmware", library="homeseal", core_only=True)

# The harness's own helpers (deterministic cycle counter, port probes).
freeze("frozen")
