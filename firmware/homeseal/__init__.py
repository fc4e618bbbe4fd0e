# The HomeSeal device firmware (firmware/README.md).

# The firmware version, written here only: firmware/manifest.py reads it for
# the package metadata, and the device reports it in `describe` (PROTOCOL.md §7).
__version__ = "0.1.0"


def unload(*names):
    """Forget modules of this package (homeseal.NAME) so that the garbage
    collector can take their code and tables: for modules that only some
    moments need (the config parser at boot, an open pairing window, ...)."""
    import gc
    import sys

    pkg = sys.modules.get("homeseal")
    for name in names:
        if sys.modules.pop("homeseal." + name, None) is not None and pkg is not None:
            try:
                delattr(pkg, name)
            except AttributeError:
                pass
    gc.collect()
