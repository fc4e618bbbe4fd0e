"""The "Add device" subentry flow: SPAKE2+ through the real relay with the real firmware."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.homeseal.client.envelope import FrameType
from custom_components.homeseal.client.ids import format_id, parse_id
from custom_components.homeseal.const import (
    CONF_DEVICE_ID,
    CONF_DEVICE_KEY,
    CONF_SETUP_CODE,
    CONF_SETUP_PAYLOAD,
    SUBENTRY_DEVICE,
)

from .common import entity_ids, finish_progress, pair, pair_flow, setup_account, wait_for
from .conftest import RelayProcess, SimDevice, run_in_thread


def _wrong(code: str) -> str:
    """Another valid (non-trivial) code."""
    return code[:-1] + str((int(code[-1]) + 1) % 10)


async def test_wrong_code_then_right_code_by_id_and_code(
    hass: HomeAssistant, relay: RelayProcess, make_device: Callable[..., SimDevice]
) -> None:
    device = make_device()
    entry = await setup_account(hass, relay)
    result = await pair_flow(
        hass,
        entry,
        {CONF_DEVICE_ID: device.device_id, CONF_SETUP_CODE: _wrong(device.setup_code)},
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {"base": "wrong_code_attempts"}
    assert result["description_placeholders"] == {"attempts_left": "19"}
    # Typed by hand, with the dashes of the label.
    code = f"{device.setup_code[:4]}-{device.setup_code[4:]}"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_DEVICE_ID: device.device_id.upper(), CONF_SETUP_CODE: code}
    )
    result = await finish_progress(hass, dict(result))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    subentry = next(s for s in entry.subentries.values() if s.unique_id == device.device_id)
    assert subentry.data[CONF_DEVICE_ID] == device.device_id
    assert len(bytes.fromhex(subentry.data[CONF_DEVICE_KEY])) == 32
    assert device.setup_code not in repr(subentry.data)
    await wait_for(lambda: len(entity_ids(hass, subentry.subentry_id)) == 5)

    # The same device again: refused before anything is sent.
    result = await pair_flow(hass, entry, {CONF_SETUP_PAYLOAD: device.qr_payload})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


@pytest.mark.parametrize(
    ("user_input", "errors"),
    [
        ({CONF_SETUP_PAYLOAD: "HS2:AAAA:12345670"}, {CONF_SETUP_PAYLOAD: "invalid_payload"}),
        (
            {CONF_SETUP_PAYLOAD: "HS1:MFRGGZDFMZTWQ2LK:11111111"},
            {CONF_SETUP_PAYLOAD: "invalid_payload"},
        ),
        (
            {CONF_DEVICE_ID: "not-an-id", CONF_SETUP_CODE: "12345670"},
            {CONF_DEVICE_ID: "invalid_device_id"},
        ),
        (
            {CONF_DEVICE_ID: "mfrg-gzdf-mztw-q2lk", CONF_SETUP_CODE: "12345678"},
            {CONF_SETUP_CODE: "invalid_setup_code"},
        ),
        ({}, {CONF_DEVICE_ID: "invalid_device_id", CONF_SETUP_CODE: "invalid_setup_code"}),
    ],
)
async def test_invalid_input(
    hass: HomeAssistant,
    relay: RelayProcess,
    user_input: dict[str, str],
    errors: dict[str, str],
) -> None:
    entry = await setup_account(hass, relay)
    result = await pair_flow(hass, entry, user_input)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors


async def test_device_offline(hass: HomeAssistant, relay: RelayProcess) -> None:
    entry = await setup_account(hass, relay)
    result = await pair_flow(hass, entry, {CONF_SETUP_PAYLOAD: "HS1:MFRGGZDFMZTWQ2LK:20231187"})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "device_offline"}


async def test_not_in_pairing_mode(
    hass: HomeAssistant, relay: RelayProcess, make_device: Callable[..., SimDevice]
) -> None:
    device = make_device(window_seconds=1)
    entry = await setup_account(hass, relay)
    run_in_thread(lambda: device.wait_log("pairing window closed"))
    result = await pair_flow(hass, entry, {CONF_SETUP_PAYLOAD: device.qr_payload})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "not_in_pairing_mode"}


async def test_device_of_another_account(
    hass: HomeAssistant, relay: RelayProcess, make_device: Callable[..., SimDevice]
) -> None:
    device = make_device()
    first = await setup_account(hass, relay)
    await pair(hass, first, device)
    second = await setup_account(hass, relay)
    result = await pair_flow(hass, second, {CONF_SETUP_PAYLOAD: device.qr_payload})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "not_permitted"}


async def test_timeout(
    hass: HomeAssistant, relay: RelayProcess, make_device: Callable[..., SimDevice]
) -> None:
    device = make_device()
    entry = await setup_account(hass, relay)
    entry.runtime_data.hub.pair_step_timeout = 0.5
    run_in_thread(lambda: device.signal(signal.SIGSTOP))
    try:
        result = await pair_flow(hass, entry, {CONF_SETUP_PAYLOAD: device.qr_payload})
    finally:
        run_in_thread(lambda: device.signal(signal.SIGCONT))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "timeout"}


async def test_rate_limited_by_relay(
    hass: HomeAssistant, relay: RelayProcess, make_device: Callable[..., SimDevice]
) -> None:
    """The relay allows 10 PAIR_START per device in a burst; the 11th is refused."""
    device = make_device()
    entry = await setup_account(hass, relay)
    errors = []
    for _ in range(12):
        result = await pair_flow(
            hass,
            entry,
            {CONF_SETUP_PAYLOAD: device.qr_payload[:-1] + _wrong(device.setup_code)[-1]},
        )
        errors.append(result["errors"]["base"])
        if errors[-1] != "wrong_code_attempts":
            break
    assert errors[-1] == "rate_limited"


async def test_entry_not_loaded(hass: HomeAssistant, relay: RelayProcess) -> None:
    entry = await setup_account(hass, relay)
    await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_DEVICE), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "entry_not_loaded"


async def test_remove_subentry_unpairs(
    hass: HomeAssistant, relay: RelayProcess, make_device: Callable[..., SimDevice]
) -> None:
    device = make_device()
    entry = await setup_account(hass, relay)
    subentry_id = await pair(hass, entry, device)
    offset = device.log.stat().st_size
    hass.config_entries.async_remove_subentry(entry, subentry_id)
    await hass.async_block_till_done()
    # The device forgot us and opened its pairing window; the relay released it.
    run_in_thread(lambda: device.wait_log("pairing window open", offset))
    assert entity_ids(hass, subentry_id) == []
    assert format_id(next(iter(entry.runtime_data.hub.links), b"\0" * 10)) != device.device_id
    devices = await entry.runtime_data.api.devices(entry.data["token"])
    assert device.device_id not in {d.device_id for d in devices}
    # So it can be paired again.
    await pair(hass, entry, device)


async def test_device_busy(
    hass: HomeAssistant, relay: RelayProcess, make_device: Callable[..., SimDevice]
) -> None:
    """Another controller has an attempt open on the device: this one is told to wait."""
    device = make_device()
    other = await setup_account(hass, relay)
    # The other controller starts an attempt (PBKDF_PARAM_REQUEST) and goes silent.
    await other.runtime_data.hub.connection.send(
        FrameType.PAIR_START, parse_id(device.device_id), b"\x01\x01"
    )
    entry = await setup_account(hass, relay)
    result = await pair_flow(hass, entry, {CONF_SETUP_PAYLOAD: device.qr_payload})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "device_busy"}


async def test_locked_out_after_20_wrong_codes(
    hass: HomeAssistant, relay: RelayProcess, make_device: Callable[..., SimDevice]
) -> None:
    device = make_device()
    entry = await setup_account(hass, relay)
    hub = entry.runtime_data.hub
    wrong = {CONF_DEVICE_ID: device.device_id, CONF_SETUP_CODE: _wrong(device.setup_code)}
    seen: list[str] = []
    for attempt in range(21):
        if attempt and attempt % 9 == 0:
            # The relay's PAIR_START limit (10 per device) is in memory: restart it.
            offset = device.log.stat().st_size
            run_in_thread(relay.restart)
            await wait_for(lambda: not hub.connected or hub.connection.attempt > 0)
            await wait_for(lambda: hub.connected, limit=60)
            run_in_thread(lambda o=offset: device.wait_log("relay connected", o, 90))
        result = await pair_flow(hass, entry, wrong)
        seen.append(result["errors"]["base"])
        if seen[-1] != "wrong_code_attempts":
            break
    assert seen[:20] == ["wrong_code_attempts"] * 20
    assert seen[20] == "locked_out"
    # Even the right code is refused now.
    result = await pair_flow(hass, entry, {CONF_SETUP_PAYLOAD: device.qr_payload})
    assert result["errors"]["base"] in {"locked_out", "not_in_pairing_mode"}


async def test_one_pairing_at_a_time(
    hass: HomeAssistant, relay: RelayProcess, make_device: Callable[..., SimDevice]
) -> None:
    first, second = make_device(), make_device(name="Second board")
    entry = await setup_account(hass, relay)
    flows = []
    for device in (first, second):
        result = await hass.config_entries.subentries.async_init(
            (entry.entry_id, SUBENTRY_DEVICE), context={"source": SOURCE_USER}
        )
        flows.append(
            await hass.config_entries.subentries.async_configure(
                result["flow_id"], {CONF_SETUP_PAYLOAD: device.qr_payload}
            )
        )
    results = [await finish_progress(hass, dict(r)) for r in flows]
    assert results[0]["type"] is FlowResultType.CREATE_ENTRY
    assert results[1]["type"] is FlowResultType.FORM
    assert results[1]["errors"] == {"base": "pairing_in_progress"}
