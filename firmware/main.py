# HomeSeal device entry point.
#
# On a board this file runs at boot with the defaults: config /config.json,
# state directory /state, the real pins (homeseal.hw).
# On the unix port (tests, demo, scripts/simdevice):
#   micropython main.py --config CONFIG --state DIR [--control 127.0.0.1:PORT]
#                       [--window-seconds N] [--attempt-seconds N]
#                       [--handshake-burst N] [--mem-stats]
# runs the same firmware with simulated pins (homeseal.hw_sim); --control
# opens the pin control socket (firmware/README.md); --window-seconds and
# --attempt-seconds shorten the pairing window and an attempt's slot, and
# --handshake-burst raises the HANDSHAKE1 budget (tests whose subject is not
# that budget; the unix port only). There the state files
# (the private key, the pinned controller) are created 0600 and the state
# directory 0700: the umask is set to 077 before anything is written.
import asyncio
import sys

_VALUED = (
    "--config",
    "--state",
    "--control",
    "--window-seconds",
    "--attempt-seconds",
    "--handshake-burst",
)


def _args(argv):
    unix = sys.platform in ("linux", "darwin")
    opts = {
        "config": "config.json" if unix else "/config.json",
        "state": "state" if unix else "/state",
    }
    opts["control"] = None
    opts["window"] = None
    opts["attempt"] = 0
    opts["burst"] = 0
    opts["mem"] = False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--mem-stats":
            opts["mem"] = True
            i += 1
            continue
        v = argv[i + 1] if i + 1 < len(argv) else None
        if v is None and a in _VALUED:
            raise SystemExit("main.py: %s needs a value" % a)
        if a == "--config":
            opts["config"] = v
        elif a == "--state":
            opts["state"] = v
        elif a == "--control":
            host, _, port = v.rpartition(":")
            opts["control"] = (host or "127.0.0.1", int(port))
        elif a == "--window-seconds":
            opts["window"] = int(v) * 1000
        elif a == "--attempt-seconds":
            opts["attempt"] = int(v) * 1000
        elif a == "--handshake-burst" and unix:
            opts["burst"] = int(v)
        else:
            raise SystemExit("main.py: unknown argument " + a)
        i += 2
    return unix, opts


def _fatal(msg):
    print("homeseal: " + msg)
    sys.exit(2)


def _private_files():
    """umask 077 through libc (the unix port's os has no umask): state files
    are born 0600. Without ffi (a build without it) the caller's umask holds:
    scripts/simdevice sets 077 too."""
    try:
        import ffi

        ffi.open(None).func("i", "umask", "i")(0o077)
    except (ImportError, OSError, AttributeError):
        print("homeseal: cannot set umask 077: state files get the caller's umask")


def main(argv):
    unix, opts = _args(argv)
    if unix:
        _private_files()
        from homeseal import hw_sim as hw
    else:
        from homeseal import hw
    import gc

    # The websocket buffers first, while the heap is still one piece; then the
    # config, whose parser is unloaded before the rest of the firmware loads.
    from homeseal import ws

    bufs = ws.Buffers(4096)
    from homeseal import unload
    from homeseal.errors import ConfigError

    try:
        from homeseal import config

        cfg = config.load(opts["config"])
    except ConfigError as e:
        _fatal("config error: %s" % e)
    del config
    unload("config")

    from homeseal import device, memstat, session, store

    memstat.enabled = opts["mem"]
    if opts["burst"]:
        session.HANDSHAKE_BURST = opts["burst"]
    try:
        st = store.Store(opts["state"])
        dev = device.Device(
            cfg, st, hw, window_ms=opts["window"], bufs=bufs, attempt_ms=opts["attempt"]
        )
    except ConfigError as e:
        _fatal("config error: %s" % e)
    except store.StoreError as e:
        _fatal("state error: %s" % e)
    gc.collect()
    try:
        asyncio.run(dev.run(opts["control"]))
    except Exception as e:  # the main task's own: restart as for any other task's
        sys.print_exception(e)
        hw.restart("unexpected error: %r" % e)


main(sys.argv[1:])
