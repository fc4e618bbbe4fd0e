"""Helpers shared by the HomeSeal integration tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from homeassistant.config_entries import SOURCE_USER, ConfigEntry, ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_URL, CONF_USERNAME, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er

from custom_components.homeseal.const import (
    ACTION_CREATE,
    CONF_ACCOUNT_ACTION,
    CONF_CA_PEM,
    CONF_SETUP_PAYLOAD,
    DOMAIN,
    SUBENTRY_DEVICE,
)

from .conftest import PASSWORD, RelayProcess, SimDevice


async def setup_account(hass: HomeAssistant, relay: RelayProcess) -> ConfigEntry:
    """Create an account on the relay through the config flow; the entry gets loaded."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_URL: relay.url,
            CONF_USERNAME: f"u{uuid.uuid4().hex[:10]}",
            CONF_PASSWORD: PASSWORD,
            CONF_ACCOUNT_ACTION: ACTION_CREATE,
            CONF_CA_PEM: relay.tls.ca_pem,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    await wait_for(lambda: entry.runtime_data.hub.connected)
    return entry


async def pair_flow(
    hass: HomeAssistant, entry: ConfigEntry, user_input: dict[str, str]
) -> dict[str, object]:
    """Run the "Add device" subentry flow to its end; returns the last result."""
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_DEVICE), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], user_input)
    return await finish_progress(hass, dict(result))


async def finish_progress(hass: HomeAssistant, result: dict[str, object]) -> dict[str, object]:
    """Wait for a pairing progress step to end and take the flow to its next result."""
    if result["type"] is not FlowResultType.SHOW_PROGRESS:
        return result
    assert result["progress_action"] == "pairing"
    assert result["step_id"] == "pair"
    flow_id = result["flow_id"]
    flow = hass.config_entries.subentries._progress[flow_id]

    def done() -> bool:
        task = getattr(flow, "_task", None)
        return task is None or task.done()

    await wait_for(done, limit=60)
    await hass.async_block_till_done()
    return dict(await hass.config_entries.subentries.async_configure(flow_id))


async def pair(hass: HomeAssistant, entry: ConfigEntry, device: SimDevice) -> str:
    """Pair a device with the QR payload; returns the subentry id once its entities are up."""
    result = await pair_flow(hass, entry, {CONF_SETUP_PAYLOAD: device.qr_payload})
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()
    subentry_id = next(
        s.subentry_id for s in entry.subentries.values() if s.unique_id == device.device_id
    )
    await wait_for(lambda: len(entity_ids(hass, subentry_id)) == 5)
    await wait_available(hass, entity_ids(hass, subentry_id))
    return subentry_id


def entity_ids(hass: HomeAssistant, subentry_id: str) -> list[str]:
    registry = er.async_get(hass)
    return sorted(
        e.entity_id for e in registry.entities.values() if e.config_subentry_id == subentry_id
    )


async def wait_for(predicate: Callable[[], bool], limit: float = 30) -> None:
    """Poll until true: state arrives from other processes, there is no event to await."""
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def wait_available(
    hass: HomeAssistant, entity_ids: list[str], available: bool = True
) -> None:
    def check() -> bool:
        states = [hass.states.get(e) for e in entity_ids]
        return all(s is not None and (s.state != STATE_UNAVAILABLE) == available for s in states)

    await wait_for(check)
