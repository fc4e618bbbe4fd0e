"""Config flow (the relay account): the sign-in / create-account menu, every error of
each step, and recovery in the same flow, against the real relay behind a verifying
TLS pipe. Reauth and reconfigure are in test_init.py (they need a loaded entry)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_PASSWORD, CONF_TOKEN, CONF_URL, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.homeseal.const import (
    CONF_CA_PEM,
    CONF_FINGERPRINT,
    CONF_PASSWORD_CONFIRM,
    DOMAIN,
    SECTION_TLS,
)
from testbed.ports import free_port
from testbed.relay import ProxiedRelay
from testbed.tls import TlsFiles

from .conftest import PASSWORD

_MISSING = object()


def _account(relay: ProxiedRelay, step: str = "create_account", **changes: Any) -> dict[str, Any]:
    """A complete form for `step`; `changes` replace fields (a value of _MISSING drops
    one); ca_pem and fingerprint go into the TLS section."""
    data: dict[str, Any] = {
        CONF_URL: relay.url,
        CONF_USERNAME: f"u{uuid.uuid4().hex[:10]}",
        CONF_PASSWORD: PASSWORD,
        CONF_CA_PEM: relay.tls.ca_pem,
    }
    if step == "create_account":
        data[CONF_PASSWORD_CONFIRM] = changes.get(CONF_PASSWORD, PASSWORD)
    data.update(changes)
    tls = {k: data.pop(k) for k in (CONF_CA_PEM, CONF_FINGERPRINT) if k in data}
    data[SECTION_TLS] = {k: v for k, v in tls.items() if v is not _MISSING}
    return {k: v for k, v in data.items() if v is not _MISSING}


async def _step(hass: HomeAssistant, step: str = "create_account") -> str:
    """Open the flow, check its menu, choose `step`; returns the flow id."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "user"
    assert result["menu_options"] == ["sign_in", "create_account"]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": step}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == step
    assert result["errors"] == {}
    return str(result["flow_id"])


