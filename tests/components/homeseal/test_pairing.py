"""The "Add device" subentry flow: SPAKE2+ through the real relay with the real firmware."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import EVENT_DATA_ENTRY_FLOW_PROGRESSED, FlowResultType

from custom_components.homeseal.config_flow import MIN_PROGRESS, QUICK_RESULT_WAIT
from custom_components.homeseal.const import (
    CONF_DEVICE_ID,
    CONF_DEVICE_KEY,
    CONF_SETUP_CODE,
    CONF_SETUP_PAYLOAD,
    SUBENTRY_DEVICE,
)
from custom_components.homeseal.vendor.homeseal_protocol import (
    Controller,
    PairingError,
    PairingFailure,
)
from custom_components.homeseal.vendor.homeseal_protocol.envelope import FrameType
from custom_components.homeseal.vendor.homeseal_protocol.ids import format_id, parse_id
from testbed.firmware import DeviceProcess
from testbed.ha_flows import entity_ids, finish_progress, pair, pair_flow, setup_account, wait_for
from testbed.relay import ProxiedRelay

from .conftest import run_in_thread

pytestmark = pytest.mark.micropython  # the real firmware, through the real relay


def _wrong(code: str) -> str:
    """Another valid (non-trivial) code."""
    return code[:-1] + str((int(code[-1]) + 1) % 10)


async def test_wrong_code_then_right_code_by_id_and_code(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    device = make_device()
    entry = await setup_account(hass, relay)
    result = await pair_flow(
        hass,
        entry,
        {CONF_DEVICE_ID: device.id_text, CONF_SETUP_CODE: _wrong(device.setup_code)},
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "manual"
    assert result["errors"] == {"base": "wrong_code_attempts"}
    assert result["description_placeholders"] == {"attempts_left": "19"}
    # The form keeps what was typed: the user corrects the code, not the whole label.
    suggested = {
        str(key): (key.description or {}).get("suggested_value")
        for key in result["data_schema"].schema
    }
    assert suggested[CONF_DEVICE_ID] == device.id_text
    # Typed by hand, with the dashes of the label.
    code = f"{device.setup_code[:4]}-{device.setup_code[4:]}"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_DEVICE_ID: device.id_text.upper(), CONF_SETUP_CODE: code}
    )
    result = await finish_progress(hass, dict(result))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    subentry = next(s for s in entry.subentries.values() if s.unique_id == device.id_text)
    assert subentry.data[CONF_DEVICE_ID] == device.id_text
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
        (
            {CONF_DEVICE_ID: "", CONF_SETUP_CODE: ""},
            {CONF_DEVICE_ID: "invalid_device_id", CONF_SETUP_CODE: "invalid_setup_code"},
        ),
    ],
)
async def test_invalid_input(
    hass: HomeAssistant,
    relay: ProxiedRelay,
    user_input: dict[str, str],
    errors: dict[str, str],
) -> None:
    entry = await setup_account(hass, relay)
    result = await pair_flow(hass, entry, user_input)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors


async def test_device_offline_is_answered_on_the_form(
    hass: HomeAssistant, relay: ProxiedRelay
) -> None:
    """The relay refuses an offline (or mistyped) id at once: the answer is the form with
    its error, never a progress step the frontend could miss the end of."""
    entry = await setup_account(hass, relay)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_DEVICE), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"next_step_id": "qr_payload"}
    )
    started = time.monotonic()
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_SETUP_PAYLOAD: "HS1:MFRGGZDFMZTWQ2LK:20231187"}
    )
    assert time.monotonic() - started < QUICK_RESULT_WAIT
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "qr_payload"
    assert result["errors"] == {"base": "device_offline"}


async def test_not_in_pairing_mode(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    device = make_device(window_seconds=1)
    entry = await setup_account(hass, relay)
    run_in_thread(lambda: device.wait_log("pairing window closed"))
    result = await pair_flow(hass, entry, {CONF_SETUP_PAYLOAD: device.qr_payload})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "not_in_pairing_mode"}


async def test_device_of_another_account(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    device = make_device()
    first = await setup_account(hass, relay)
    await pair(hass, first, device)
    second = await setup_account(hass, relay)
    result = await pair_flow(hass, second, {CONF_SETUP_PAYLOAD: device.qr_payload})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "not_permitted"}


async def test_timeout_after_progress_shown_for_a_minimum(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    """A slow attempt shows progress; its end comes no sooner than MIN_PROGRESS after the
    progress step, so a frontend that subscribes after rendering it never misses it."""
    device = make_device()
    entry = await setup_account(hass, relay)
    entry.runtime_data.controller.pair_step_timeout = QUICK_RESULT_WAIT + 0.1
    run_in_thread(device.freeze)
    ended: list[float] = []
    try:
        result = await hass.config_entries.subentries.async_init(
            (entry.entry_id, SUBENTRY_DEVICE), context={"source": SOURCE_USER}
        )
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"next_step_id": "qr_payload"}
        )
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {CONF_SETUP_PAYLOAD: device.qr_payload}
        )
        shown = time.monotonic()
        assert result["type"] is FlowResultType.SHOW_PROGRESS
        unsubscribe = hass.bus.async_listen(
            EVENT_DATA_ENTRY_FLOW_PROGRESSED, lambda _: ended.append(time.monotonic())
        )
        result = await finish_progress(hass, dict(result))
        unsubscribe()
    finally:
        run_in_thread(device.thaw)
    assert ended, "no progress event"
    assert ended[0] - shown >= MIN_PROGRESS
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "qr_payload"
    assert result["errors"] == {"base": "timeout"}


async def test_closing_the_flow_stops_the_attempt(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    device = make_device()
    entry = await setup_account(hass, relay)
    controller = entry.runtime_data.controller
    run_in_thread(device.freeze)
    try:
        result = await hass.config_entries.subentries.async_init(
            (entry.entry_id, SUBENTRY_DEVICE), context={"source": SOURCE_USER}
        )
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"next_step_id": "qr_payload"}
        )
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {CONF_SETUP_PAYLOAD: device.qr_payload}
        )
        assert result["type"] is FlowResultType.SHOW_PROGRESS
        assert controller._pairing is not None
        hass.config_entries.subentries.async_abort(result["flow_id"])
        await wait_for(lambda: controller._pairing is None, limit=5)
    finally:
        run_in_thread(device.thaw)


async def test_rate_limited_by_relay(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
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


async def test_entry_not_loaded(hass: HomeAssistant, relay: ProxiedRelay) -> None:
    entry = await setup_account(hass, relay)
    await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_DEVICE), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "entry_not_loaded"


async def test_remove_subentry_unpairs(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    device = make_device()
    entry = await setup_account(hass, relay)
    subentry_id = await pair(hass, entry, device)
    offset = device.log.stat().st_size
    hass.config_entries.async_remove_subentry(entry, subentry_id)
    await hass.async_block_till_done()
    # The device forgot us and opened its pairing window; the relay released it.
    run_in_thread(lambda: device.wait_log("pairing window open", since=offset))
    assert entity_ids(hass, subentry_id) == []
    assert format_id(next(iter(entry.runtime_data.controller.links), b"\0" * 10)) != device.id_text
    devices = await entry.runtime_data.api.devices(entry.data["token"])
    assert device.id_text not in {d.device_id for d in devices}
    # So it can be paired again.
    await pair(hass, entry, device)


async def test_device_busy(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    """Another controller has an attempt open on the device: this one is told to wait."""
    device = make_device()
    other = await setup_account(hass, relay)
    # The other controller starts an attempt (PBKDF_PARAM_REQUEST) and goes silent.
    await other.runtime_data.controller.connection.send(
        FrameType.PAIR_START, parse_id(device.id_text), b"\x01\x01"
    )
    entry = await setup_account(hass, relay)
    result = await pair_flow(hass, entry, {CONF_SETUP_PAYLOAD: device.qr_payload})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "busy"}


async def test_locked_out_after_20_wrong_codes(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    device = make_device()
    entry = await setup_account(hass, relay)
    controller = entry.runtime_data.controller
    wrong = {CONF_DEVICE_ID: device.id_text, CONF_SETUP_CODE: _wrong(device.setup_code)}
    seen: list[str] = []
    for attempt in range(21):
        if attempt and attempt % 9 == 0:
            # The relay's PAIR_START limit (10 per device) is in memory: restart it.
            offset = device.log.stat().st_size
            before = controller.connection.established
            run_in_thread(relay.restart)
            await wait_for(
                lambda b=before: controller.connected and controller.connection.established > b,
                limit=60,
            )
            run_in_thread(lambda o=offset: device.wait_log("relay connected", 90, since=o))
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
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    first, second = make_device(), make_device(name="Second board")
    entry = await setup_account(hass, relay)

    async def add(device: DeviceProcess) -> dict[str, object]:
        result = await hass.config_entries.subentries.async_init(
            (entry.entry_id, SUBENTRY_DEVICE), context={"source": SOURCE_USER}
        )
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"next_step_id": "qr_payload"}
        )
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {CONF_SETUP_PAYLOAD: device.qr_payload}
        )
        return await finish_progress(hass, dict(result))

    # Both at once: the second starts while the first one's attempt runs.
    first_task = hass.async_create_task(add(first))
    await wait_for(lambda: entry.runtime_data.controller._pairing is not None)
    second_result = await add(second)
    results = [await first_task, second_result]
    assert results[0]["type"] is FlowResultType.CREATE_ENTRY
    assert results[1]["type"] is FlowResultType.FORM
    assert results[1]["errors"] == {"base": "in_progress"}


@pytest.mark.parametrize(
    ("raised", "error"),
    [
        (PairingError(PairingFailure.BAD_MESSAGE), "pairing_failed"),
        (PairingError(PairingFailure.IDENTITY_MISMATCH), "pairing_failed"),
        (PairingError(PairingFailure.WRONG_CODE), "wrong_code"),
        (RuntimeError("a bug"), "pairing_failed"),
    ],
)
async def test_pairing_failures_the_user_cannot_act_on(  # noqa: PLR0917 (fixtures)
    hass: HomeAssistant,
    relay: ProxiedRelay,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    raised: Exception,
    error: str,
) -> None:
    """Protocol failures get one generic message; a wrong code without a count says so
    without a number; a bug is logged with its traceback and the flow survives."""
    entry = await setup_account(hass, relay)

    async def fail(self: Controller, device_id: bytes, setup_code: str) -> bytes:
        raise raised

    monkeypatch.setattr(Controller, "pair", fail)
    result = await pair_flow(hass, entry, {CONF_SETUP_PAYLOAD: "HS1:MFRGGZDFMZTWQ2LK:20231187"})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}
    assert ("Unexpected pairing failure" in caplog.text) == isinstance(raised, RuntimeError)
