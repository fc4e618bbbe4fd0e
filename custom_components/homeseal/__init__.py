"""HomeSeal: end-to-end encrypted remote devices through a relay."""

from __future__ import annotations

import asyncio
import logging

from homeassistant.const import CONF_TOKEN, CONF_URL, Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.dispatcher import async_dispatcher_send

from .compat import async_get_device
from .const import (
    CONF_DEVICE_ID,
    CONF_DEVICE_KEY,
    DOMAIN,
    NOT_RECOGNISED_AFTER,
    SUBENTRY_DEVICE,
    UNPAIR_TIMEOUT,
    signal_new_entities,
)
from .runtime import (
    HomeSealConfigEntry,
    HomeSealRuntimeData,
    async_ssl_setting,
    connection_settings,
)
from .store import ControllerStore
from .vendor.homeseal_protocol import (
    AuthRejected,
    CannotConnect,
    Controller,
    DeviceError,
    DeviceLink,
    RateLimited,
    RelayApi,
    RelayApiError,
    TlsNotTrusted,
    Unauthorized,
    format_id,
    parse_id,
)

_LOGGER = logging.getLogger(__name__)

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.COVER,
    Platform.EVENT,
    Platform.FAN,
    Platform.LIGHT,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
]


def not_recognised_issue_id(device_id: bytes) -> str:
    return f"not_recognised_{format_id(device_id).replace('-', '')}"


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
            _async_remove_stale_entities(hass, entry, link)
        async_dispatcher_send(hass, signal_new_entities(entry.entry_id))

    @callback
    def on_not_recognised(link: DeviceLink) -> None:
        _async_update_not_recognised(hass, entry, link)

    controller = Controller(
        session,
        entry.data[CONF_URL],
        token,
        static_key,
        ssl_setting,
        run_blocking=hass.async_add_executor_job,
        on_not_recognised=on_not_recognised,
        on_describe=on_describe,
        not_recognised_after=NOT_RECOGNISED_AFTER,
    )
    # The relay account is a service device; each paired device is connected via it.
    account_device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, entry.entry_id)},
        name=entry.title,
        manufacturer="HomeSeal",
        model="Relay account",
        entry_type=dr.DeviceEntryType.SERVICE,
    )
    entry.runtime_data = HomeSealRuntimeData(
        api=api,
        controller=controller,
        store=store,
        account_device=account_device,
        settings=connection_settings(entry.data),
    )
    for subentry in entry.subentries.values():
        if subentry.subentry_type == SUBENTRY_DEVICE:
            _async_add_device(hass, entry, subentry.subentry_id)

    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    entry.async_create_background_task(hass, _async_run(hass, entry, controller), "homeseal relay")
    entry.async_on_unload(entry.add_update_listener(_async_update_listener))
    return True


async def _async_run(
    hass: HomeAssistant, entry: HomeSealConfigEntry, controller: Controller
) -> None:
    try:
        await controller.run()
    except AuthRejected:
        _LOGGER.warning("The relay rejected this account's credentials")
        entry.async_start_reauth(hass)


@callback
def _async_add_device(hass: HomeAssistant, entry: HomeSealConfigEntry, subentry_id: str) -> None:
    runtime = entry.runtime_data
    subentry = entry.subentries[subentry_id]
    device_id = parse_id(subentry.data[CONF_DEVICE_ID])
    link = runtime.controller.add_device(
        device_id,
        bytes.fromhex(subentry.data[CONF_DEVICE_KEY]),
        runtime.store.cached_describe(format_id(device_id)),
    )
    runtime.subentries[device_id] = subentry_id

    if link.not_recognised:  # raised before this entry was (re)loaded
        _async_update_not_recognised(hass, entry, link)


