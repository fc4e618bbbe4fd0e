"""Attacks against the running system: the real relay process, the real firmware on the
MicroPython unix port, and a controller built from the integration's client classes,
with an active attacker (proxy.Mitm) on the device's ws:// link or in the relay's place.
"""
