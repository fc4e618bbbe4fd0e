"""Config flow for HomeSeal: relay account, reauth, reconfigure, and "Add device"."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
    SubentryFlowResult,
)
from homeassistant.const import CONF_PASSWORD, CONF_TOKEN, CONF_URL, CONF_USERNAME
from homeassistant.core import callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)

from .client.api import (
    CannotConnect,
    InvalidCredentials,
    InvalidRelayUrl,
    InvalidUsername,
    RateLimited,
    RelayApi,
    RelayApiError,
    TlsNotTrusted,
    Unauthorized,
    UsernameTaken,
    WeakPassword,
    normalize_url,
    parse_fingerprint,
)
from .client.ids import format_id, parse_id, parse_setup_payload, validate_setup_code
from .client.pairing_driver import (
    PairingDeviceOffline,
    PairingInProgress,
    PairingNotPermitted,
    PairingRateLimited,
    PairingRejected,
    PairingTimeout,
)
from .const import (
    ACTION_CREATE,
    ACTION_SIGN_IN,
    CONF_ACCOUNT_ACTION,
    CONF_CA_PEM,
    CONF_DEVICE_ID,
    CONF_DEVICE_KEY,
    CONF_FINGERPRINT,
    CONF_SETUP_CODE,
    CONF_SETUP_PAYLOAD,
    DOMAIN,
    SUBENTRY_DEVICE,
)
from .runtime import HomeSealConfigEntry, async_ssl_setting

_LOGGER = logging.getLogger(__name__)

# PAIR_ERROR codes (PROTOCOL §5.2) → translated error keys.
PAIR_ERRORS: dict[int, str] = {
    1: "not_in_pairing_mode",
    2: "wrong_code",
    3: "locked_out",
    4: "device_busy",
    5: "pairing_failed",
    6: "pairing_failed",
    7: "pairing_failed",
}

_TLS_FIELDS: dict[vol.Marker, Any] = {
    vol.Optional(CONF_CA_PEM): TextSelector(TextSelectorConfig(multiline=True)),
    vol.Optional(CONF_FINGERPRINT): str,
}

USER_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_URL): TextSelector(TextSelectorConfig(type=TextSelectorType.URL)),
        vol.Required(CONF_USERNAME): TextSelector(
            TextSelectorConfig(type=TextSelectorType.TEXT, autocomplete="username")
        ),
        vol.Required(CONF_PASSWORD): TextSelector(
            TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="current-password")
        ),
        vol.Required(CONF_ACCOUNT_ACTION, default=ACTION_SIGN_IN): SelectSelector(
            SelectSelectorConfig(
                options=[ACTION_SIGN_IN, ACTION_CREATE],
                mode=SelectSelectorMode.LIST,
                translation_key=CONF_ACCOUNT_ACTION,
            )
        ),
        **_TLS_FIELDS,
    }
)
REAUTH_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_PASSWORD): TextSelector(
            TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="current-password")
        )
    }
)
RECONFIGURE_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_URL): TextSelector(TextSelectorConfig(type=TextSelectorType.URL)),
        **_TLS_FIELDS,
    }
)
DEVICE_SCHEMA = vol.Schema(
    {
        vol.Optional(CONF_SETUP_PAYLOAD): str,
        vol.Optional(CONF_DEVICE_ID): str,
        vol.Optional(CONF_SETUP_CODE): str,
    }
)


def _tls_data(user_input: Mapping[str, Any], errors: dict[str, str]) -> dict[str, str]:
    """The TLS part of the entry data, validated; errors go into `errors`."""
    ca_pem = (user_input.get(CONF_CA_PEM) or "").strip()
    fingerprint = (user_input.get(CONF_FINGERPRINT) or "").strip()
    data: dict[str, str] = {}
    if ca_pem and fingerprint:
        errors["base"] = "ca_and_fingerprint"
    elif fingerprint:
        try:
            data[CONF_FINGERPRINT] = parse_fingerprint(fingerprint).hex()
        except ValueError:
            errors[CONF_FINGERPRINT] = "invalid_fingerprint"
    elif ca_pem:
        if "-----BEGIN CERTIFICATE-----" not in ca_pem:
            errors[CONF_CA_PEM] = "invalid_ca"
        else:
            data[CONF_CA_PEM] = ca_pem
    return data


def _relay_data(
    user_input: Mapping[str, Any], errors: dict[str, str]
) -> tuple[str, dict[str, str]]:
    """The relay URL and TLS settings from a form, validated; errors go into `errors`."""
    try:
        url = normalize_url(user_input[CONF_URL])
    except InvalidRelayUrl:
        errors[CONF_URL] = "invalid_url"
        url = ""
    return url, _tls_data(user_input, errors)


class HomeSealConfigFlow(ConfigFlow, domain=DOMAIN):
    """Sign in to (or create) a relay account."""

    VERSION = 1
    MINOR_VERSION = 1

    @classmethod
    @callback
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        return {SUBENTRY_DEVICE: DeviceSubentryFlow}

    async def _async_api(
        self, url: str, tls: Mapping[str, str], errors: dict[str, str]
    ) -> tuple[RelayApi, str] | None:
        """An API client for the relay plus its identity, or None with errors set."""
        try:
            ssl_setting = await async_ssl_setting(self.hass, tls)
        except ValueError:
            errors[CONF_CA_PEM] = "invalid_ca"
            return None
        api = RelayApi(async_get_clientsession(self.hass), url, ssl_setting)
        try:
            info = await api.relay_info()
        except TlsNotTrusted:
            errors["base"] = "tls_not_trusted"
            return None
        except CannotConnect:
            errors["base"] = "cannot_connect"
            return None
        except RelayApiError:
            errors["base"] = "unknown"
            return None
        return api, info.relay_key.hex()[:32]

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            username = user_input[CONF_USERNAME].strip().lower()
            password: str = user_input[CONF_PASSWORD]
            url, tls = _relay_data(user_input, errors)
            if not errors and (relay := await self._async_api(url, tls, errors)):
                api, relay_key = relay
                await self.async_set_unique_id(f"{relay_key}_{username}")
                self._abort_if_unique_id_configured()
                token = await self._async_sign_in(
                    api, username, password, user_input[CONF_ACCOUNT_ACTION], errors
                )
                if token is not None:
                    return self.async_create_entry(
                        title=f"{username} @ {api.base_url.removeprefix('https://')}",
                        data={CONF_URL: url, CONF_USERNAME: username, CONF_TOKEN: token, **tls},
                    )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(
                USER_SCHEMA,
                {k: v for k, v in (user_input or {}).items() if k != CONF_PASSWORD},
            ),
            errors=errors,
        )

    async def _async_sign_in(
        self,
        api: RelayApi,
        username: str,
        password: str,
        action: str,
        errors: dict[str, str],
    ) -> str | None:
        """Create the account if asked, then log in; the password is never stored."""
        try:
            if action == ACTION_CREATE:
                await api.register(username, password)
            token = await api.login(username, password)
        except UsernameTaken:
            errors[CONF_USERNAME] = "username_taken"
        except InvalidUsername:
            errors[CONF_USERNAME] = "invalid_username"
        except WeakPassword:
            errors[CONF_PASSWORD] = "weak_password"
        except InvalidCredentials:
            errors["base"] = "invalid_auth"
        except RateLimited:
            errors["base"] = "rate_limited"
        except TlsNotTrusted:
            errors["base"] = "tls_not_trusted"
        except CannotConnect:
            errors["base"] = "cannot_connect"
        except RelayApiError:
            errors["base"] = "unknown"
        else:
            return token.token
        return None

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None and (
            relay := await self._async_api(entry.data[CONF_URL], entry.data, errors)
        ):
            api, _ = relay
            token = await self._async_sign_in(
                api, entry.data[CONF_USERNAME], user_input[CONF_PASSWORD], ACTION_SIGN_IN, errors
            )
            if token is not None:
                return self.async_update_reload_and_abort(entry, data_updates={CONF_TOKEN: token})
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=REAUTH_SCHEMA,
            errors=errors,
            description_placeholders={
                CONF_USERNAME: entry.data[CONF_USERNAME],
                CONF_URL: entry.data[CONF_URL],
            },
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Move the account to another URL of the same relay (same relay key)."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            url, tls = _relay_data(user_input, errors)
            if not errors and (relay := await self._async_api(url, tls, errors)):
                api, relay_key = relay
                await self.async_set_unique_id(f"{relay_key}_{entry.data[CONF_USERNAME]}")
                self._abort_if_unique_id_mismatch(reason="wrong_relay")
                try:
                    await api.devices(entry.data[CONF_TOKEN])
                except Unauthorized:
                    errors["base"] = "invalid_auth"
                except TlsNotTrusted:
                    errors["base"] = "tls_not_trusted"
                except RelayApiError:
                    errors["base"] = "cannot_connect"
                else:
                    data = {k: v for k, v in entry.data.items() if k not in _TLS_KEYS}
                    return self.async_update_reload_and_abort(
                        entry, data={**data, CONF_URL: url, **tls}
                    )
        suggested = user_input or {k: entry.data.get(k) for k in (CONF_URL, *_TLS_KEYS)}
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(RECONFIGURE_SCHEMA, suggested),
            errors=errors,
        )


_TLS_KEYS = (CONF_CA_PEM, CONF_FINGERPRINT)


class DeviceSubentryFlow(ConfigSubentryFlow):
    """Pair a device: SPAKE2+ with its setup code, through the relay."""

    def __init__(self) -> None:
        self._device_id: bytes | None = None
        self._setup_code: str | None = None
        self._task: asyncio.Task[bytes] | None = None
        self._errors: dict[str, str] = {}
        self._placeholders: dict[str, str] = {}
        self._device_key: bytes | None = None

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        entry: HomeSealConfigEntry = self._get_entry()
        if entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="entry_not_loaded")
        errors, self._errors = self._errors, {}
        placeholders, self._placeholders = self._placeholders, {}
        if user_input is not None and self._parse(user_input, errors):
            assert self._device_id is not None
            unique_id = format_id(self._device_id)
            if any(s.unique_id == unique_id for s in entry.subentries.values()):
                return self.async_abort(reason="already_configured")
            return await self.async_step_pair()
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(
                DEVICE_SCHEMA,
                {
                    k: v
                    for k, v in (user_input or {}).items()
                    if k not in (CONF_SETUP_CODE, CONF_SETUP_PAYLOAD)
                },
            ),
            errors=errors,
            description_placeholders=placeholders or {"attempts_left": "?"},
        )

    def _parse(self, user_input: Mapping[str, Any], errors: dict[str, str]) -> bool:
        payload = (user_input.get(CONF_SETUP_PAYLOAD) or "").strip()
        if payload:
            try:
                parsed = parse_setup_payload(payload)
            except ValueError:
                errors[CONF_SETUP_PAYLOAD] = "invalid_payload"
                return False
            self._device_id, self._setup_code = parsed.device_id, parsed.setup_code
            return True
        try:
            self._device_id = parse_id(user_input.get(CONF_DEVICE_ID) or "")
        except ValueError:
            errors[CONF_DEVICE_ID] = "invalid_device_id"
        try:
            self._setup_code = validate_setup_code(user_input.get(CONF_SETUP_CODE) or "")
        except ValueError:
            errors[CONF_SETUP_CODE] = "invalid_setup_code"
        return not errors

    async def async_step_pair(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        entry: HomeSealConfigEntry = self._get_entry()
        started = self._task is None
        if self._task is None:
            assert self._device_id is not None
            assert self._setup_code is not None
            hub = entry.runtime_data.hub
            self._task = self.hass.async_create_task(
                hub.pair(self._device_id, self._setup_code), "homeseal pairing"
            )
        # Always show progress first, even if the task already ended (it can fail at
        # once): "progress done" straight from the form would re-run the form's input.
        if started or not self._task.done():
            return self.async_show_progress(
                step_id="pair",
                progress_action="pairing",
                progress_task=self._task,
                description_placeholders={"device_id": format_id(self._device_id or b"")},
            )
        task, self._task = self._task, None
        self._setup_code = None  # one attempt per code entry; never kept longer
        try:
            self._device_key = task.result()
        except PairingRejected as err:
            self._errors["base"] = PAIR_ERRORS.get(err.code, "pairing_failed")
            if self._errors["base"] == "wrong_code" and err.attempts_left is not None:
                self._errors["base"] = "wrong_code_attempts"
                self._placeholders = {"attempts_left": str(err.attempts_left)}
        except PairingDeviceOffline:
            self._errors["base"] = "device_offline"
        except PairingRateLimited:
            self._errors["base"] = "rate_limited"
        except PairingNotPermitted:
            self._errors["base"] = "not_permitted"
        except PairingTimeout:
            self._errors["base"] = "timeout"
        except PairingInProgress:
            self._errors["base"] = "pairing_in_progress"
        except Exception:
            _LOGGER.exception("Unexpected pairing failure")
            self._errors["base"] = "pairing_failed"
        if self._errors:
            return self.async_show_progress_done(next_step_id="user")
        return self.async_show_progress_done(next_step_id="finish")

    async def async_step_finish(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        assert self._device_id is not None
        assert self._device_key is not None
        device = format_id(self._device_id)
        return self.async_create_entry(
            title=f"HomeSeal {device}",
            data={CONF_DEVICE_ID: device, CONF_DEVICE_KEY: self._device_key.hex()},
            unique_id=device,
        )
