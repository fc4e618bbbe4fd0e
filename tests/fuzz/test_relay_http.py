"""Fuzz the relay's HTTP API (PROTOCOL §8) through its own server (RelayServer: request
handler, middlewares, every route): arbitrary methods, paths, headers (Authorization
and Content-Type included, non-UTF-8 bytes and oversized lines too) and bodies, sent
as raw bytes.

Property: every answer has a status that §8 documents (never 500) and, for an error,
the JSON error shape `{"error": {"code", "message"}}` with a documented code; and
`/healthz` answers 200 after every example.

Hypothesis drives a worker thread; the relay and the client run on the test's loop
(as in test_relay_ws.py).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
from hypothesis import example, given
from hypothesis import strategies as st

from relay_server.config import Argon2Params, Config, Limits, RateLimit
from relay_server.server import RelayServer
from tests.relay.raw_http import RawResponse, http_request, raw_request

from .profile import fuzz, run_off_loop

DOCUMENTED_STATUS = {200, 201, 204, 400, 401, 404, 405, 409, 413, 415, 429, 503}
DOCUMENTED_CODES = {
    "invalid_request", "invalid_username", "weak_password", "invalid_credentials",
    "unauthorized", "not_found", "username_taken", "method_not_allowed",
    "request_too_large", "unsupported_media_type", "rate_limited", "busy",
    "too_many_connections", "storage_unavailable",
}  # fmt: skip
PATHS = [
    b"/api/v1/relay", b"/api/v1/accounts", b"/api/v1/tokens", b"/api/v1/tokens/current",
    b"/api/v1/account/password", b"/api/v1/account", b"/api/v1/devices",
    b"/api/v1/devices/aaaa-aaaa-aaaa-aaaa", b"/healthz", b"/metrics", b"/ws/device",
    b"/ws/controller",
]  # fmt: skip
LONE_SURROGATES = b'{"username": "abc", "password": "\\ud800\\ud800xxxxxxxxxx"}'
FIELDS = ["username", "password", "current_password", "new_password"]

header_bytes = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
token_chars = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", max_size=20
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=6,
)  # fmt: skip
bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=200),
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), json_values, max_size=4).map(
        lambda d: json.dumps(d).encode()
    ),
    st.builds(
        lambda u, p: json.dumps({"username": u, "password": p}).encode(),
        st.text(max_size=70) | st.from_regex(r"[a-z0-9._-]{3,12}", fullmatch=True),
        st.text(max_size=40),
    ),
    st.just(b"x" * 17_000),  # over the 16 KiB body limit
)


@st.composite
def requests(draw: st.DrawFn, token: str) -> bytes:
    method = draw(
        st.sampled_from([b"GET", b"POST", b"DELETE", b"PUT", b"PATCH", b"HEAD", b"OPTIONS"])
        | st.from_regex(rb"[A-Z]{1,8}", fullmatch=True)
    )
    path = draw(
        st.sampled_from(PATHS)
        | st.builds(lambda b: b"/api/v1/devices/" + b, st.binary(min_size=1, max_size=20).map(
            lambda b: bytes(c for c in b if 0x21 <= c < 0x7F) or b"x"))
        | st.builds(lambda t: b"/" + t.encode(), token_chars)
    )  # fmt: skip
    headers: list[tuple[bytes, bytes]] = []
    auth = draw(
        st.sampled_from([None, b"Bearer " + token.encode(), b"Bearer "])
        | st.builds(lambda b: b"Bearer " + b, header_bytes)
        | header_bytes
    )
    if auth is not None:
        headers.append((b"Authorization", auth))
    content_type = draw(
        st.sampled_from(
            [None, b"application/json", b"application/json; charset=utf-8", b"text/plain"]
        )
        | header_bytes
    )
    if content_type is not None:
        headers.append((b"Content-Type", content_type))
    headers += draw(
        st.lists(
            st.tuples(st.from_regex(rb"X-[A-Za-z0-9-]{1,10}", fullmatch=True), header_bytes),
            max_size=3,
        )
    )
    if draw(st.booleans()) and draw(st.integers(0, 9)) == 0:
        headers.append((b"X-Huge", b"a" * draw(st.integers(8_000, 100_000))))
    return http_request(method, path, headers, draw(bodies))


def check(request: bytes, resp: RawResponse) -> None:
    assert resp.status in DOCUMENTED_STATUS, (resp.status, resp.body[:200], request[:200])
    if request.startswith(b"HEAD ") or resp.status == 204:
        return
    assert resp.headers.get("content-type", "").startswith(
        ("application/json", "text/plain; version=0.0.4")  # /metrics is never public
    ), resp
    data = json.loads(resp.body)
    if resp.status >= 400:
        assert set(data) == {"error"}, data
        assert set(data["error"]) == {"code", "message"}, data
        assert data["error"]["code"] in DOCUMENTED_CODES, data
        assert isinstance(data["error"]["message"], str)


async def _token(http: aiohttp.ClientSession, base: str) -> str:
    body = {"username": "fuzzed", "password": "a perfectly fine passphrase"}
    async with http.post(f"{base}/api/v1/accounts", json=body) as r:
        assert r.status == 201
    async with http.post(f"{base}/api/v1/tokens", json=body) as r:
        return str((await r.json())["token"])


async def test_relay_http_api_answers_every_request_as_documented(tmp_path: Path) -> None:
    generous = RateLimit(1000, 1000)
    config = Config(
        host="127.0.0.1", port=0, db_path=tmp_path / "relay.sqlite3",
        key_file=tmp_path / "relay.key", plain_http=True, metrics_host=None,
        request_timeout_s=1.0,
        password_hash=Argon2Params(time_cost=1, memory_kib=1024, parallelism=1),
        limits=Limits(login_per_address=generous, register_per_address=generous,
                      password_check_per_address=generous),
    )  # fmt: skip
    server = RelayServer(config)
    await server.setup()
    await server.start()
    loop = asyncio.get_running_loop()
    http = aiohttp.ClientSession()
    try:
        base = f"http://127.0.0.1:{server.port}"
        token = await _token(http, base)

        async def one_request(request: bytes) -> None:
            check(request, await raw_request(server.port, request))
            async with http.get(base + "/healthz") as r:
                assert r.status == 200, await r.text()

        @fuzz(0.5)
        @given(request=requests(token))
        @example(request=http_request(b"GET", b"/api/v1/devices",
                                      [(b"Authorization", b"Bearer \xff\xfe")]))  # fmt: skip
        @example(request=http_request(b"GET", b"/api/v1/relay", [(b"X-Big", b"a" * 100_000)]))
        @example(request=http_request(b"POST", b"/api/v1/accounts",
                                      [(b"Content-Type", b"text/plain")], b"{}"))  # fmt: skip
        @example(request=http_request(b"POST", b"/api/v1/accounts",
                                      [(b"Content-Type", b"application/json")],
                                      LONE_SURROGATES))  # fmt: skip
        def one(request: bytes) -> None:
            asyncio.run_coroutine_threadsafe(one_request(request), loop).result(timeout=30)

        await run_off_loop(one, "fuzz-relay-http")
    finally:
        await http.close()
        await server.cleanup()