@callback
def _async_sync_device(hass: HomeAssistant, entry: HomeSealConfigEntry, link: DeviceLink) -> None:
    """Keep the HA device (name, model, firmware) and the subentry title in step with
    what the device says about itself in describe."""
    describe = link.describe
    subentry_id = entry.runtime_data.subentries.get(link.device_id)
    if describe is None or subentry_id is None:
        return
    subentry = entry.subentries.get(subentry_id)
    if subentry is not None and subentry.title != describe.name:
        hass.config_entries.async_update_subentry(entry, subentry, title=describe.name)
    device_registry = dr.async_get(hass)
    if device := async_get_device(
        device_registry, (DOMAIN, format_id(link.device_id)), entry.entry_id
    ):
        device_registry.async_update_device(
            device.id, name=describe.name, model=describe.model, sw_version=describe.fw
        )


@callback
def _async_remove_stale_entities(
    hass: HomeAssistant, entry: HomeSealConfigEntry, link: DeviceLink
) -> None:
    """Remove the entities of this device that its fresh describe no longer lists."""
    subentry_id = entry.runtime_data.subentries.get(link.device_id)
    if subentry_id is None:
        return
    prefix = f"{format_id(link.device_id)}_"
    keys = {info.key for info in link.entities}
    registry = er.async_get(hass)
    for entity in er.async_entries_for_config_entry(registry, entry.entry_id):
        unique_id = entity.unique_id
        if (
            entity.config_subentry_id == subentry_id
            and unique_id.startswith(prefix)
            and unique_id[len(prefix) :] not in keys
        ):
            _LOGGER.info("Device %s no longer has %s: removing it", link.id_text, entity.entity_id)
            registry.async_remove(entity.entity_id)


@callback
def _async_update_not_recognised(
    hass: HomeAssistant, entry: HomeSealConfigEntry, link: DeviceLink
) -> None:
    """Raise (or clear) the repair issue of a device that keeps refusing this controller.

    What HA can know: the device (or whoever answers for it) has refused every
    handshake for a long while, although the relay reports it online. That is what a
    reset device, or one paired with another Home Assistant, looks like; the relay or
    the link could fake it too (an outage at worst: no key is ever accepted without
    pairing), so the issue says so, as a warning, and offers pairing again."""
    issue_id = not_recognised_issue_id(link.device_id)
    if not link.not_recognised:
        ir.async_delete_issue(hass, DOMAIN, issue_id)
        return
    subentry_id = entry.runtime_data.subentries.get(link.device_id)
    subentry = entry.subentries.get(subentry_id or "")
    title = subentry.title if subentry is not None else link.id_text
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=True,
        is_persistent=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key="not_recognised",
        translation_placeholders={
            "device": title,
            "device_id": link.id_text,
            "minutes": str(round(link.not_recognised_after / 60)),
        },
        data={"entry_id": entry.entry_id, "subentry_id": subentry_id or ""},
    )


async def _async_update_listener(hass: HomeAssistant, entry: HomeSealConfigEntry) -> None:
    """The entry changed. A new token (reauth), URL or TLS setting (reconfigure) starts
    it over; added or removed subentries start links to new devices and unpair
    removed ones in place."""
    runtime = entry.runtime_data
    if connection_settings(entry.data) != runtime.settings:
        hass.config_entries.async_schedule_reload(entry.entry_id)
        return
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
    if (link := runtime.controller.links.get(device_id)) is not None:
        try:
            await link.unpair(time_limit=UNPAIR_TIMEOUT)
        except DeviceError as err:
            _LOGGER.warning("Device %s did not confirm unpairing: %s", name, err)
    runtime.controller.remove_device(device_id)
    runtime.store.forget_device(name)
    ir.async_delete_issue(hass, DOMAIN, not_recognised_issue_id(device_id))
    try:
        await runtime.api.remove_device(entry.data[CONF_TOKEN], device_id)
    except RelayApiError as err:
        _LOGGER.warning("The relay did not release device %s: %s", name, err)


async def async_unload_entry(hass: HomeAssistant, entry: HomeSealConfigEntry) -> bool:
    """Unload an entry; the background task is cancelled by the entry itself."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.controller.close()
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
