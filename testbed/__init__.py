"""The testbed: HomeSeal's parts as real processes, for the tests, `scripts/demo` and the
benchmarks. One module per job, each written once:

    paths       where the checkout, the firmware, the cache and its binaries are
    ports       free_port, port_in_use, wait_port
    process     ChildProcess (log, own session, wait_log, freeze, kill, stop), wait_until
    tls         make_tls: a CA and a server certificate signed by it
    tls_pipe    a TCP pipe adding or removing TLS (`python -m testbed.tls_pipe`)
    relay       RelayProcess (`python -m relay_server`), ProxiedRelay (behind a TLS pipe)
    firmware    DeviceProcess: firmware/main.py on the unix port; provisioning
    accounts    a relay account over HTTP
    endpoints   test-side relay endpoints: Endpoint, Link, Controller, SessionClient
    wsclient    a lean websocket relay client for the benchmarks
    hass        a real `hass` process and its REST/websocket API
    ha_flows    the integration's flows in an in-process Home Assistant
    system      relay + simulated device (wss://) + Home Assistant (demo, end to end)

Nothing is imported here: `python -m testbed.tls_pipe` stays light, and the modules
that need Home Assistant load it only when used.
"""
