"""Libraries the integration carries with it (HACS installs this folder alone).

`homeseal_protocol/` is a generated copy of the repository's top-level
`homeseal_protocol/` package (`python -m tools.vendor_protocol`); never edit it here.
"""
