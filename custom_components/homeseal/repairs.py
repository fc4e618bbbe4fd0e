"""Repairs: a device that presented a different static key.

The key is never accepted. The only fix offered is to remove the device, after which
the user can pair it again with its setup code (which pins the new key knowingly).
"""

from __future__ import annotations

from typing import Any

from homeassistant import data_entry_flow
from homeassistant.components.repairs import ConfirmRepairFlow, RepairsFlow
from homeassistant.core import HomeAssistant


class RemoveDeviceRepairFlow(ConfirmRepairFlow):
    """Confirm, then remove the device's subentry (its pinned key goes with it)."""

    def __init__(self, entry_id: str, subentry_id: str) -> None:
        super().__init__()
        self._entry_id = entry_id
        self._subentry_id = subentry_id

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> data_entry_flow.FlowResult:
        if user_input is not None:
            entry = self.hass.config_entries.async_get_entry(self._entry_id)
            if entry is not None and self._subentry_id in entry.subentries:
                self.hass.config_entries.async_remove_subentry(entry, self._subentry_id)
        return await super().async_step_confirm(user_input)


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, Any] | None
) -> RepairsFlow:
    data = data or {}
    return RemoveDeviceRepairFlow(str(data.get("entry_id", "")), str(data.get("subentry_id", "")))
