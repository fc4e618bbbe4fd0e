"""The relay's fixes for the findings of the 2026-12 review (docs/SECURITY.md), each test
named after its finding: M1, L1 (relay part), I1, I4, R1, R2, R3, R4, against the
relay's own server in this process. The real-process ones (TLS deadlines, the metrics
listener of `python -m relay_server`, file modes) are in test_hardening_process.py."""

from __future__ import annotations

import asyncio
import gc
import logging
import statistics
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from relay_server.accounts import AccountService, ServiceError
from relay_server.app_keys import ACCOUNTS, GUARD, HASH_POOL
from relay_server.config import Argon2Params, RateLimit
from relay_server.passwords import hash_scrypt_legacy
from relay_server.ratelimit import ENTRY_OVERHEAD, KeyedLimiter
from testbed.endpoints import (
    AUTH_RESPONSE,
    ERROR,
    PAIR_START,
    ROLE_CONTROLLER,
    ROLE_DEVICE,
    SESSION,
    Endpoint,
    connect,
    open_ws,
)

from .conftest import PASSWORD, Relay, RelayFactory, claimed_pair, eventually
from .raw_http import RawResponse, http_request, raw_request

JSON = {"Content-Type": "application/json"}
OTHER_ADDRESS = "127.0.0.2"  # a second client address on the loopback interface
RATE_LIMITED = bytes((3,))  # ERROR code 3 (§3.1)


@asynccontextmanager
async def session_from(address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client whose connections come from `address` (127.0.0.0/8 is all local)."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        yield http


async def post_json(
    http: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    token: str | None = None,
    method: str = "POST",
) -> tuple[int, Any, aiohttp.ClientResponse]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, json=body, headers=headers) as resp:
        return resp.status, await resp.json() if resp.content_length else None, resp


def assert_error(status: int, data: Any, expected_status: int, code: str) -> None:
    assert status == expected_status, (status, data)
    assert data["error"]["code"] == code, data
    assert isinstance(data["error"]["message"], str)


# --- M1: every password check is rate limited; the hash pool is bounded ----------------


async def test_m1_change_password_is_rate_limited(relay_factory: RelayFactory) -> None:
    relay = await relay_factory(limits={"password_check_per_account": RateLimit(1 / 60, 3)})
    token = await relay.account("mallory")
    path = "/api/v1/account/password"
    wrong = {"current_password": "not the password", "new_password": "another fine one!"}
    for _ in range(3):
        status, data, _ = await relay.request("POST", path, token, json=wrong)
        assert_error(status, data, 401, "invalid_credentials")
    status, data, resp = await relay.request("POST", path, token, json=wrong)
    assert_error(status, data, 429, "rate_limited")
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    # The right password is refused too while limited, and delete_account shares the
    # account's budget; another account is not affected.
    right = {"current_password": PASSWORD, "new_password": "another fine one!"}
    status, data, _ = await relay.request("POST", path, token, json=right)
    assert_error(status, data, 429, "rate_limited")
    status, data, _ = await relay.request(
        "DELETE", "/api/v1/account", token, json={"password": PASSWORD}
    )
    assert_error(status, data, 429, "rate_limited")
    other = await relay.account("trent")
    status, _, _ = await relay.request("POST", path, other, json=right)
    assert status == 204


async def test_m1_delete_account_is_rate_limited(relay_factory: RelayFactory) -> None:
    relay = await relay_factory(limits={"password_check_per_account": RateLimit(1 / 60, 2)})
    token = await relay.account("victor")
    for _ in range(2):
        status, data, _ = await relay.request(
            "DELETE", "/api/v1/account", token, json={"password": "not the password"}
        )
        assert_error(status, data, 401, "invalid_credentials")
    status, data, resp = await relay.request(
        "DELETE", "/api/v1/account", token, json={"password": PASSWORD}
    )
    assert_error(status, data, 429, "rate_limited")
    assert int(resp.headers["Retry-After"]) >= 1
    status, _, _ = await relay.request("GET", "/api/v1/devices", token)
    assert status == 200  # not deleted


