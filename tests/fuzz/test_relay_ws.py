"""Fuzz the relay's websocket endpoints: random frames (and text messages) from devices
and controllers, before and after authentication, against the relay's own server
(RelayServer: its request handler and listener) with a real SQLite file.

Property: the relay answers with frames or closes with a §2.1 code, never anything
else, and keeps serving a well-behaved controller/device pair (a SESSION frame
round-trips between them after every example).

Hypothesis drives a worker thread; the relay and the clients run on the test's loop
(coroutines are handed over with run_coroutine_threadsafe).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from hypothesis import given
from hypothesis import strategies as st

from relay_server.config import Argon2Params, Config, Limits, RateLimit
from relay_server.server import RelayServer
from testbed.endpoints import (
    ROLE_CONTROLLER,
    ROLE_DEVICE,
    SESSION,
    Endpoint,
    Link,
    connect,
    open_ws,
    pair_and_claim,
)

from .profile import fuzz, run_off_loop
from .strategies import frames

ALLOWED_CLOSE = {1000, 1009, 4000, 4001, 4005}
GENEROUS = RateLimit(1000, 1000)

fuzz_messages = st.lists(
    frames()
    | st.binary(max_size=40)
    | st.text(max_size=20)
    | st.binary(min_size=4097, max_size=4200),
    min_size=1,
    max_size=5,
)


async def _account(http: aiohttp.ClientSession, base: str, name: str) -> str:
    password = "fuzzing is fun " + name
    async with http.post(
        f"{base}/api/v1/accounts", json={"username": name, "password": password}
    ) as r:
        assert r.status == 201, await r.text()
    async with http.post(
        f"{base}/api/v1/tokens", json={"username": name, "password": password}
    ) as r:
        assert r.status == 201, await r.text()
        return str((await r.json())["token"])


async def _attack(  # noqa: PLR0917 - one call site, keyword-free by design
    http: aiohttp.ClientSession, base: str, token: str, role: int, authenticate: bool,
    messages: list[bytes | str],
) -> None:  # fmt: skip
    endpoint = Endpoint(role)
    path = "/ws/device" if role == ROLE_DEVICE else "/ws/controller"
    tok = token if role == ROLE_CONTROLLER else None
    link: Link = await (
        connect(http, base, endpoint, tok) if authenticate else open_ws(http, base + path, tok)
    )
    ws = link.ws
    try:
        for m in messages:
            if ws.closed:
                break
            if isinstance(m, str):
                await ws.send_str(m)
            else:
                await ws.send_bytes(m)
        # Read what comes back until the relay closes or goes quiet.
        while True:
            try:
                msg = await ws.receive(timeout=0.15 if authenticate else 1.0)
            except TimeoutError:
                assert authenticate, "the relay kept an unauthenticated connection open"
                return
            if msg.type is aiohttp.WSMsgType.BINARY:
                assert len(msg.data) >= 11
                assert msg.data[0] in (
                    0x10,
                    0x11,
                    0x20,
                    0x31,
                    0x33,
                    0x40,
                    0x41,
                )
                continue
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
            code = msg.data if msg.type is aiohttp.WSMsgType.CLOSE else ws.close_code
            assert code in ALLOWED_CLOSE, (code, msg.extra, messages)
            return
    finally:
        await ws.close()


async def _roundtrip(ctl: Link, ctl_id: bytes, dev: Link, dev_id: bytes, n: int) -> None:
    """A SESSION frame each way between the well-behaved pair. Strict: nothing the
    fuzzer sent (from another account, or unauthenticated) may have reached them, so
    the next frame each receives is the other's."""
    payload = b"\x03well-behaved " + n.to_bytes(4, "big")
    await ctl.send(SESSION, dev_id, payload)
    frame = await dev.recv()
    assert (frame.type, frame.peer, frame.payload) == (SESSION, ctl_id, payload), frame
    await dev.send(SESSION, ctl_id, payload[::-1])
    frame = await ctl.recv()
    assert (frame.type, frame.peer, frame.payload) == (SESSION, dev_id, payload[::-1]), frame


async def test_relay_websockets_survive_random_frames(tmp_path: Path) -> None:
    config = Config(
        host="127.0.0.1", port=0, db_path=tmp_path / "relay.sqlite3",
        key_file=tmp_path / "relay.key", plain_http=True, metrics_host=None,
        password_hash=Argon2Params(time_cost=1, memory_kib=1024, parallelism=1),
        auth_timeout_s=2.0,
        limits=Limits(login_per_address=GENEROUS, login_per_user=GENEROUS,
                      register_per_address=GENEROUS, register_per_user=GENEROUS),
    )  # fmt: skip
    server = RelayServer(config)
    await server.setup()
    await server.start()
    loop = asyncio.get_running_loop()
    http = aiohttp.ClientSession()
    try:
        base = f"http://127.0.0.1:{server.port}"
        ws_base = base.replace("http://", "ws://")
        good_token = await _account(http, base, "wellbehaved")
        fuzz_token = await _account(http, base, "fuzzer")
        good_ctl, good_dev = Endpoint(ROLE_CONTROLLER), Endpoint(ROLE_DEVICE)
        ctl = await connect(http, ws_base, good_ctl, good_token)
        dev = await connect(http, ws_base, good_dev)
        await pair_and_claim(ctl, good_ctl.id, dev, good_dev.id)
        counter = iter(range(10**9))

        @fuzz(0.25)
        @given(
            role=st.sampled_from([ROLE_DEVICE, ROLE_CONTROLLER]),
            authenticate=st.booleans(),
            messages=fuzz_messages,
            aim_at_good_device=st.booleans(),
        )
        def one(
            role: int, authenticate: bool, messages: list[bytes | str], aim_at_good_device: bool
        ) -> None:
            if aim_at_good_device:
                # Frames addressed to the well-behaved pair: must be refused, not delivered.
                messages = [
                    m[:1] + good_dev.id + m[11:] if isinstance(m, bytes) and len(m) >= 11 else m
                    for m in messages
                ]
            coro = _attack(http, ws_base, fuzz_token, role, authenticate, messages)
            asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)
            check = _roundtrip(ctl, good_ctl.id, dev, good_dev.id, next(counter))
            asyncio.run_coroutine_threadsafe(check, loop).result(timeout=30)

        await run_off_loop(one, "fuzz-relay-ws")
        await ctl.close()
        await dev.close()
    finally:
        await http.close()
        await server.cleanup()
