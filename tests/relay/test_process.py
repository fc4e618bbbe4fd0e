"""The real relay process: configuration errors, TLS, graceful shutdown, kill -9."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import aiohttp
import pytest

from homeseal_protocol.ids import format_id
from testbed.endpoints import (
    ROLE_CONTROLLER,
    ROLE_DEVICE,
    SESSION,
    Endpoint,
    connect,
    open_ws,
    pair_and_claim,
)
from testbed.ports import free_port
from testbed.relay import RelayProcess, run_relay_expecting_failure
from testbed.tls import make_tls
from tests.support import ROOT

from .conftest import PASSWORD


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    session = aiohttp.ClientSession()
    yield session
    await session.close()


async def post(
    http: aiohttp.ClientSession, url: str, body: dict[str, str], **kw: object
) -> tuple[int, dict[str, object]]:
    async with http.post(url, json=body, **kw) as resp:  # type: ignore[arg-type]
        return resp.status, await resp.json() if resp.content_length else {}


async def account(http: aiohttp.ClientSession, base: str, name: str, **kw: object) -> str:
    status, _ = await post(
        http, base + "/api/v1/accounts", {"username": name, "password": PASSWORD}, **kw
    )
    assert status == 201
    status, data = await post(
        http, base + "/api/v1/tokens", {"username": name, "password": PASSWORD}, **kw
    )
    assert status == 201
    return str(data["token"])


# --- configuration errors -------------------------------------------------------


def test_refuses_to_run_without_tls_choice(tmp_path: Path) -> None:
    err = run_relay_expecting_failure(tmp_path)
    assert "refusing to serve without TLS" in err


def test_unreadable_certificate(tmp_path: Path) -> None:
    err = run_relay_expecting_failure(
        tmp_path, "--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(tmp_path / "k")
    )
    assert "cannot read TLS certificate/key" in err
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    err = run_relay_expecting_failure(
        tmp_path, "--tls-cert", str(garbage), "--tls-key", str(garbage)
    )
    assert "TLS certificate/key" in err
    err = run_relay_expecting_failure(tmp_path, "--tls-cert", str(garbage))
    assert "--tls-cert and --tls-key go together" in err


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        err = run_relay_expecting_failure(tmp_path, "--plain-http", port=port)
    assert f"cannot listen on 127.0.0.1:{port}" in err


def test_unwritable_database(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    err = run_relay_expecting_failure(tmp_path, "--plain-http", "--db", str(blocker / "relay.db"))
    assert "cannot use database" in err
    assert "relay.db" in err


def test_key_file_must_be_private(tmp_path: Path) -> None:
    key = tmp_path / "relay.key"
    key.write_text("00" * 32 + "\n")
    key.chmod(0o644)
    err = run_relay_expecting_failure(tmp_path, "--plain-http")
    assert "chmod 600" in err
    key.chmod(0o600)
    key.write_text("not hex")
    err = run_relay_expecting_failure(tmp_path, "--plain-http")
    assert "does not hold 32 hex-encoded bytes" in err


def test_a_non_integer_environment_value_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "relay_server", "--plain-http"],
        cwd=ROOT,
        env={**os.environ, "HOMESEAL_RELAY_PORT": "80a"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "HOMESEAL_RELAY_PORT='80a' is not an integer" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_documents_every_option(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "relay_server", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    for option in ("--host", "--port", "--db", "--key-file", "--tls-cert", "--tls-key",
                   "--behind-proxy", "--plain-http", "--log-level", "--token-days"):  # fmt: skip
        assert option in proc.stdout
    env_vars = re.findall(r"HOMESEAL_RELAY_[A-Z_]+", proc.stdout.replace("\n", ""))
    assert len(set(env_vars)) == proc.stdout.count("\n  --")  # one per option (not -h)


# --- running ----------------------------------------------------------------------


async def test_environment_configures_relay(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    relay = RelayProcess(
        tmp_path,
        serve=None,
        env={"HOMESEAL_RELAY_PLAIN_HTTP": "1", "HOMESEAL_RELAY_REGISTER_PER_ADDRESS": "1"},
    )
    relay.start()
    try:
        statuses = [
            (
                await post(
                    http, relay.base + "/api/v1/accounts", {"username": n, "password": PASSWORD}
                )
            )[0]
            for n in ("envone", "envtwo")
        ]
        assert statuses == [201, 429]
    finally:
        assert relay.stop() == 0


async def test_key_file_created_once_and_reused(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    relay = RelayProcess(tmp_path)
    relay.start()
    key_file = tmp_path / "relay.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    async with http.get(relay.base + "/api/v1/relay") as resp:
        first = (await resp.json())["relay_key"]
    assert relay.stop() == 0
    relay.start()
    async with http.get(relay.base + "/api/v1/relay") as resp:
        assert (await resp.json())["relay_key"] == first
    assert relay.stop() == 0
    assert '"event": "listening"' in relay.output()


async def test_tls(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    relay = RelayProcess(tmp_path, serve=make_tls(tmp_path / "tls"))
    relay.start()
    try:
        token = await account(http, relay.base, "tlsuser", ssl=relay.ssl_context())
        controller, device = Endpoint(ROLE_CONTROLLER), Endpoint(ROLE_DEVICE)
        ctl = await connect(http, relay.ws_base, controller, token, ssl=relay.ssl_context())
        dev = await connect(http, relay.ws_base, device, ssl=relay.ssl_context())
        await pair_and_claim(ctl, controller.id, dev, device.id)
        await ctl.send(SESSION, device.id, b"\x03over tls")
        await dev.expect(SESSION, controller.id, b"\x03over tls")
        # Without the CA the certificate is not trusted.
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with http.get(relay.base + "/healthz"):
                pass
        await ctl.close()
        await dev.close()
    finally:
        assert relay.stop() == 0


async def test_graceful_shutdown(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    relay = RelayProcess(tmp_path)
    relay.start()
    token = await account(http, relay.base, "graceful")
    controller, device = Endpoint(ROLE_CONTROLLER), Endpoint(ROLE_DEVICE)
    ctl = await connect(http, relay.ws_base, controller, token)
    dev = await connect(http, relay.ws_base, device)
    await pair_and_claim(ctl, controller.id, dev, device.id)
    unauthenticated = await open_ws(http, relay.ws_base + "/ws/device")
    # A registration (scrypt: tens of ms) is in flight when SIGTERM arrives: it completes.
    pending = asyncio.create_task(
        post(http, relay.base + "/api/v1/accounts", {"username": "inflight", "password": PASSWORD})
    )
    await asyncio.sleep(0.01)
    for _ in range(20):
        await dev.send(SESSION, controller.id, b"\x03" + bytes(200))
    relay.proc.send_signal(15)  # type: ignore[union-attr]
    status, _ = await pending
    assert status == 201
    frames = await ctl.expect_close(1012, wait_s=10)
    assert all(f.type == SESSION for f in frames)
    await dev.expect_close(1012, wait_s=10)
    await unauthenticated.expect_close(1012, wait_s=10)
    assert await asyncio.to_thread(relay.wait_exit) == 0
    relay.start()
    status, _ = await post(
        http, relay.base + "/api/v1/tokens", {"username": "inflight", "password": PASSWORD}
    )
    assert status == 201
    assert relay.stop() == 0


async def test_kill_9_loses_nothing_acknowledged(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    relay = RelayProcess(tmp_path)
    relay.start()
    accounts: list[str] = []
    live_tokens: dict[str, str] = {}
    revoked: list[str] = []
    devices: list[bytes] = []
    claims: list[tuple[str, bytes]] = []

    async def worker(w: int) -> None:
        for i in range(1000):
            name = f"user-{w}-{i}"
            status, _ = await post(
                http, relay.base + "/api/v1/accounts", {"username": name, "password": PASSWORD}
            )
            assert status == 201
            accounts.append(name)
            status, data = await post(
                http, relay.base + "/api/v1/tokens", {"username": name, "password": PASSWORD}
            )
            assert status == 201
            token = str(data["token"])
            live_tokens[name] = token
            controller, device = Endpoint(ROLE_CONTROLLER), Endpoint(ROLE_DEVICE)
            dev = await connect(http, relay.ws_base, device)
            devices.append(device.id)
            ctl = await connect(http, relay.ws_base, controller, token)
            await pair_and_claim(ctl, controller.id, dev, device.id)
            claims.append((name, device.id))
            second = str(
                (
                    await post(
                        http,
                        relay.base + "/api/v1/tokens",
                        {"username": name, "password": PASSWORD},
                    )
                )[1]["token"]
            )
            async with http.delete(
                relay.base + "/api/v1/tokens/current", headers={"Authorization": f"Bearer {second}"}
            ) as resp:
                assert resp.status == 204
            revoked.append(second)

    tasks = [asyncio.create_task(worker(w)) for w in range(6)]
    async with asyncio.timeout(60):
        while len(revoked) < 6:  # noqa: ASYNC110 (the workers own the lists)
            await asyncio.sleep(0.01)
    relay.kill()  # SIGKILL in the middle of the burst
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, Exception) for r in results)

    relay.start()
    try:
        assert accounts
        assert devices
        assert claims
        assert revoked
        for name in accounts:
            status, _ = await post(
                http, relay.base + "/api/v1/tokens", {"username": name, "password": PASSWORD}
            )
            assert status == 201, name
        for token in revoked:
            async with http.get(
                relay.base + "/api/v1/devices", headers={"Authorization": f"Bearer {token}"}
            ) as resp:
                assert resp.status == 401
        for name, device_id in claims:
            async with http.get(
                relay.base + "/api/v1/devices",
                headers={"Authorization": f"Bearer {live_tokens[name]}"},
            ) as resp:
                assert resp.status == 200
                listed = (await resp.json())["devices"]
            assert [d["device_id"] for d in listed] == [format_id(device_id)]
    finally:
        assert relay.stop() == 0
    with closing(sqlite3.connect(tmp_path / "relay.sqlite3")) as db:
        stored = {bytes(r[0]) for r in db.execute("SELECT device_id FROM devices")}
    assert set(devices) <= stored
    assert free_port()