async def _submit(hass: HomeAssistant, flow_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return dict(await hass.config_entries.flow.async_configure(flow_id, data))


async def test_create_account(hass: HomeAssistant, relay: ProxiedRelay) -> None:
    user = _account(relay)
    result = await _submit(hass, await _step(hass), user)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    data = result["data"]
    assert data[CONF_URL] == relay.url
    assert data[CONF_USERNAME] == user[CONF_USERNAME]
    assert data[CONF_CA_PEM] == relay.tls.ca_pem.strip()
    assert len(data[CONF_TOKEN]) >= 40
    assert CONF_PASSWORD not in data
    assert CONF_PASSWORD_CONFIRM not in data
    assert PASSWORD not in repr(data)
    assert result["result"].unique_id.endswith(f"_{user[CONF_USERNAME]}")
    assert result["title"] == f"{user[CONF_USERNAME]} @ {relay.url.removeprefix('https://')}"
    await hass.async_block_till_done()


async def test_sign_in_and_already_configured(hass: HomeAssistant, relay: ProxiedRelay) -> None:
    user = _account(relay)
    result = await _submit(hass, await _step(hass), user)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    # The same account again (sign in this time, username in another case): refused.
    again = _account(relay, "sign_in", **{CONF_USERNAME: user[CONF_USERNAME].upper()})
    result = await _submit(hass, await _step(hass, "sign_in"), again)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_sign_in_with_fingerprint(hass: HomeAssistant, relay: ProxiedRelay) -> None:
    user = _account(relay)
    result = await _submit(hass, await _step(hass), user)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    for entry in hass.config_entries.async_entries(DOMAIN):
        await hass.config_entries.async_remove(entry.entry_id)
    fingerprint = ":".join(
        relay.tls.fingerprint[i : i + 2] for i in range(0, len(relay.tls.fingerprint), 2)
    ).upper()
    signin = _account(
        relay,
        "sign_in",
        **{
            CONF_USERNAME: user[CONF_USERNAME],
            CONF_CA_PEM: _MISSING,
            CONF_FINGERPRINT: fingerprint,
        },
    )
    result = await _submit(hass, await _step(hass, "sign_in"), signin)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    assert result["data"][CONF_FINGERPRINT] == relay.tls.fingerprint
    assert CONF_CA_PEM not in result["data"]
    await hass.async_block_till_done()


_BAD_PEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"


@pytest.mark.parametrize(
    ("step", "changes", "errors"),
    [
        ("create_account", {CONF_URL: "http://127.0.0.1:1"}, {CONF_URL: "invalid_url"}),
        ("sign_in", {CONF_URL: "not a url"}, {CONF_URL: "invalid_url"}),
        ("create_account", {CONF_CA_PEM: "hello"}, {"base": "invalid_ca"}),
        ("create_account", {CONF_CA_PEM: _BAD_PEM}, {"base": "invalid_ca"}),
        (
            "sign_in",
            {CONF_CA_PEM: _MISSING, CONF_FINGERPRINT: "abcd"},
            {"base": "invalid_fingerprint"},
        ),
        (
            "sign_in",
            {CONF_CA_PEM: _MISSING, CONF_FINGERPRINT: "zz" * 32},
            {"base": "invalid_fingerprint"},
        ),
        ("create_account", {CONF_FINGERPRINT: "00" * 32}, {"base": "ca_and_fingerprint"}),
        ("create_account", {CONF_CA_PEM: _MISSING}, {"base": "tls_not_trusted"}),
        (
            "sign_in",
            {CONF_CA_PEM: _MISSING, CONF_FINGERPRINT: "11" * 32},
            {"base": "tls_not_trusted"},
        ),
        ("create_account", {CONF_USERNAME: "x"}, {CONF_USERNAME: "invalid_username"}),
        ("create_account", {CONF_PASSWORD: "password"}, {CONF_PASSWORD: "weak_password"}),
        (
            "create_account",
            {CONF_PASSWORD_CONFIRM: PASSWORD + "!"},
            {CONF_PASSWORD_CONFIRM: "password_mismatch"},
        ),
        ("sign_in", {}, {"base": "invalid_auth"}),
    ],
)
async def test_account_errors_keep_input_and_recover(
    hass: HomeAssistant,
    relay: ProxiedRelay,
    step: str,
    changes: dict[str, Any],
    errors: dict[str, str],
) -> None:
    flow_id = await _step(hass, step)
    bad = _account(relay, step, **changes)
    result = await _submit(hass, flow_id, bad)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == step
    assert result["errors"] == errors
    schema = result["data_schema"].schema
    suggested = {str(key): (key.description or {}).get("suggested_value") for key in schema if key}
    # What was typed stays in the form; the passwords are never echoed back.
    assert suggested[CONF_USERNAME] == bad[CONF_USERNAME]
    assert suggested[CONF_URL] == bad[CONF_URL]
    assert suggested[CONF_PASSWORD] is None
    assert PASSWORD not in repr(schema)
    # Fixing the input in the same flow succeeds (an account that exists for sign-in).
    if step == "sign_in":
        created = _account(relay)
        result = await _submit(hass, await _step(hass), created)
        assert result["type"] is FlowResultType.CREATE_ENTRY
        await hass.async_block_till_done()
        await hass.config_entries.async_remove(result["result"].entry_id)
        good = _account(relay, "sign_in", **{CONF_USERNAME: created[CONF_USERNAME]})
    else:
        good = _account(relay)
    result = await _submit(hass, flow_id, good)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    await hass.async_block_till_done()


async def test_cannot_connect(hass: HomeAssistant, socket_enabled: None) -> None:
    flow_id = await _step(hass, "sign_in")
    result = await _submit(
        hass,
        flow_id,
        {
            CONF_URL: f"https://127.0.0.1:{free_port()}",
            CONF_USERNAME: "someone",
            CONF_PASSWORD: PASSWORD,
            SECTION_TLS: {},
        },
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}


async def test_username_taken(hass: HomeAssistant, relay: ProxiedRelay) -> None:
    user = _account(relay)
    result = await _submit(hass, await _step(hass), user)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    for entry in hass.config_entries.async_entries(DOMAIN):
        await hass.config_entries.async_remove(entry.entry_id)
    result = await _submit(hass, await _step(hass), user)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_USERNAME: "username_taken"}


