"""Helpers of benchmarks/soak.py: the device simulator and the firmware launcher."""
