"""Repair issues and their fix flows: a device that keeps refusing this Home Assistant
(SECURITY.md L3), with the real relay and the real firmware."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from homeassistant.components.repairs import repairs_flow_manager
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component

from custom_components.homeseal import not_recognised_issue_id
from custom_components.homeseal.const import DOMAIN
from custom_components.homeseal.vendor.homeseal_protocol.client.controller import Controller
from custom_components.homeseal.vendor.homeseal_protocol.client.device_link import DeviceLink
from custom_components.homeseal.vendor.homeseal_protocol.envelope import Frame, FrameType
from custom_components.homeseal.vendor.homeseal_protocol.session import ResetReason, encode_reset
from testbed.firmware import DeviceProcess
from testbed.ha_flows import entity_ids, pair, setup_account, wait_available, wait_for
from testbed.relay import ProxiedRelay

from .conftest import run_in_thread

pytestmark = pytest.mark.micropython  # the real firmware, through the real relay


async def _refuse(controller: Controller, link: DeviceLink, seconds: float) -> None:
    """What a relay (or the device) answering "not paired" to every handshake for
    `seconds` looks like to HA: the device online, and RESET after RESET."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        controller._on_frame(Frame(FrameType.PRESENCE, link.device_id, b"\x01"))
        controller._on_frame(
            Frame(FrameType.SESSION, link.device_id, encode_reset(ResetReason.NOT_PAIRED))
        )
        await asyncio.sleep(0.05)


async def test_l3_a_refusing_device_raises_a_warning_and_its_fix_pairs_again(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    device = make_device()
    entry = await setup_account(hass, relay)
    subentry_id = await pair(hass, entry, device)
    ids = entity_ids(hass, subentry_id)
    controller = entry.runtime_data.controller
    link = next(iter(controller.links.values()))
    pinned = link.device_static_pub
    issue_id = not_recognised_issue_id(link.device_id)
    issues = ir.async_get(hass)

    # A few forged RESETs (the relay can send them) raise nothing.
    run_in_thread(device.freeze)  # the genuine device cannot answer meanwhile
    link.not_recognised_after = 1.0
    await _refuse(controller, link, 0.3)
    assert issues.async_get_issue(DOMAIN, issue_id) is None
    # Refused for longer: a warning that says what HA knows, and what to do.
    await _refuse(controller, link, 1.2)
    issue = issues.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.WARNING
    assert issue.is_fixable
    assert issue.translation_key == "not_recognised"
    assert issue.translation_placeholders["device_id"] == device.id_text
    assert link.device_static_pub == pinned  # never replaced
    await wait_available(hass, ids, available=False)
    switch = hass.data["entity_components"]["switch"].get_entity("switch.test_board_relay")
    with pytest.raises(HomeAssistantError) as err:
        await switch.async_turn_on()
    assert err.value.translation_key == "not_recognised"

    # The genuine device back: a session with the pinned key clears the issue.
    run_in_thread(device.thaw)
    controller._on_frame(Frame(FrameType.PRESENCE, link.device_id, b"\x01"))
    await wait_available(hass, ids, available=True)
    await wait_for(lambda: issues.async_get_issue(DOMAIN, issue_id) is None, limit=90)
    assert link.device_static_pub == pinned

    # Raised again, its fix flow removes the device so it can be paired again.
    run_in_thread(device.freeze)
    await _refuse(controller, link, 1.2)
    run_in_thread(device.thaw)
    assert issues.async_get_issue(DOMAIN, issue_id) is not None
    assert await async_setup_component(hass, "repairs", {})
    manager = repairs_flow_manager(hass)
    assert manager is not None
    flow = await manager.async_init(DOMAIN, data={"issue_id": issue_id})
    assert flow["step_id"] == "confirm"
    assert flow["description_placeholders"]["device_id"] == device.id_text
    result = await manager.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert subentry_id not in entry.subentries
    assert issues.async_get_issue(DOMAIN, issue_id) is None
