"""HTTP API (PROTOCOL §8): happy paths and every error path."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from homeseal_protocol.ids import format_id
from relay_server.config import Argon2Params, Config, RateLimit
from testbed.endpoints import PRESENCE, ROLE_DEVICE, Endpoint, pair_and_claim

from .conftest import PASSWORD, Relay, RelayFactory

JSON = {"Content-Type": "application/json"}


async def test_relay_info_matches_key_file(relay: Relay) -> None:
    status, data, _ = await relay.request("GET", "/api/v1/relay")
    assert status == 200
    assert data["version"] == 1
    raw = bytes.fromhex(relay.config.key_file.read_text().strip())
    expected = X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw()
    assert data["relay_key"] == expected.hex()
    assert relay.config.key_file.stat().st_mode & 0o777 == 0o600


async def test_register_login_logout(relay: Relay) -> None:
    status, data, _ = await relay.request(
        "POST", "/api/v1/accounts", json={"username": "Alice", "password": PASSWORD}
    )
    assert (status, data) == (201, {"username": "alice"})
    status, data, _ = await relay.request(
        "POST", "/api/v1/tokens", json={"username": "ALICE", "password": PASSWORD}
    )
    assert status == 201
    token = data["token"]
    assert len(base64.urlsafe_b64decode(token + "=")) == 32
    expires = datetime.strptime(data["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    days = (expires - datetime.now(UTC)).total_seconds() / 86400
    assert 179.99 < days < 180.0001  # 180 days from the next whole second
    # Only the SHA-256 of the token is stored.
    stored = [r[0] for r in relay.rows("SELECT token_hash FROM tokens")]
    pw_hash = relay.rows("SELECT password_hash FROM accounts")[0][0]
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]
    assert pw_hash.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert PASSWORD not in pw_hash
    # The production default: OWASP's Argon2id parameters.
    assert Config().password_hash == Argon2Params(time_cost=2, memory_kib=19456, parallelism=1)
    status, data, _ = await relay.request("GET", "/api/v1/devices", token)
    assert (status, data) == (200, {"devices": []})
    status, data, _ = await relay.request("DELETE", "/api/v1/tokens/current", token)
    assert (status, data) == (204, None)
    for method, path in (("GET", "/api/v1/devices"), ("DELETE", "/api/v1/tokens/current")):
        status, data, _ = await relay.request(method, path, token)
        assert status == 401
        assert data["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", "invalid_request"),
        (b"[1, 2]", "invalid_request"),
        (b'{"username": "bob"}', "invalid_request"),
        (b'{"username": 5, "password": "a perfectly fine passphrase"}', "invalid_request"),
        (b'{"username": "bob", "password": null}', "invalid_request"),
        (b"\xff\xfe", "invalid_request"),
        (b'{"username": "b", "password": "a perfectly fine passphrase"}', "invalid_username"),
        (
            b'{"username": "bob smith", "password": "a perfectly fine passphrase"}',
            "invalid_username",
        ),
        (b'{"username": "' + b"x" * 65 + b'", "password": "long enough pw"}', "invalid_username"),
        (b'{"username": "bob", "password": "short"}', "weak_password"),
        (b'{"username": "bob", "password": "Password123"}', "weak_password"),
        (b'{"username": "bob", "password": "1234567890"}', "weak_password"),
        (b'{"username": "bobbobbobbob", "password": "BobBobBobBob"}', "weak_password"),
        (b'{"username": "bob", "password": "' + b"x" * 1025 + b'"}', "weak_password"),
    ],
)
async def test_register_errors(relay: Relay, body: bytes, code: str) -> None:
    status, data, _ = await relay.request("POST", "/api/v1/accounts", data=body, headers=JSON)
    assert status == 400
    assert data["error"]["code"] == code
    assert data["error"]["message"]


async def test_register_taken(relay: Relay) -> None:
    await relay.account("carol")
    status, data, _ = await relay.request(
        "POST", "/api/v1/accounts", json={"username": "CAROL", "password": PASSWORD + "x"}
    )
    assert status == 409
    assert data["error"]["code"] == "username_taken"


async def test_login_errors(relay: Relay) -> None:
    await relay.account("dave")
    for body in (
        {"username": "dave", "password": "wrong password!"},
        {"username": "nobody", "password": PASSWORD},
    ):
        status, data, _ = await relay.request("POST", "/api/v1/tokens", json=body)
        assert status == 401
        assert data["error"]["code"] == "invalid_credentials"
    status, data, _ = await relay.request("POST", "/api/v1/tokens", json={"username": "dave"})
    assert status == 400
    assert data["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    "header", ["", "Bearer", "Bearer ", "Basic abc", "Bearer nope", "Bearer " + "a" * 200]
)
async def test_unauthorized(relay: Relay, header: str) -> None:
    headers = {"Authorization": header} if header else {}
    for method, path in (
        ("GET", "/api/v1/devices"),
        ("DELETE", "/api/v1/tokens/current"),
        ("POST", "/api/v1/account/password"),
        ("DELETE", "/api/v1/account"),
        ("DELETE", "/api/v1/devices/aaaa-aaaa-aaaa-aaaa"),
    ):
        status, data, _ = await relay.request(method, path, headers=dict(headers))
        assert status == 401, (method, path)
        assert data["error"]["code"] == "unauthorized", (method, path)


async def test_change_password(relay: Relay) -> None:
    token = await relay.account("erin")
    other = await relay.login("erin")
    path = "/api/v1/account/password"
    status, data, _ = await relay.request(
        "POST", path, token, json={"current_password": "not it at all", "new_password": "x" * 12}
    )
    assert status == 401
    assert data["error"]["code"] == "invalid_credentials"
    status, data, _ = await relay.request(
        "POST", path, token, json={"current_password": PASSWORD, "new_password": "qwertyuiop"}
    )
    assert status == 400
    assert data["error"]["code"] == "weak_password"
    status, data, _ = await relay.request("POST", path, token, json={"current_password": 1})
    assert status == 400
    assert data["error"]["code"] == "invalid_request"
    new = "another fine passphrase"
    status, _, _ = await relay.request(
        "POST", path, token, json={"current_password": PASSWORD, "new_password": new}
    )
    assert status == 204
    for t in (token, other):  # every token revoked
        status, _, _ = await relay.request("GET", "/api/v1/devices", t)
        assert status == 401
    status, data, _ = await relay.request(
        "POST", "/api/v1/tokens", json={"username": "erin", "password": PASSWORD}
    )
    assert status == 401
    await relay.login("erin", new)


async def test_delete_account(relay: Relay) -> None:
    token = await relay.account("frank")
    status, data, _ = await relay.request(
        "DELETE", "/api/v1/account", token, json={"password": "not the password"}
    )
    assert status == 401
    assert data["error"]["code"] == "invalid_credentials"
    status, data, _ = await relay.request("DELETE", "/api/v1/account", token, json={})
    assert status == 400
    assert data["error"]["code"] == "invalid_request"
    status, _, _ = await relay.request(
        "DELETE", "/api/v1/account", token, json={"password": PASSWORD}
    )
    assert status == 204
    status, _, _ = await relay.request("GET", "/api/v1/devices", token)
    assert status == 401
    status, _, _ = await relay.request(
        "POST", "/api/v1/tokens", json={"username": "frank", "password": PASSWORD}
    )
    assert status == 401
    await relay.account("frank")  # the name is free again


async def test_remove_device_errors(relay: Relay) -> None:
    token = await relay.account("gina")
    other_token = await relay.account("hank")
    for device_id in ("not-an-id", "aaaa-aaaa-aaaa-aaa", "aaaa-aaaa-aaaa-aaaa"):
        status, data, _ = await relay.request("DELETE", f"/api/v1/devices/{device_id}", token)
        assert status == 404
        assert data["error"]["code"] == "not_found"
    # An online but unclaimed device, and one owned by another account: not found either.
    device, link = await relay.device()
    status, data, _ = await relay.request(
        "DELETE", f"/api/v1/devices/{format_id(device.id)}", other_token
    )
    assert status == 404
    await link.close()


async def test_unknown_route_and_method_are_json(relay: Relay) -> None:
    status, data, _ = await relay.request("GET", "/api/v1/nope")
    assert status == 404
    assert data["error"]["code"] == "not_found"
    status, data, _ = await relay.request("PUT", "/api/v1/accounts")
    assert status == 405
    assert data["error"]["code"] == "method_not_allowed"
    status, data, _ = await relay.request(
        "POST", "/api/v1/accounts", data=b"x" * 20000, headers=JSON
    )
    assert status == 413
    assert data["error"]["code"] == "request_too_large"


async def test_login_rate_limited_per_username(relay_factory: RelayFactory) -> None:
    relay = await relay_factory(limits={"login_per_user": RateLimit(1 / 60, 3)})
    await relay.account("ivan")  # one login
    bad = {"username": "IVAN", "password": "wrong password!"}
    for _ in range(2):
        status, _, _ = await relay.request("POST", "/api/v1/tokens", json=bad)
        assert status == 401
    status, data, resp = await relay.request("POST", "/api/v1/tokens", json=bad)
    assert status == 429
    assert data["error"]["code"] == "rate_limited"
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    # The right password is refused too while limited; another user is not affected.
    status, _, _ = await relay.request(
        "POST", "/api/v1/tokens", json={"username": "ivan", "password": PASSWORD}
    )
    assert status == 429
    await relay.account("judy")


async def test_login_and_register_rate_limited_per_address(relay_factory: RelayFactory) -> None:
    relay = await relay_factory(
        limits={
            "login_per_address": RateLimit(1 / 60, 3),
            "register_per_address": RateLimit(1 / 60, 2),
        }
    )
    for i in range(3):
        body = {"username": f"user{i}", "password": PASSWORD}
        status, _, _ = await relay.request("POST", "/api/v1/tokens", json=body)
        assert status == 401
    status, data, resp = await relay.request(
        "POST", "/api/v1/tokens", json={"username": "user9", "password": PASSWORD}
    )
    assert status == 429
    assert "Retry-After" in resp.headers
    for i in range(2):
        status, _, _ = await relay.request(
            "POST", "/api/v1/accounts", json={"username": f"new{i}", "password": PASSWORD}
        )
        assert status == 201
    # X-Forwarded-For is not honoured without --behind-proxy.
    status, data, resp = await relay.request(
        "POST",
        "/api/v1/accounts",
        json={"username": "new3", "password": PASSWORD},
        headers={"X-Forwarded-For": "203.0.113.9"},
    )
    assert status == 429
    assert data["error"]["code"] == "rate_limited"
    assert int(resp.headers["Retry-After"]) >= 1


async def test_forwarded_for_behind_proxy(relay_factory: RelayFactory) -> None:
    relay = await relay_factory(
        behind_proxy=True, limits={"register_per_address": RateLimit(1 / 60, 1)}
    )

    async def register(name: str, xff: str) -> int:
        status, _, _ = await relay.request(
            "POST",
            "/api/v1/accounts",
            json={"username": name, "password": PASSWORD},
            headers={"X-Forwarded-For": xff},
        )
        return int(status)

    assert await register("proxy1", "198.51.100.1, 203.0.113.1") == 201
    # The last entry is the proxy's view of the client: a spoofed first entry is ignored.
    assert await register("proxy2", "198.51.100.2, 203.0.113.1") == 429
    assert await register("proxy3", "203.0.113.2") == 201


async def test_token_expiry(relay_factory: RelayFactory) -> None:
    relay = await relay_factory(token_lifetime_s=1)
    token = await relay.account("kate")
    status, _, _ = await relay.request("GET", "/api/v1/devices", token)
    assert status == 200
    await asyncio.sleep(2.1)  # valid for at least 1 s, at most 2 s (whole seconds)
    status, data, _ = await relay.request("GET", "/api/v1/devices", token)
    assert status == 401
    assert data["error"]["code"] == "unauthorized"


async def test_healthz_and_metrics(relay: Relay) -> None:
    status, data, _ = await relay.request("GET", "/healthz")
    assert (status, data) == (200, {"status": "ok"})
    _, link = await relay.device()
    async with relay.http.get(relay.metrics_url) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        text = await resp.text()
    assert 'homeseal_relay_connections{role="device"} 1.0' in text
    assert "homeseal_relay_frames_routed_total 0.0" in text
    assert 'homeseal_relay_auth_failures_total{role="device"} 0.0' in text
    await link.close()


async def test_device_listing(relay: Relay) -> None:
    """A claimed device is listed with online state and claim time (claim: test_routing)."""
    token = await relay.account("liam")
    controller, ctl = await relay.controller(token)
    device = Endpoint(ROLE_DEVICE)
    _, dev = await relay.device(device)
    await pair_and_claim(ctl, controller.id, dev, device.id)
    status, data, _ = await relay.request("GET", "/api/v1/devices", token)
    assert status == 200
    (entry,) = data["devices"]
    assert entry["device_id"] == format_id(device.id)
    assert entry["online"] is True
    assert entry["claimed_at"].endswith("Z")
    await dev.close()
    await ctl.expect(PRESENCE, device.id, b"\x00")
    status, data, _ = await relay.request("GET", "/api/v1/devices", token)
    assert data["devices"][0]["online"] is False
    await ctl.close()
