"""HomeSeal: end-to-end encrypted remote devices through a relay."""

from __future__ import annotations

import asyncio
import logging

from homeassistant.const import CONF_TOKEN, CONF_URL, Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.dispatcher import async_dispatcher_send

from .client.api import (
    CannotConnect,
    RateLimited,
    RelayApi,
    RelayApiError,
    TlsNotTrusted,
    Unauthorized,
)
from .client.connection import AuthRejected
from .client.devices import DeviceError, DeviceLink, LinkState
from .client.hub import Hub
from .client.ids import format_id, parse_id
from .const import (
    CONF_DEVICE_ID,
    CONF_DEVICE_KEY,
    DOMAIN,
    SUBENTRY_DEVICE,
    UNPAIR_TIMEOUT,
    signal_new_entities,
)
from .runtime import HomeSealConfigEntry, HomeSealRuntimeData, async_ssl_setting
from .store import ControllerStore

_LOGGER = logging.getLogger(__name__)

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.LIGHT,
    Platform.SENSOR,
    Platform.SWITCH,
]


def key_mismatch_issue_id(device_id: bytes) -> str:
    return f"key_mismatch_{format_id(device_id).replace('-', '')}"


async def async_setup_entry(hass: HomeAssistant, entry: HomeSealConfigEntry) -> bool:
    """Set up one relay account."""
    session = async_get_clientsession(hass)
    try:
        ssl_setting = await async_ssl_setting(hass, entry.data)
    except ValueError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN, translation_key="tls_not_trusted"
        ) from err
    api = RelayApi(session, entry.data[CONF_URL], ssl_setting)
    token: str = entry.data[CONF_TOKEN]
    try:
        await api.devices(token)
    except Unauthorized as err:
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN, translation_key="token_rejected"
        ) from err
    except TlsNotTrusted as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN, translation_key="tls_not_trusted"
        ) from err
    except (CannotConnect, RateLimited, RelayApiError) as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN, translation_key="cannot_connect"
        ) from err

    store = ControllerStore(hass, entry.entry_id)
    static_key = await store.async_load()

    @callback
    def on_describe(link: DeviceLink) -> None:
        if link.describe is not None:
            store.save_describe(format_id(link.device_id), link.describe)
            _async_sync_device(hass, entry, link)
        async_dispatcher_send(hass, signal_new_entities(entry.entry_id))

    @callback
    def on_key_mismatch(link: DeviceLink, presented: bytes) -> None:
        _async_raise_key_mismatch(hass, entry, link)

    hub = Hub(
        session,
        entry.data[CONF_URL],
        token,
        static_key,
        ssl_setting,
        run_blocking=hass.async_add_executor_job,
        on_key_mismatch=on_key_mismatch,
        on_describe=on_describe,
    )
    entry.runtime_data = HomeSealRuntimeData(api=api, hub=hub, store=store)
    for subentry in entry.subentries.values():
        if subentry.subentry_type == SUBENTRY_DEVICE:
            _async_add_device(hass, entry, subentry.subentry_id)

    device_registry = dr.async_get(hass)
    device_registry.async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, entry.entry_id)},
        name=entry.title,
        manufacturer="HomeSeal",
        model="Relay account",
        entry_type=dr.DeviceEntryType.SERVICE,
    )

    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    entry.async_create_background_task(hass, _async_run(hass, entry, hub), "homeseal relay")
    entry.async_on_unload(entry.add_update_listener(_async_update_listener))
    return True


async def _async_run(hass: HomeAssistant, entry: HomeSealConfigEntry, hub: Hub) -> None:
    try:
        await hub.run()
    except AuthRejected:
        _LOGGER.warning("The relay rejected this account's credentials")
        entry.async_start_reauth(hass)


@callback
def _async_add_device(hass: HomeAssistant, entry: HomeSealConfigEntry, subentry_id: str) -> None:
    runtime = entry.runtime_data
    subentry = entry.subentries[subentry_id]
    device_id = parse_id(subentry.data[CONF_DEVICE_ID])
    link = runtime.hub.add_device(device_id, bytes.fromhex(subentry.data[CONF_DEVICE_KEY]))
    if link.describe is None:
        link.describe = runtime.store.cached_describe(format_id(device_id))
    runtime.subentries[device_id] = subentry_id

    @callback
    def on_change() -> None:
        if link.state is LinkState.READY:
            ir.async_delete_issue(hass, DOMAIN, key_mismatch_issue_id(device_id))

    entry.async_on_unload(link.add_listener(on_change))


