# HomeSeal device entry point.
#
# On a board this file runs at boot with the defaults: config /config.json,
# state directory /state, the real pins (homeseal.hw).
# On the unix port (tests, demo, scripts/simdevice):
#   micropython main.py --config CONFIG --state DIR [--control 127.0.0.1:PORT]
#                       [--window-seconds N] [--mem-stats]
# runs the same firmware with simulated pins (homeseal.hw_sim); --control
# opens the pin control socket (firmware/README.md).
import sys

import asyncio


def _args(argv):
    unix = sys.platform in ("linux", "darwin")
    opts = {"config": "config.json" if unix else "/config.json", "state": "state" if unix else "/state"}
    opts["control"] = None
    opts["window"] = None
    opts["mem"] = False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--mem-stats":
            opts["mem"] = True
            i += 1
            continue
        v = argv[i + 1] if i + 1 < len(argv) else None
        if a in ("--config", "--state", "--control", "--window-seconds") and v is None:
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
        else:
            raise SystemExit("main.py: unknown argument " + a)
        i += 2
    return unix, opts


def _fatal(msg):
    print("homeseal: " + msg)
    sys.exit(2)


def main(argv):
    unix, opts = _args(argv)
    if unix:
        from homeseal import hw_sim as hw
    else:
        from homeseal import hw
    import gc

    # The websocket buffers first, while the heap is still one piece; then the
    # config, whose parser is unloaded before the rest of the firmware loads.
    from homeseal import ws

    bufs = ws.Buffers(4096)
    from homeseal.errors import ConfigError

    try:
        from homeseal import config

        cfg = config.load(opts["config"])
    except ConfigError as e:
        _fatal("config error: %s" % e)
    del config
    sys.modules.pop("homeseal.config", None)
    try:
        delattr(sys.modules["homeseal"], "config")
    except AttributeError:
        pass
    gc.collect()

    from homeseal import device, memstat, store

    memstat.enabled = opts["mem"]
    try:
        st = store.Store(opts["state"])
        dev = device.Device(cfg, st, hw, window_ms=opts["window"] or device.WINDOW_MS, bufs=bufs)
    except ConfigError as e:
        _fatal("config error: %s" % e)
    except store.StoreError as e:
        _fatal("state error: %s" % e)
    gc.collect()
    asyncio.run(dev.run(opts["control"]))


main(sys.argv[1:])
