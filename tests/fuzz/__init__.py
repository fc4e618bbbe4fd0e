"""Fuzzing (hypothesis) of every parser that takes bytes from the network: the relay's
envelope, AUTH_RESPONSE and websocket endpoints; the controller's envelope, application
messages, pairing messages and state machine, session and per-device link; the
firmware's envelope, messages, HANDSHAKE1, AUTH_CHALLENGE, websocket reader and pairing
(under CPython, then replayed on the MicroPython unix port).

CI: ~200 examples per target. Longer: `HOMESEAL_FUZZ_EXAMPLES=20000 pytest tests/fuzz`
or `pytest tests/fuzz --fuzz-long`.
"""