async def test_rate_limited(hass: HomeAssistant, relay: ProxiedRelay) -> None:
    """Wrong passwords for one username hit the relay's per-user login limit."""
    flow_id = await _step(hass, "sign_in")
    name = f"nobody{uuid.uuid4().hex[:6]}"
    seen: list[str] = []
    for _ in range(8):
        result = await _submit(hass, flow_id, _account(relay, "sign_in", **{CONF_USERNAME: name}))
        assert result["type"] is FlowResultType.FORM
        seen.append(result["errors"]["base"])
        if seen[-1] == "rate_limited":
            break
    assert seen[0] == "invalid_auth"
    assert seen[-1] == "rate_limited"


# ---- a server at the URL that is not a HomeSeal relay --------------------------------


@pytest.fixture
async def not_a_relay(
    hass: HomeAssistant, tls_files: TlsFiles, socket_enabled: None
) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """An HTTPS server answering the relay's API paths as something else would:
    `GET /api/v1/relay` → 404 JSON."""
    app = web.Application()

    async def relay_info(request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": "not_found", "message": "?"}}, status=404)

    app.router.add_get("/api/v1/relay", relay_info)
    server = TestServer(app, host="127.0.0.1")
    ssl_context = await hass.async_add_executor_job(tls_files.server_context)
    await server.start_server(ssl=ssl_context)
    try:
        yield f"https://127.0.0.1:{server.port}", {CONF_CA_PEM: tls_files.ca_pem}
    finally:
        await server.close()


async def test_a_server_that_is_not_a_relay(
    hass: HomeAssistant, not_a_relay: tuple[str, dict[str, str]]
) -> None:
    url, tls = not_a_relay
    flow_id = await _step(hass, "sign_in")
    result = await _submit(
        hass,
        flow_id,
        {CONF_URL: url, CONF_USERNAME: "someone", CONF_PASSWORD: PASSWORD, SECTION_TLS: tls},
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "unknown"}


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        ("RelayApiError", "unknown"),
        ("CannotConnect", "cannot_connect"),
        ("TlsNotTrusted", "tls_not_trusted"),
    ],
)
async def test_login_fails_after_the_relay_answered(
    hass: HomeAssistant,
    relay: ProxiedRelay,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
    error: str,
) -> None:
    """The relay answered GET /relay, then the login broke: each cause has its message."""
    from custom_components.homeseal.vendor import homeseal_protocol  # noqa: PLC0415

    async def login(self: homeseal_protocol.RelayApi, username: str, password: str) -> None:
        raise getattr(homeseal_protocol, failure)("broken")

    monkeypatch.setattr(homeseal_protocol.RelayApi, "login", login)
    result = await _submit(hass, await _step(hass, "sign_in"), _account(relay, "sign_in"))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}


def test_sections_do_not_leak_between_steps() -> None:
    """Both account steps fold the TLS fields into one collapsed section."""
    from custom_components.homeseal import config_flow  # noqa: PLC0415

    for schema in (config_flow.SIGN_IN_SCHEMA, config_flow.CREATE_ACCOUNT_SCHEMA):
        section = schema.schema[next(k for k in schema.schema if str(k) == SECTION_TLS)]
        assert section.options == {"collapsed": True}
        assert {str(k) for k in section.schema.schema} == {CONF_CA_PEM, CONF_FINGERPRINT}
