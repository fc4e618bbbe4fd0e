"""Entry lifecycle: setup, unload/reload, not ready, auth failures and reauth, reconfigure,
removal — against the real relay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from homeassistant.config_entries import (
    SOURCE_REAUTH,
    SOURCE_RECONFIGURE,
    ConfigEntry,
    ConfigEntryState,
)
from homeassistant.const import CONF_PASSWORD, CONF_TOKEN, CONF_URL, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.homeseal.const import CONF_CA_PEM, CONF_FINGERPRINT, DOMAIN, SECTION_TLS
from testbed.ha_flows import setup_account, wait_for
from testbed.ports import free_port
from testbed.relay import ProxiedRelay
from testbed.tls_pipe import TlsPipe

from .conftest import PASSWORD, run_in_thread


async def _logout(relay: ProxiedRelay, token: str) -> None:
    """Revoke a token at the relay, as another client of the account could."""
    connector = aiohttp.TCPConnector(ssl=False)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.delete(
            f"{relay.url}/api/v1/tokens/current", headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        assert response.status == 204


async def _reconfigure(hass: HomeAssistant, entry: ConfigEntry) -> dict[str, Any]:
    return dict(
        await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
        )
    )


async def test_unload_and_reload(hass: HomeAssistant, relay: ProxiedRelay) -> None:
    entry = await setup_account(hass, relay)
    controller = entry.runtime_data.controller
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert not controller.connected
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    # The controller key survives the reload (it is in HA storage).
    await wait_for(lambda: entry.runtime_data.controller.connected)
    assert entry.runtime_data.controller.controller_id == controller.controller_id
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED


async def test_setup_not_ready_when_relay_unreachable(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={
            CONF_URL: f"https://127.0.0.1:{free_port()}",
            CONF_USERNAME: "someone",
            CONF_TOKEN: "x" * 43,
        },
        unique_id="00_someone",
    )
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.reason == "Cannot reach the HomeSeal relay"
    # Removing it still works (the logout it attempts fails quietly).
    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert not hass.config_entries.async_entries(DOMAIN)


@pytest.mark.parametrize(
    "tls", [{CONF_FINGERPRINT: "00" * 32}, {CONF_CA_PEM: "-----BEGIN CERTIFICATE-----\nAA\n"}]
)
async def test_setup_not_ready_when_tls_untrusted(
    hass: HomeAssistant, relay: ProxiedRelay, tls: dict[str, str]
) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={CONF_URL: relay.url, CONF_USERNAME: "someone", CONF_TOKEN: "x" * 43, **tls},
    )
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.reason == "The relay's TLS certificate is not trusted"


async def test_revoked_token_at_setup_starts_reauth(
    hass: HomeAssistant, relay: ProxiedRelay
) -> None:
    entry = await setup_account(hass, relay)
    await hass.config_entries.async_unload(entry.entry_id)
    await _logout(relay, entry.data[CONF_TOKEN])
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["source"] for f in flows] == [SOURCE_REAUTH]
    flow_id = flows[0]["flow_id"]

    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_PASSWORD: "wrong password"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}
    old_token = entry.data[CONF_TOKEN]
    result = await hass.config_entries.flow.async_configure(flow_id, {CONF_PASSWORD: PASSWORD})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.data[CONF_TOKEN] != old_token
    assert entry.state is ConfigEntryState.LOADED


async def test_token_revoked_while_connected_starts_reauth(
    hass: HomeAssistant, relay: ProxiedRelay
) -> None:
    entry = await setup_account(hass, relay)
    await _logout(relay, entry.data[CONF_TOKEN])
    await wait_for(lambda: bool(hass.config_entries.flow.async_progress_by_handler(DOMAIN)))
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert flows[0]["context"]["source"] == SOURCE_REAUTH
    assert not entry.runtime_data.controller.connected


async def test_reconnects_after_relay_restart(hass: HomeAssistant, relay: ProxiedRelay) -> None:
    entry = await setup_account(hass, relay)
    controller = entry.runtime_data.controller
    run_in_thread(relay.stop_relay)
    await wait_for(lambda: not controller.connected)
    run_in_thread(relay.start)
    await wait_for(lambda: controller.connected, limit=60)


async def test_reconfigure(hass: HomeAssistant, relay: ProxiedRelay) -> None:
    entry = await setup_account(hass, relay)
    proxies: list[TlsPipe] = []
    run_in_thread(lambda: proxies.append(relay.open_pipe()))
    proxy = proxies[0]
    port = proxy.port
    try:
        result = await _reconfigure(hass, entry)
        assert result["type"] is FlowResultType.FORM
        assert result["step_id"] == "reconfigure"
        # Bad input first.
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_URL: "ftp://x", SECTION_TLS: {CONF_CA_PEM: relay.tls.ca_pem}}
        )
        assert result["errors"] == {CONF_URL: "invalid_url"}
        new_url = f"https://127.0.0.1:{port}"
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_URL: new_url, SECTION_TLS: {}}
        )
        assert result["errors"] == {"base": "tls_not_trusted"}
        # The same relay at another address, pinned by fingerprint this time.
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {CONF_URL: new_url, SECTION_TLS: {CONF_FINGERPRINT: relay.tls.fingerprint}},
        )
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()
        assert entry.data[CONF_URL] == new_url
        assert entry.data[CONF_FINGERPRINT] == relay.tls.fingerprint
        assert CONF_CA_PEM not in entry.data
        assert entry.state is ConfigEntryState.LOADED
        await wait_for(lambda: entry.runtime_data.controller.connected)
        await hass.config_entries.async_unload(entry.entry_id)
    finally:
        run_in_thread(proxy.stop)


async def test_reconfigure_to_another_relay_is_refused(
    hass: HomeAssistant, relay: ProxiedRelay, tmp_path: Path
) -> None:
    entry = await setup_account(hass, relay)
    other = ProxiedRelay(tmp_path / "other-relay", relay.tls)
    run_in_thread(other.start)
    try:
        result = await _reconfigure(hass, entry)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_URL: other.url, SECTION_TLS: {CONF_CA_PEM: relay.tls.ca_pem}}
        )
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "wrong_relay"
    finally:
        run_in_thread(other.stop)


async def test_remove_entry_logs_out(hass: HomeAssistant, relay: ProxiedRelay) -> None:
    entry = await setup_account(hass, relay)
    token = entry.data[CONF_TOKEN]
    api = entry.runtime_data.api
    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    from custom_components.homeseal.vendor.homeseal_protocol.client.api import Unauthorized  # noqa: PLC0415

    with pytest.raises(Unauthorized):
        await api.devices(token)


async def test_reconfigure_with_revoked_token(hass: HomeAssistant, relay: ProxiedRelay) -> None:
    entry = await setup_account(hass, relay)
    await hass.config_entries.async_unload(entry.entry_id)
    await _logout(relay, entry.data[CONF_TOKEN])
    result = await _reconfigure(hass, entry)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: relay.url, SECTION_TLS: {CONF_CA_PEM: relay.tls.ca_pem}}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}


@pytest.mark.parametrize(
    ("failure", "error"),
    [("TlsNotTrusted", "tls_not_trusted"), ("CannotConnect", "cannot_connect")],
)
async def test_reconfigure_relay_fails_after_answering(
    hass: HomeAssistant,
    relay: ProxiedRelay,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
    error: str,
) -> None:
    entry = await setup_account(hass, relay)
    from custom_components.homeseal.vendor import homeseal_protocol  # noqa: PLC0415

    async def devices(self: homeseal_protocol.RelayApi, token: str) -> None:
        raise getattr(homeseal_protocol, failure)("broken")

    monkeypatch.setattr(homeseal_protocol.RelayApi, "devices", devices)
    result = await _reconfigure(hass, entry)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: relay.url, SECTION_TLS: {CONF_CA_PEM: relay.tls.ca_pem}}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}
