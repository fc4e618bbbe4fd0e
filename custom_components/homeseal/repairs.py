"""Repairs: a device that keeps refusing this Home Assistant (it was reset or paired
elsewhere).

No key is ever pinned without pairing. The fix offered is to remove the device, after
which the user pairs it again with its setup code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.components.repairs import ConfirmRepairFlow, RepairsFlow
from homeassistant.core import HomeAssistant

if TYPE_CHECKING:
    from .compat import RepairsFlowResult


class RemoveDeviceRepairFlow(ConfirmRepairFlow):
    """Confirm, then remove the device's subentry (its pinned key goes with it)."""

    def __init__(self, entry_id: str, subentry_id: str) -> None:
        super().__init__()
        self._entry_id = entry_id
        self._subentry_id = subentry_id

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
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