@callback
def _async_sync_device(hass: HomeAssistant, entry: HomeSealConfigEntry, link: DeviceLink) -> None:
    """Keep the HA device's model, firmware and the subentry title in step with describe."""
    describe = link.describe
    subentry_id = entry.runtime_data.subentries.get(link.device_id)
    if describe is None or subentry_id is None:
        return
    device_registry = dr.async_get(hass)
    if device := device_registry.async_get_device(
        identifiers={(DOMAIN, format_id(link.device_id))}
    ):
        device_registry.async_update_device(device.id, model=describe.model, sw_version=describe.fw)


@callback
def _async_raise_key_mismatch(
    hass: HomeAssistant, entry: HomeSealConfigEntry, link: DeviceLink
) -> None:
    subentry_id = entry.runtime_data.subentries.get(link.device_id)
    subentry = entry.subentries.get(subentry_id or "")
    title = subentry.title if subentry is not None else link.name
    ir.async_create_issue(
        hass,
        DOMAIN,
        key_mismatch_issue_id(link.device_id),
        is_fixable=True,
        is_persistent=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key="key_mismatch",
        translation_placeholders={"device": title, "device_id": link.name},
        data={"entry_id": entry.entry_id, "subentry_id": subentry_id or ""},
    )


async def _async_update_listener(hass: HomeAssistant, entry: HomeSealConfigEntry) -> None:
    """Subentries changed: start links for new devices, unpair removed ones."""
    runtime = entry.runtime_data
    current = {
        subentry_id
        for subentry_id, subentry in entry.subentries.items()
        if subentry.subentry_type == SUBENTRY_DEVICE
    }
    for device_id, subentry_id in list(runtime.subentries.items()):
        if subentry_id not in current:
            del runtime.subentries[device_id]
            await _async_unpair(hass, entry, device_id)
    known = set(runtime.subentries.values())
    for subentry_id in current - known:
        _async_add_device(hass, entry, subentry_id)
    async_dispatcher_send(hass, signal_new_entities(entry.entry_id))


async def _async_unpair(hass: HomeAssistant, entry: HomeSealConfigEntry, device_id: bytes) -> None:
    """Tell the device to forget us (if reachable), then release it at the relay."""
    runtime = entry.runtime_data
    name = format_id(device_id)
    if (link := runtime.hub.links.get(device_id)) is not None:
        try:
            await link.unpair(time_limit=UNPAIR_TIMEOUT)
        except DeviceError as err:
            _LOGGER.warning("Device %s did not confirm unpairing: %s", name, err)
    runtime.hub.remove_device(device_id)
    runtime.store.forget_device(name)
    ir.async_delete_issue(hass, DOMAIN, key_mismatch_issue_id(device_id))
    try:
        await runtime.api.remove_device(entry.data[CONF_TOKEN], device_id)
    except RelayApiError as err:
        _LOGGER.warning("The relay did not release device %s: %s", name, err)


async def async_unload_entry(hass: HomeAssistant, entry: HomeSealConfigEntry) -> bool:
    """Unload an entry; the background task is cancelled by the entry itself."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.hub.close()
        await entry.runtime_data.store.async_flush()
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: HomeSealConfigEntry) -> None:
    """The entry is deleted: drop its key and revoke its token (best effort)."""
    await ControllerStore(hass, entry.entry_id).async_remove()
    try:
        ssl_setting = await async_ssl_setting(hass, entry.data)
        api = RelayApi(async_get_clientsession(hass), entry.data[CONF_URL], ssl_setting)
        async with asyncio.timeout(10):
            await api.logout(entry.data[CONF_TOKEN])
    except (RelayApiError, ValueError, TimeoutError) as err:
        _LOGGER.debug("Logout at the relay failed: %s", err)
