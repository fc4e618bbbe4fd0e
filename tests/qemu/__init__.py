"""The Cortex-M3 suite: firmware crypto and protocol modules on MicroPython's QEMU port.

scripts/setup-qemu builds ports/qemu (BOARD=MPS2_AN385) with the modules listed in
tests/qemu/manifest.py frozen in; the `qemu_firmware` fixture re-runs it, so an edited
firmware module is rebuilt (seconds) before it is tested. Each test runs one script
(tests/qemu/mpy/) on a fresh QEMU board and on the unix port with the same input
and requires identical output. Run: `.venv/bin/python -m pytest -m qemu tests/qemu`.
Deterministic costs: `.venv/bin/python benchmarks/qemu_bench.py`.
"""
