"""Interop: the controller's CPython code against the firmware's real MicroPython modules."""
