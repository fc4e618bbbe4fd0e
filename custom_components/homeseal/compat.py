"""What differs between the Home Assistant releases the integration supports.

Supported: 2026.2 (Python 3.13) up to the newest release tested (2026.10). Each
difference is detected by feature, never by version number, so a release that
back-ports a change keeps working; each helper type-checks against both.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, cast

from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceEntry, DeviceInfo

if TYPE_CHECKING:
    # Annotations only (never evaluated at run time).
    if sys.version_info >= (3, 14):
        from homeassistant.components.repairs import RepairsFlowResult
    else:
        from homeassistant.data_entry_flow import FlowResult as RepairsFlowResult

# Module moves between the releases. HA 2026.3 and later need Python ≥ 3.14.2
# and 2026.2 runs on 3.13, so the interpreter's version tells which layout is there
# (to mypy as well as at run time).
if sys.version_info >= (3, 14):
    # 2026.9: HA validates with probatio, and aliases `voluptuous` to it at start-up.
    import probatio as vol
    from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
    from homeassistant.components.fan.const import FanEntityFeature
    from homeassistant.components.light.const import (
        ATTR_BRIGHTNESS,
        ATTR_COLOR_TEMP_KELVIN,
        ATTR_RGB_COLOR,
        ATTR_RGBW_COLOR,
    )
else:
    import voluptuous as vol
    from homeassistant.components.binary_sensor import BinarySensorDeviceClass
    from homeassistant.components.fan import FanEntityFeature
    from homeassistant.components.light import (
        ATTR_BRIGHTNESS,
        ATTR_COLOR_TEMP_KELVIN,
        ATTR_RGB_COLOR,
        ATTR_RGBW_COLOR,
    )

# 2026.7 gave button event entities standard event types (ButtonEventType); on older
# releases the same strings are plain event types.
try:
    from homeassistant.components.event import ButtonEventType  # type: ignore[attr-defined,unused-ignore]

    BUTTON_EVENT_TYPES: dict[str, str] = {t.value: t.value for t in ButtonEventType}
except ImportError:
    BUTTON_EVENT_TYPES = {t: t for t in ("press_end", "long_press_start", "multi_press_end")}

__all__ = [
    "ATTR_BRIGHTNESS",
    "ATTR_COLOR_TEMP_KELVIN",
    "ATTR_RGBW_COLOR",
    "ATTR_RGB_COLOR",
    "BUTTON_EVENT_TYPES",
    "BinarySensorDeviceClass",
    "FanEntityFeature",
    "RepairsFlowResult",
    "async_get_device",
    "device_info",
    "vol",
]

# 2026.8 deprecated DeviceInfo(via_device=<identifier>) for via_device_id=<registry id>;
# 2026.9 removed the old key from the TypedDict.
HA_HAS_VIA_DEVICE_ID: bool = "via_device_id" in DeviceInfo.__annotations__


def device_info(via: DeviceEntry, via_identifier: tuple[str, str], **fields: Any) -> DeviceInfo:
    """DeviceInfo for a device connected through the device `via` (the relay account)."""
    info: dict[str, Any] = dict(fields)
    if HA_HAS_VIA_DEVICE_ID:
        info["via_device_id"] = via.id
    else:
        info["via_device"] = via_identifier
    return cast(DeviceInfo, info)


def async_get_device(
    registry: dr.DeviceRegistry, identifier: tuple[str, str], config_entry_id: str
) -> DeviceEntry | None:
    """The entry's device with this identifier (2026.9 deprecated
    async_get_device(identifiers=…), and tests on 2026.10 turn it into a RuntimeError)."""
    by_identifier = getattr(registry, "async_get_device_by_identifier", None)
    if by_identifier is not None:
        return cast(DeviceEntry | None, by_identifier(identifier, config_entry_id))
    return registry.async_get_device(identifiers={identifier})
