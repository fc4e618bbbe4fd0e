"""The integration driven inside an in-process Home Assistant (the `hass` object of
pytest-homeassistant-custom-component): its config flow, its Add-device flow, and the
simulated device those pair. Used by tests/components and benchmarks/ha_bench.py.

The relay is a `ProxiedRelay`: Home Assistant reaches it through a TLS pipe with a
test CA and must verify it; the device reaches it with plain ws://. The integration is
imported from the checkout (custom_components is not installed): run from its root.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from homeassistant.config_entries import SOURCE_USER, ConfigEntry, ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_URL, CONF_USERNAME, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er

from custom_components.homeseal.const import (
    CONF_CA_PEM,
    CONF_PASSWORD_CONFIRM,
    CONF_SETUP_PAYLOAD,
    DOMAIN,
    SECTION_TLS,
    SUBENTRY_DEVICE,
)

from .firmware import DeviceProcess, Entity
from .relay import ProxiedRelay

PASSWORD = "correct horse battery staple"

# The device these flows pair: one entity of every kind.
HA_DEVICE_ENTITIES: list[Entity] = [
    {"key": "relay1", "kind": "switch", "name": "Relay", "pin": "2"},
    {"key": "lamp", "kind": "light", "name": "Lamp", "pin": "3"},
    {
        "key": "temp",
        "kind": "sensor",
        "name": "Temperature",
        "source": "internal_temp",
        "device_class": "temperature",
        "unit": "°C",
        "state_class": "measurement",
        "interval": 1,
    },
    {"key": "door", "kind": "binary_sensor", "name": "Door", "pin": "4", "device_class": "door"},
    {"key": "bell", "kind": "button", "name": "Bell", "pin": "5", "pulse_ms": 20},
]


def ha_device(
    workdir: Path,
    relay_url: str,
    name: str = "Test board",
    args: Sequence[str] = (),
    entities: Sequence[Entity] = HA_DEVICE_ENTITIES,
) -> DeviceProcess:
    """The firmware with `entities` (HA_DEVICE_ENTITIES), state pushed every 5 s, a
    quick pairing button (long press 100 ms, factory reset 200 ms)."""
    return DeviceProcess(
        workdir,
        relay_url,
        entities=entities,
        name=name,
        model="sim-1",
        pairing_button={"pin": "0", "long_press_ms": 100, "factory_reset_ms": 200},
        state_interval=5,
        heapsize="8m",
        args=args,
    )


async def setup_account(hass: HomeAssistant, relay: ProxiedRelay) -> ConfigEntry[Any]:
    """Create an account on the relay through the config flow; the entry gets loaded."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "create_account"}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_URL: relay.url,
            CONF_USERNAME: f"u{uuid.uuid4().hex[:10]}",
            CONF_PASSWORD: PASSWORD,
            CONF_PASSWORD_CONFIRM: PASSWORD,
            SECTION_TLS: {CONF_CA_PEM: relay.tls.ca_pem},
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    await hass.async_block_till_done()
    entry: ConfigEntry[Any] = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    await wait_for(lambda: entry.runtime_data.controller.connected)
    return entry


async def pair_flow(
    hass: HomeAssistant, entry: ConfigEntry[Any], user_input: dict[str, str]
) -> dict[str, Any]:
    """Run the "Add device" subentry flow to its end; returns the last result. The QR
    text or the typed id and code pick the menu choice."""
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_DEVICE), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "user"
    choice = "qr_payload" if CONF_SETUP_PAYLOAD in user_input else "manual"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"next_step_id": choice}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == choice
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], user_input)
    return await finish_progress(hass, dict(result))


async def finish_progress(hass: HomeAssistant, result: dict[str, Any]) -> dict[str, Any]:
    """Wait for a pairing progress step to end and take the flow to its next result."""
    if result["type"] is not FlowResultType.SHOW_PROGRESS:
        return result
    assert result["progress_action"] == "pairing"
    assert result["step_id"] == "pair"
    flow_id = result["flow_id"]
    manager = hass.config_entries.subentries

    def moved_on() -> bool:
        # The flow manager leaves the progress step by itself when the attempt ends.
        flow = manager._progress.get(flow_id)
        step = None if flow is None else flow.cur_step
        return step is None or step["type"] is not FlowResultType.SHOW_PROGRESS

    await wait_for(moved_on, limit=60)
    await hass.async_block_till_done()
    if flow_id not in manager._progress:  # it ended with the new subentry
        return {"type": FlowResultType.CREATE_ENTRY, "flow_id": flow_id}
    # "progress done": fetch the flow, as the frontend does on the progressed event.
    return dict(await manager.async_configure(flow_id))


async def pair(hass: HomeAssistant, entry: ConfigEntry[Any], device: DeviceProcess) -> str:
    """Pair a device with the QR payload; returns the subentry id once its entities are up."""
    result = await pair_flow(hass, entry, {CONF_SETUP_PAYLOAD: device.qr_payload})
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()
    subentry_id = next(
        s.subentry_id for s in entry.subentries.values() if s.unique_id == device.id_text
    )
    await wait_for(lambda: len(entity_ids(hass, subentry_id)) == len(device.entities))
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
    # An entity disabled in the registry has no state, by design: it is not waited for.
    registry = er.async_get(hass)
    running = [e for e in entity_ids if not (r := registry.async_get(e)) or r.disabled_by is None]

    def check() -> bool:
        states = [hass.states.get(e) for e in running]
        return all(s is not None and (s.state != STATE_UNAVAILABLE) == available for s in states)

    await wait_for(check)