async def test_m1_password_checks_are_rate_limited_per_address(
    relay_factory: RelayFactory,
) -> None:
    relay = await relay_factory(limits={"password_check_per_address": RateLimit(1 / 60, 3)})
    tokens = [await relay.account(f"addr{i}") for i in range(4)]
    path = "/api/v1/account/password"
    wrong = {"current_password": "not the password", "new_password": "another fine one!"}
    for token in tokens[:3]:
        status, _, _ = await relay.request("POST", path, token, json=wrong)
        assert status == 401
    # A fourth account from the same address: the address's budget is spent.
    status, data, resp = await relay.request(
        "DELETE", "/api/v1/account", tokens[3], json={"password": "wrong again!"}
    )
    assert_error(status, data, 429, "rate_limited")
    assert "Retry-After" in resp.headers
    # Another address still gets its checks.
    async with session_from(OTHER_ADDRESS) as http:
        status, data, _ = await post_json(http, relay.url(path), wrong, tokens[3])
    assert_error(status, data, 401, "invalid_credentials")


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Released at the end in any case, so no hash worker stays blocked."""
    event = threading.Event()
    yield event
    event.set()


async def test_m1_full_hash_pool_answers_503_at_once(
    relay_factory: RelayFactory, gate: threading.Event
) -> None:
    relay = await relay_factory(limits={"hash_queue": 3, "hash_workers": 2})
    await relay.account("queued")
    pool = relay.app[HASH_POOL]
    # Three jobs that hold the pool (two running, one waiting): the queue is full.
    held = [asyncio.create_task(pool.run(f"198.51.100.{i}", gate.wait)) for i in range(3)]
    await eventually(lambda: pool.jobs == 3)
    started = time.monotonic()
    status, data, resp = await relay.request(
        "POST",
        "/api/v1/tokens",
        json={"username": "queued", "password": PASSWORD},
        timeout=aiohttp.ClientTimeout(total=5),  # queued instead would wait for the gate
    )
    assert time.monotonic() - started < 1.0  # refused at once, not queued
    assert_error(status, data, 503, "busy")
    assert int(resp.headers["Retry-After"]) >= 1
    gate.set()
    await asyncio.gather(*held)
    assert pool.jobs == 0
    await relay.login("queued")
    assert "hash_pool_busy" in await relay.metrics()


async def test_m1_hash_jobs_are_capped_per_address(
    relay_factory: RelayFactory, gate: threading.Event
) -> None:
    relay = await relay_factory(limits={"hash_jobs_per_address": 1})
    await relay.account("sharer")
    pool = relay.app[HASH_POOL]
    # 127.0.0.1 has one hash job in the pool: its next one is refused at once (429) ...
    held = asyncio.create_task(pool.run("127.0.0.1", gate.wait))
    await eventually(lambda: pool.jobs == 1)
    status, data, resp = await relay.request(
        "POST", "/api/v1/tokens", json={"username": "sharer", "password": PASSWORD}
    )
    assert_error(status, data, 429, "rate_limited")
    assert resp.headers["Retry-After"] == "1"
    # ... while another address logs in.
    async with session_from(OTHER_ADDRESS) as http:
        status, data, _ = await post_json(
            http, relay.url("/api/v1/tokens"), {"username": "sharer", "password": PASSWORD}
        )
    assert status == 201, data
    gate.set()
    await held


async def test_m1_one_client_cannot_fill_the_hash_pool(relay_factory: RelayFactory) -> None:
    """80 password checks kept in flight from one address: at most its share of the pool
    (hash_jobs_per_address) is ever admitted for it, so another user's logins wait
    behind at most that many hashes, and all succeed."""
    relay = await relay_factory(
        password_hash=Argon2Params(time_cost=1, memory_kib=4096, parallelism=1),
        limits={"hash_jobs_per_address": 2, "hash_queue": 16, "hash_workers": 2},
    )
    token = await relay.account("attacked")
    for i in range(5):
        await relay.account(f"bystander{i}")
    pool = relay.app[HASH_POOL]
    running = True
    peak = 0
    answers: dict[int, int] = {}

    async def attacker(http: aiohttp.ClientSession) -> None:
        body = {"current_password": "guess guess guess", "new_password": "whatever it is!"}
        while running:
            status, _, _ = await post_json(http, relay.url("/api/v1/account/password"), body, token)
            answers[status] = answers.get(status, 0) + 1
            if status == 429:
                await asyncio.sleep(0.005)

    async def sample() -> None:
        nonlocal peak
        while running:
            peak = max(peak, pool.jobs)
            await asyncio.sleep(0.001)

    async with session_from(OTHER_ADDRESS) as http:
        tasks = [asyncio.create_task(attacker(http)) for _ in range(80)]
        sampler = asyncio.create_task(sample())
        await asyncio.sleep(0.3)
        for i in range(5):
            await relay.login(f"bystander{i}")
        running = False
        await asyncio.gather(*tasks, sampler)
    assert answers.get(401, 0) > 0, answers
    assert answers.get(429, 0) > 0, answers
    assert peak <= 2 + 1, peak  # the attacker's 2, plus one login of a bystander


# --- I1: Argon2id; old scrypt hashes verify and are rehashed --------------------------


async def test_i1_passwords_are_hashed_with_argon2id(relay_factory: RelayFactory) -> None:
    params = Argon2Params(time_cost=2, memory_kib=2048, parallelism=1)
    relay = await relay_factory(password_hash=params)
    await relay.account("hashed")
    ((stored,),) = relay.rows("SELECT password_hash FROM accounts")
    assert stored.startswith("$argon2id$v=19$m=2048,t=2,p=1$")
    # The stand-in hash of unknown usernames is one of the same scheme and cost.
    accounts: AccountService = relay.app[ACCOUNTS]
    assert accounts._dummy_hash is not None
    assert accounts._dummy_hash.startswith("$argon2id$v=19$m=2048,t=2,p=1$")


async def test_i1_old_scrypt_hash_verifies_and_is_rehashed(relay_factory: RelayFactory) -> None:
    relay = await relay_factory()
    legacy = hash_scrypt_legacy(PASSWORD, bytes(range(16)), 2**14)
    # A database as a relay before Argon2id left it: an account with an scrypt hash.
    storage = relay.open_storage()
    await storage.open()
    try:
        await storage.create_account("oldtimer", legacy, int(time.time()))
    finally:
        await storage.close()

    def stored() -> str:
        row = relay.rows("SELECT password_hash FROM accounts WHERE username = 'oldtimer'")[0]
        return str(row[0])

    status, data, _ = await relay.request(
        "POST", "/api/v1/tokens", json={"username": "oldtimer", "password": "not it at all"}
    )
    assert_error(status, data, 401, "invalid_credentials")
    assert stored() == legacy  # a failed login changes nothing
    token = await relay.login("oldtimer")
    assert stored().startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    # The rehash keeps tokens valid, and the password keeps working under the new hash.
    status, _, _ = await relay.request("GET", "/api/v1/devices", token)
    assert status == 200
    await relay.login("oldtimer")
    status, data, _ = await relay.request(
        "POST", "/api/v1/tokens", json={"username": "oldtimer", "password": "not it at all"}
    )
    assert_error(status, data, 401, "invalid_credentials")


async def test_i1_unknown_username_costs_a_real_hash(relay_factory: RelayFactory) -> None:
    """The stand-in hash keeps a login of an unknown username as slow as a wrong password
    for a known one (default cost: OWASP's Argon2id)."""
    relay = await relay_factory(password_hash=Argon2Params())
    await relay.account("known")

    async def timed(username: str) -> float:
        started = time.perf_counter()
        status, _, _ = await relay.request(
            "POST", "/api/v1/tokens", json={"username": username, "password": "wrong one!!"}
        )
        assert status == 401
        return time.perf_counter() - started

    known = [await timed("known") for _ in range(7)]
    unknown = [await timed("unknown") for _ in range(7)]
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.6 < ratio < 1.6, (known, unknown)
    assert statistics.median(unknown) > 0.005  # a hash ran: Argon2id 19 MiB takes ~25 ms


# --- L1 (relay part): PAIR_START budget per (account, device) --------------------------


async def test_l1_stranger_cannot_use_up_owners_pair_start_budget(
    relay_factory: RelayFactory,
) -> None:
    relay = await relay_factory(limits={"pair_start_per_account_device": RateLimit(1 / 60, 3)})
    stranger_token = await relay.account("stranger")
    owner_token = await relay.account("owner")
    stranger, s_ctl = await relay.controller(stranger_token)
    owner, o_ctl = await relay.controller(owner_token)
    device, dev = await relay.device()
    for _ in range(3):
        await s_ctl.send(PAIR_START, device.id, b"\x01\x01")
        await dev.expect(PAIR_START, stranger.id)
    await s_ctl.send(PAIR_START, device.id, b"\x01\x01")
    await s_ctl.expect(ERROR, device.id, RATE_LIMITED)
    # The stranger's budget for this device is spent; the owner's is untouched.
    for _ in range(3):
        await o_ctl.send(PAIR_START, device.id, b"\x01\x01")
        await dev.expect(PAIR_START, owner.id, b"\x01\x01")
    await o_ctl.send(PAIR_START, device.id, b"\x01\x01")
    await o_ctl.expect(ERROR, device.id, RATE_LIMITED)
    for link in (s_ctl, o_ctl, dev):
        await link.close()


# --- I4: /metrics only on its own listener ----------------------------------------------


async def test_i4_metrics_not_on_public_listener(relay: Relay) -> None:
    status, data, _ = await relay.request("GET", "/metrics")
    assert_error(status, data, 404, "not_found")
    text = await relay.metrics()
    assert "homeseal_relay_frames_routed_total" in text
    assert relay.server.metrics_port != relay.server.port


async def test_i4_metrics_listener_can_be_off(relay_factory: RelayFactory) -> None:
    relay = await relay_factory(metrics_host=None)
    assert relay.server.metrics_port is None
    status, _, _ = await relay.request("GET", "/metrics")
    assert status == 404


# --- R1: deadline and caps of connections that are not authenticated --------------------


async def _silent_connection(port: int, local: str = "127.0.0.1") -> float:
    """Open a TCP connection, send nothing; seconds until the relay closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(local, 0))
    started = time.monotonic()
    try:
        await asyncio.wait_for(reader.read(), 10)
    except ConnectionError:
        pass
    finally:
        writer.close()
    return time.monotonic() - started


async def test_r1_connection_without_a_request_is_closed(relay_factory: RelayFactory) -> None:
    relay = await relay_factory(request_timeout_s=0.5, keepalive_timeout_s=1.0)
    guard = relay.app[GUARD]
    waited = await _silent_connection(relay.server.port)
    assert 0.4 < waited < 2.0, waited
    assert "request_timeout" in await relay.metrics()
    # A kept-alive connection that has completed a request is closed when idle too,
    # after its own (longer) deadline.
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.server.port)
    writer.write(http_request(b"GET", b"/healthz"))
    started = time.monotonic()
    data = await asyncio.wait_for(reader.read(), 10)
    assert data.startswith(b"HTTP/1.1 200")
    assert 0.9 < time.monotonic() - started < 2.5
    writer.close()
    await eventually(lambda: guard.unauthenticated == 0)


async def test_r1_unauthenticated_caps_refuse_with_503(relay_factory: RelayFactory) -> None:
    relay = await relay_factory(limits={"unauthenticated_per_address": 3})
    # Three websockets in the challenge-response from 127.0.0.1: the cap's worth.
    pending = [await open_ws(relay.http, relay.ws_base + "/ws/device") for _ in range(3)]
    status, data, resp = await relay.request("GET", "/ws/device")
    assert_error(status, data, 503, "too_many_connections")
    assert int(resp.headers["Retry-After"]) >= 1
    # The upgrade itself is refused the same way, before any websocket exists.
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await open_ws(relay.http, relay.ws_base + "/ws/device")
    assert refused.value.status == 503
    # Another address is served; an authenticated endpoint leaves the cap.
    async with session_from(OTHER_ADDRESS) as http:
        other = await connect(http, relay.ws_base, Endpoint(ROLE_DEVICE))
        await other.close()
    device = Endpoint(ROLE_DEVICE)
    await pending[0].send_raw(device.respond(pending[0].challenge))
    await pending[0].recv()  # AUTH_OK: no longer counted
    extra = await open_ws(relay.http, relay.ws_base + "/ws/device")
    metrics = await relay.metrics()
    assert 'homeseal_relay_refusals_total{reason="too_many_connections"} 2.0' in metrics
    for link in (*pending, extra):
        await link.close()


async def test_r1_global_unauthenticated_cap(relay_factory: RelayFactory) -> None:
    relay = await relay_factory(limits={"unauthenticated_connections": 2})
    held = [await open_ws(relay.http, relay.ws_base + "/ws/device") for _ in range(2)]
    async with session_from(OTHER_ADDRESS) as http, http.get(relay.url("/healthz")) as resp:
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == "too_many_connections"
    for link in held:
        await link.close()
    await eventually(lambda: relay.app[GUARD].unauthenticated == 0)
    status, _, _ = await relay.request("GET", "/healthz")
    assert status == 200


async def test_r1_relay_keeps_serving_others_during_a_flood(
    relay_factory: RelayFactory,
) -> None:
    relay = await relay_factory(
        request_timeout_s=3.0, keepalive_timeout_s=3.0, limits={"unauthenticated_per_address": 50}
    )
    pair = await claimed_pair(relay, "steady")
    guard = relay.app[GUARD]
    # The flood: 300 connections from another address that never send a request.
    flood = [
        await asyncio.open_connection("127.0.0.1", relay.server.port, local_addr=(OTHER_ADDRESS, 0))
        for _ in range(300)
    ]
    await eventually(lambda: guard.per_address(OTHER_ADDRESS) == 300)
    # It is over the per-address cap: its requests are refused, not served.
    refused = await raw_request(
        relay.server.port, http_request(b"GET", b"/healthz"), local=OTHER_ADDRESS
    )
    assert refused.status == 503
    # Meanwhile: routing, a login and a new device from 127.0.0.1 all work.
    for i in range(10):
        await pair.assert_routes(b"\x03during the flood " + bytes((i,)))
    await relay.login("steady")
    _, newcomer = await relay.device()
    # Its connections are gone within the request timeout, and the counts with them.
    await eventually(lambda: guard.unauthenticated == 0, 8)
    for _, writer in flood:
        writer.close()
    await pair.assert_routes()
    for link in (pair.ctl, pair.dev, newcomer):
        await link.close()


# --- R2: limiters remember only possible usernames, within a memory bound --------------


def deep_size(root: object) -> int:
    """Bytes of every object reachable from `root` (gc referents), each counted once;
    classes, modules and functions (shared, not the limiter's) excluded."""
    seen: set[int] = set()
    total = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | type(sys) | type(deep_size)):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def limiter_size(limiter: KeyedLimiter) -> int:
    return deep_size(limiter._buckets)


async def test_r2_long_usernames_never_reach_a_limiter(relay: Relay) -> None:
    accounts: AccountService = relay.app[ACCOUNTS]
    before = sum(limiter_size(lim) for lim in accounts.limiters.values())
    for i in range(12_000):
        name = f"{i:05d}" + "x" * 14_995
        with pytest.raises(ServiceError) as refused:
            await accounts.login(name, "whatever password", "203.0.113.7")
        assert refused.value.code == "invalid_credentials"
    after = sum(limiter_size(lim) for lim in accounts.limiters.values())
    assert after == before  # nothing remembered
    assert all(len(lim) == 0 for lim in accounts.limiters.values())
    # Over HTTP as well: the same 401 as a wrong password, and nothing remembered.
    status, data, _ = await relay.request(
        "POST", "/api/v1/tokens", json={"username": "y" * 15_000, "password": PASSWORD}
    )
    assert_error(status, data, 401, "invalid_credentials")
    assert len(accounts.limiters["login_per_user"]) == 0


def test_r2_keyed_limiter_memory_is_bounded() -> None:
    """12,000 unique 15,000-character keys, each bucket left with a debt: the limiter
    keeps within its entry and byte bounds (its own size measured, not RSS), and
    refuses the newcomers rather than forget a debt."""
    max_entries, max_key_bytes = 10_000, 2 * 1024 * 1024
    limiter = KeyedLimiter(
        RateLimit(1 / 30, 5), clock=lambda: 0.0, max_entries=max_entries,
        max_key_bytes=max_key_bytes,
    )  # fmt: skip
    refused = 0
    for i in range(12_000):
        if limiter.take(f"{i:05d}" + "x" * 14_995) > 0:
            refused += 1
    measured = limiter_size(limiter)
    bound = max_key_bytes + ENTRY_OVERHEAD * max_entries
    assert measured <= bound, (measured, bound)
    assert limiter.nbytes <= limiter.max_nbytes == bound
    assert limiter.key_bytes <= max_key_bytes
    assert len(limiter) == max_key_bytes // sys.getsizeof("x" * 15_000)  # 139 keys
    assert refused == 12_000 - len(limiter)
    # Small keys: the entry bound holds, and the accounting matches the measurement.
    small = KeyedLimiter(RateLimit(1 / 30, 5), clock=lambda: 0.0, max_entries=max_entries)
    for i in range(12_000):
        small.take(f"user{i}")
    assert len(small) == max_entries
    assert limiter_size(small) <= small.nbytes <= small.max_nbytes


def test_r2_refilled_buckets_make_room() -> None:
    now = [0.0]
    limiter = KeyedLimiter(RateLimit(1.0, 2), clock=lambda: now[0], max_entries=3)
    for key in "abc":
        assert limiter.take(key) == 0
    assert limiter.take("d") > 0  # full of debts: refused, "a" keeps its debt
    now[0] = 5.0  # every bucket refilled
    assert limiter.take("d") == 0
    assert len(limiter) <= 3


# --- R3: a bearer token that is not UTF-8 is a bad token (401) ----------------------------


@pytest.mark.parametrize(
    ("method", "path", "extra"),
    [
        (b"GET", b"/api/v1/devices", []),
        (b"DELETE", b"/api/v1/tokens/current", []),
        (
            b"GET",
            b"/ws/controller",
            [
                (b"Upgrade", b"websocket"),
                (b"Connection", b"Upgrade"),
                (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
                (b"Sec-WebSocket-Version", b"13"),
                (b"Sec-WebSocket-Protocol", b"homeseal.v1"),
            ],
        ),
    ],
)
async def test_r3_non_utf8_token_is_401(
    relay: Relay, method: bytes, path: bytes, extra: list[tuple[bytes, bytes]]
) -> None:
    for token in (b"\xff\xfe\xfd", b"abc\xc3(", b"\x80" * 43):
        headers = [(b"Authorization", b"Bearer " + token), *extra]
        resp = await raw_request(relay.server.port, http_request(method, path, headers))
        assert resp.status == 401, resp
        assert resp.json()["error"]["code"] == "unauthorized"


# --- R4: error shapes, content types, counting, summarised logs --------------------------


async def test_r4_oversized_header_gets_json_error_without_traceback(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for request in (
        http_request(b"GET", b"/api/v1/relay", [(b"X-Padding", b"a" * 100_000)]),
        http_request(b"GET", b"/" + b"a" * 100_000),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64) + b"\r\n\r\n",  # TLS
        b"GET /healthz HTTP/1.1\r\nHost: relay\r\nBad Header Line\r\n\r\n",
    ):
        resp = await raw_request(relay.server.port, request)
        assert resp.status == 400, resp
        assert resp.headers["content-type"].startswith("application/json")
        assert resp.json()["error"]["code"] == "invalid_request"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    status, _, _ = await relay.request("GET", "/healthz")
    assert status == 200


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "json"]
)
async def test_r4_body_must_be_sent_as_application_json(
    relay: Relay, content_type: str | None
) -> None:
    body = b'{"username": "typed", "password": "a perfectly fine passphrase"}'
    headers = {"Content-Type": content_type} if content_type else {}
    resp = await raw_request(
        relay.server.port,
        http_request(
            b"POST", b"/api/v1/accounts", [(k.encode(), v.encode()) for k, v in headers.items()],
            body,
        ),
    )  # fmt: skip
    assert resp.status == 415, resp
    assert resp.json()["error"]["code"] == "unsupported_media_type"
    status, _, _ = await relay.request(
        "POST",
        "/api/v1/accounts",
        data=body,
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert status == 201


async def test_r4_closes_before_authentication_are_counted(
    relay_factory: RelayFactory,
) -> None:
    relay = await relay_factory(auth_timeout_s=0.3)
    # 4000: a text message in the challenge-response; 4001: a wrong AUTH_RESPONSE;
    # 4003: no AUTH_RESPONSE in time.
    link = await open_ws(relay.http, relay.ws_base + "/ws/device")
    await link.ws.send_str("hello")
    await link.expect_close(4000)
    link = await open_ws(relay.http, relay.ws_base + "/ws/device")
    device = Endpoint(ROLE_DEVICE)
    await link.send(AUTH_RESPONSE, device.id, bytes(64))
    await link.expect_close(4001)
    link = await open_ws(relay.http, relay.ws_base + "/ws/device")
    await link.expect_close(4003)
    text = await relay.metrics()
    for code in (4000, 4001, 4003):
        assert f'homeseal_relay_closes_total{{code="{code}"}} 1.0' in text, text


async def test_r4_auth_timeouts_are_summarised_in_the_log(
    relay_factory: RelayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="relay_server")
    relay = await relay_factory(auth_timeout_s=0.2)
    links = await asyncio.gather(
        *(open_ws(relay.http, relay.ws_base + "/ws/device") for _ in range(60))
    )
    for link in links:
        await link.expect_close(4003)
    await eventually(lambda: relay.router.stats.auth_failures["device"] == 60)
    relay.router.registry.auth_log.flush()  # the end of the interval
    lines = [r for r in caplog.records if r.name == "relay_server.auth"]
    single = [r for r in lines if r.getMessage() == "authentication failed"]
    summary = [r for r in lines if r.getMessage() == "authentication failed (summary)"]
    assert len(single) == 10, len(single)
    assert all(r.levelno == logging.WARNING for r in lines)
    (line,) = summary
    assert line.suppressed == 50  # type: ignore[attr-defined]
    assert line.by_kind == {"device/auth_timeout": 50}  # type: ignore[attr-defined]
    assert line.addresses == 1  # type: ignore[attr-defined]
    assert relay.router.stats.auth_failures["device"] == 60  # every one still counted


async def test_r4_unknown_paths_and_methods_keep_the_json_shape(relay: Relay) -> None:
    for method, path in (
        (b"GET", b"/nope"),
        (b"PATCH", b"/api/v1/accounts"),
        (b"BREW", b"/api/v1/relay"),
        (b"POST", b"/healthz"),
    ):
        resp: RawResponse = await raw_request(relay.server.port, http_request(method, path))
        assert resp.status in (400, 404, 405), resp
        assert resp.json()["error"]["code"] in ("invalid_request", "not_found",
                                                 "method_not_allowed")  # fmt: skip


async def test_controller_token_still_checked_before_upgrade(relay: Relay) -> None:
    """A guard sanity check: the 401 before the upgrade keeps its JSON shape."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await open_ws(relay.http, relay.ws_base + "/ws/controller", "not-a-token")
    assert refused.value.status == 401
    token = await relay.account("ctlok")
    controller = Endpoint(ROLE_CONTROLLER)
    link = await connect(relay.http, relay.ws_base, controller, token)
    await link.send(SESSION, bytes(10), b"\x01")
    await link.close()
