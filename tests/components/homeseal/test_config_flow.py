"""Config flow: every path and error, against the real relay behind a verifying TLS proxy."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_PASSWORD, CONF_TOKEN, CONF_URL, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.homeseal.const import (
    ACTION_CREATE,
    ACTION_SIGN_IN,
    CONF_ACCOUNT_ACTION,
    CONF_CA_PEM,
    CONF_FINGERPRINT,
    DOMAIN,
)

from .conftest import PASSWORD, RelayProcess, free_port


def _user(relay: RelayProcess, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        CONF_URL: relay.url,
        CONF_USERNAME: f"u{uuid.uuid4().hex[:10]}",
        CONF_PASSWORD: PASSWORD,
        CONF_ACCOUNT_ACTION: ACTION_CREATE,
        CONF_CA_PEM: relay.tls.ca_pem,
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


async def _start(hass: HomeAssistant) -> str:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}
    return str(result["flow_id"])


async def test_create_account(hass: HomeAssistant, relay: RelayProcess) -> None:
    flow_id = await _start(hass)
    user = _user(relay)
    result = await hass.config_entries.flow.async_configure(flow_id, user)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    data = result["data"]
    assert data[CONF_URL] == relay.url
    assert data[CONF_USERNAME] == user[CONF_USERNAME]
    assert data[CONF_CA_PEM] == relay.tls.ca_pem.strip()
    assert len(data[CONF_TOKEN]) >= 40
    assert CONF_PASSWORD not in data
    assert PASSWORD not in repr(data)
    entry = result["result"]
    assert entry.unique_id.endswith(f"_{user[CONF_USERNAME]}")
    await hass.async_block_till_done()


async def test_sign_in_and_already_configured(hass: HomeAssistant, relay: RelayProcess) -> None:
    user = _user(relay)
    result = await hass.config_entries.flow.async_configure(await _start(hass), user)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    # The same account again (sign in this time, username in another case): refused.
    again = {
        **user,
        CONF_ACCOUNT_ACTION: ACTION_SIGN_IN,
        CONF_USERNAME: user[CONF_USERNAME].upper(),
    }
    result = await hass.config_entries.flow.async_configure(await _start(hass), again)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_sign_in_with_fingerprint(hass: HomeAssistant, relay: RelayProcess) -> None:
    user = _user(relay)
    result = await hass.config_entries.flow.async_configure(await _start(hass), user)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    for entry in hass.config_entries.async_entries(DOMAIN):
        await hass.config_entries.async_remove(entry.entry_id)
    fingerprint = ":".join(
        relay.tls.fingerprint[i : i + 2] for i in range(0, len(relay.tls.fingerprint), 2)
    ).upper()
    signin = _user(
        relay,
        **{
            CONF_USERNAME: user[CONF_USERNAME],
            CONF_ACCOUNT_ACTION: ACTION_SIGN_IN,
            CONF_CA_PEM: None,
            CONF_FINGERPRINT: fingerprint,
        },
    )
    result = await hass.config_entries.flow.async_configure(await _start(hass), signin)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    assert result["data"][CONF_FINGERPRINT] == relay.tls.fingerprint
    assert CONF_CA_PEM not in result["data"]
    await hass.async_block_till_done()


@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        ({CONF_URL: "http://127.0.0.1:1"}, {CONF_URL: "invalid_url"}),
        ({CONF_URL: "not a url"}, {CONF_URL: "invalid_url"}),
        ({CONF_CA_PEM: "hello"}, {CONF_CA_PEM: "invalid_ca"}),
        (
            {CONF_CA_PEM: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"},
            {CONF_CA_PEM: "invalid_ca"},
        ),
        ({CONF_CA_PEM: None, CONF_FINGERPRINT: "abcd"}, {CONF_FINGERPRINT: "invalid_fingerprint"}),
        (
            {CONF_CA_PEM: None, CONF_FINGERPRINT: "zz" * 32},
            {CONF_FINGERPRINT: "invalid_fingerprint"},
        ),
        ({CONF_FINGERPRINT: "00" * 32}, {"base": "ca_and_fingerprint"}),
        ({CONF_CA_PEM: None}, {"base": "tls_not_trusted"}),
        ({CONF_CA_PEM: None, CONF_FINGERPRINT: "11" * 32}, {"base": "tls_not_trusted"}),
        ({CONF_USERNAME: "x"}, {CONF_USERNAME: "invalid_username"}),
        ({CONF_PASSWORD: "password"}, {CONF_PASSWORD: "weak_password"}),
        ({CONF_ACCOUNT_ACTION: ACTION_SIGN_IN}, {"base": "invalid_auth"}),
    ],
)
async def test_user_errors_then_recover(
    hass: HomeAssistant, relay: RelayProcess, overrides: dict[str, Any], errors: dict[str, str]
) -> None:
    flow_id = await _start(hass)
    user = _user(relay, **overrides)
    result = await hass.config_entries.flow.async_configure(flow_id, user)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == errors
    # The password is never echoed back into the form.
    assert PASSWORD not in repr(result["data_schema"].schema)
    # Fixing the input in the same flow succeeds.
    result = await hass.config_entries.flow.async_configure(flow_id, _user(relay))
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    await hass.async_block_till_done()


async def test_cannot_connect(hass: HomeAssistant, socket_enabled: None) -> None:
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id,
        {
            CONF_URL: f"https://127.0.0.1:{free_port()}",
            CONF_USERNAME: "someone",
            CONF_PASSWORD: PASSWORD,
            CONF_ACCOUNT_ACTION: ACTION_SIGN_IN,
        },
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}


async def test_username_taken(hass: HomeAssistant, relay: RelayProcess) -> None:
    user = _user(relay)
    result = await hass.config_entries.flow.async_configure(await _start(hass), user)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    for entry in hass.config_entries.async_entries(DOMAIN):
        await hass.config_entries.async_remove(entry.entry_id)
    result = await hass.config_entries.flow.async_configure(await _start(hass), user)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_USERNAME: "username_taken"}


async def test_rate_limited(hass: HomeAssistant, relay: RelayProcess) -> None:
    """Wrong passwords for one username hit the relay's per-user login limit."""
    flow_id = await _start(hass)
    name = f"nobody{uuid.uuid4().hex[:6]}"
    seen: list[str] = []
    for _ in range(8):
        result = await hass.config_entries.flow.async_configure(
            flow_id,
            _user(relay, **{CONF_USERNAME: name, CONF_ACCOUNT_ACTION: ACTION_SIGN_IN}),
        )
        assert result["type"] is FlowResultType.FORM
        seen.append(result["errors"]["base"])
        if seen[-1] == "rate_limited":
            break
    assert seen[0] == "invalid_auth"
    assert seen[-1] == "rate_limited"
