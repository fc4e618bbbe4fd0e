"""Config flow for HomeSeal: the relay account (sign in or create), reauth,
reconfigure, and "Add device" (pairing, a config subentry per device)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Final

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
from homeassistant.data_entry_flow import section
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)

from .compat import vol
from .const import (
    CONF_CA_PEM,
    CONF_DEVICE_ID,
    CONF_DEVICE_KEY,
    CONF_FINGERPRINT,
    CONF_PASSWORD_CONFIRM,
    CONF_SETUP_CODE,
    CONF_SETUP_PAYLOAD,
    DOMAIN,
    SECTION_TLS,
    SUBENTRY_DEVICE,
)
from .runtime import HomeSealConfigEntry, async_ssl_setting
from .vendor.homeseal_protocol import (
    CannotConnect,
    InvalidCredentials,
    InvalidRelayUrl,
    InvalidUsername,
    PairingError,
    PairingFailure,
    RateLimited,
    RelayApi,
    RelayApiError,
    TlsNotTrusted,
    Unauthorized,
    UsernameTaken,
    WeakPassword,
    format_id,
    normalize_url,
    parse_fingerprint,
    parse_id,
    parse_setup_payload,
    validate_setup_code,
)

_LOGGER = logging.getLogger(__name__)

# Pairing failures whose cause the user cannot act on get one generic message; every
# other PairingFailure value is its own translation key.
_PAIRING_FAILED: Final = frozenset(
    {
        PairingFailure.BAD_MESSAGE,
        PairingFailure.IDENTITY_MISMATCH,
        PairingFailure.UNSUPPORTED_VERSION,
    }
)
# How long "Add device" waits for the attempt before showing a spinner. An offline or
# mistyped device id is refused by the relay within milliseconds: the user gets the
# error on the form at once, and there is no progress step for the frontend to miss.
QUICK_RESULT_WAIT: Final = 1.0
# A spinner once shown stays at least this long. HA's frontend subscribes to the
# "progress done" event only after it has rendered the progress step; an attempt that
# ended in the few milliseconds before (measured: 3 ms) left the spinner turning for ever.
MIN_PROGRESS: Final = 1.0

_URL_FIELD = TextSelector(TextSelectorConfig(type=TextSelectorType.URL))
_PASSWORD = TextSelector(
    TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="current-password")
)
_NEW_PASSWORD = TextSelector(
    TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="new-password")
)
# A self-hosted relay's own CA or certificate pin: folded away, most users need neither.
_TLS_SECTION = section(
    vol.Schema(
        {
            vol.Optional(CONF_CA_PEM): TextSelector(TextSelectorConfig(multiline=True)),
            vol.Optional(CONF_FINGERPRINT): str,
        }
    ),
    {"collapsed": True},
)

SIGN_IN_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_URL): _URL_FIELD,
        vol.Required(CONF_USERNAME): TextSelector(
            TextSelectorConfig(type=TextSelectorType.TEXT, autocomplete="username")
        ),
        vol.Required(CONF_PASSWORD): _PASSWORD,
        vol.Required(SECTION_TLS): _TLS_SECTION,
    }
)
CREATE_ACCOUNT_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_URL): _URL_FIELD,
        vol.Required(CONF_USERNAME): TextSelector(
            TextSelectorConfig(type=TextSelectorType.TEXT, autocomplete="username")
        ),
        vol.Required(CONF_PASSWORD): _NEW_PASSWORD,
        vol.Required(CONF_PASSWORD_CONFIRM): _NEW_PASSWORD,
        vol.Required(SECTION_TLS): _TLS_SECTION,
    }
)
REAUTH_SCHEMA = vol.Schema({vol.Required(CONF_PASSWORD): _PASSWORD})
RECONFIGURE_SCHEMA = vol.Schema(
    {vol.Required(CONF_URL): _URL_FIELD, vol.Required(SECTION_TLS): _TLS_SECTION}
)
QR_PAYLOAD_SCHEMA = vol.Schema({vol.Required(CONF_SETUP_PAYLOAD): str})
MANUAL_SCHEMA = vol.Schema({vol.Required(CONF_DEVICE_ID): str, vol.Required(CONF_SETUP_CODE): str})

_TLS_KEYS: Final = (CONF_CA_PEM, CONF_FINGERPRINT)
_SECRET_FIELDS: Final = frozenset({CONF_PASSWORD, CONF_PASSWORD_CONFIRM})


def _tls_data(user_input: Mapping[str, Any], errors: dict[str, str]) -> dict[str, str]:
    """The TLS part of the entry data, validated; errors go into `errors`."""
    fields = user_input.get(SECTION_TLS) or {}
    ca_pem = (fields.get(CONF_CA_PEM) or "").strip()
    fingerprint = (fields.get(CONF_FINGERPRINT) or "").strip()
    data: dict[str, str] = {}
    if ca_pem and fingerprint:
        errors["base"] = "ca_and_fingerprint"
    elif fingerprint:
        try:
            data[CONF_FINGERPRINT] = parse_fingerprint(fingerprint).hex()
        except ValueError:
            errors["base"] = "invalid_fingerprint"
    elif ca_pem:
        if "-----BEGIN CERTIFICATE-----" not in ca_pem:
            errors["base"] = "invalid_ca"
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


def _suggested(user_input: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the user typed, to show again with the errors (never the passwords)."""
    return {k: v for k, v in (user_input or {}).items() if k not in _SECRET_FIELDS}


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

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        return self.async_show_menu(step_id="user", menu_options=["sign_in", "create_account"])

    async def async_step_sign_in(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        return await self._async_account_step("sign_in", SIGN_IN_SCHEMA, user_input)

    async def async_step_create_account(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        return await self._async_account_step("create_account", CREATE_ACCOUNT_SCHEMA, user_input)

    async def _async_account_step(
        self, step_id: str, schema: vol.Schema, user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            create = step_id == "create_account"
            username = user_input[CONF_USERNAME].strip().lower()
            password: str = user_input[CONF_PASSWORD]
            if create and user_input.get(CONF_PASSWORD_CONFIRM) != password:
                errors[CONF_PASSWORD_CONFIRM] = "password_mismatch"
            url, tls = _relay_data(user_input, errors)
            if not errors and (relay := await self._async_api(url, tls, errors)):
                api, relay_key = relay
                await self.async_set_unique_id(f"{relay_key}_{username}")
                self._abort_if_unique_id_configured()
                token = await self._async_sign_in(api, username, password, create, errors)
                if token is not None:
                    return self.async_create_entry(
                        title=f"{username} @ {api.base_url.removeprefix('https://')}",
                        data={CONF_URL: url, CONF_USERNAME: username, CONF_TOKEN: token, **tls},
                    )
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(schema, _suggested(user_input)),
            errors=errors,
        )

    async def _async_api(
        self, url: str, tls: Mapping[str, str], errors: dict[str, str]
    ) -> tuple[RelayApi, str] | None:
        """An API client for the relay plus its identity, or None with errors set."""
        try:
            ssl_setting = await async_ssl_setting(self.hass, tls)
        except ValueError:
            errors["base"] = "invalid_ca"
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
        except RelayApiError:  # answered, but not as a HomeSeal relay would
            errors["base"] = "unknown"
            return None
        return api, info.relay_key.hex()[:32]

    async def _async_sign_in(
        self,
        api: RelayApi,
        username: str,
        password: str,
        create: bool,
        errors: dict[str, str],
    ) -> str | None:
        """Create the account if asked, then log in; the password is never stored."""
        try:
            if create:
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

    def _async_update_and_finish(self, entry: ConfigEntry, **changes: Any) -> ConfigFlowResult:
        """Store the new token or address and finish. A loaded entry's update listener
        reloads it (HA 2026.6+ wants that, and 2026.12 requires it); an entry whose
        setup failed has no listener, so it is reloaded here."""
        if entry.update_listeners:
            return self.async_update_and_abort(entry, **changes)
        return self.async_update_reload_and_abort(entry, **changes)

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
                api, entry.data[CONF_USERNAME], user_input[CONF_PASSWORD], False, errors
            )
            if token is not None:
                return self._async_update_and_finish(entry, data_updates={CONF_TOKEN: token})
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
                    return self._async_update_and_finish(entry, data={**data, CONF_URL: url, **tls})
        suggested = user_input or {
            CONF_URL: entry.data[CONF_URL],
            SECTION_TLS: {k: entry.data[k] for k in _TLS_KEYS if k in entry.data},
        }
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(RECONFIGURE_SCHEMA, suggested),
            errors=errors,
        )


class DeviceSubentryFlow(ConfigSubentryFlow):
    """Pair a device: SPAKE2+ with its setup code, through the relay."""

    def __init__(self) -> None:
        self._device_id: bytes | None = None
        self._setup_code: str | None = None
        # The form the attempt started from ("qr_payload" or "manual"), what was typed in
        # it, and its errors and placeholders after a failed attempt.
        self._form_step = "qr_payload"
        self._last_input: dict[str, Any] = {}
        self._errors: dict[str, str] = {}
        self._placeholders: dict[str, str] = {}
        self._task: asyncio.Task[bytes] | None = None
        self._progress_task: asyncio.Task[None] | None = None
        self._device_key: bytes | None = None

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        entry: HomeSealConfigEntry = self._get_entry()
        if entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="entry_not_loaded")
        return self.async_show_menu(step_id="user", menu_options=["qr_payload", "manual"])

    async def async_step_qr_payload(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Paste the text of the label's QR code."""
        return await self._async_device_form("qr_payload", QR_PAYLOAD_SCHEMA, user_input)

    async def async_step_manual(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Type the device id and the setup code from the label."""
        return await self._async_device_form("manual", MANUAL_SCHEMA, user_input)

    async def _async_device_form(
        self, step_id: str, schema: vol.Schema, user_input: dict[str, Any] | None
    ) -> SubentryFlowResult:
        errors, self._errors = self._errors, {}
        placeholders, self._placeholders = self._placeholders, {}
        if user_input is not None:
            self._form_step, self._last_input = step_id, dict(user_input)
            if self._parse(user_input, errors):
                assert self._device_id is not None
                unique_id = format_id(self._device_id)
                if any(s.unique_id == unique_id for s in self._get_entry().subentries.values()):
                    return self.async_abort(reason="already_configured")
                return await self.async_step_pair()
        # After an error the form keeps what was typed (the user corrects a digit, not
        # the whole label).
        suggested = user_input if user_input is not None else self._last_input
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            description_placeholders=placeholders or None,
        )

    def _parse(self, user_input: Mapping[str, Any], errors: dict[str, str]) -> bool:
        if CONF_SETUP_PAYLOAD in user_input:
            try:
                parsed = parse_setup_payload(user_input[CONF_SETUP_PAYLOAD])
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
        if self._task is None:
            assert self._device_id is not None
            assert self._setup_code is not None
            controller = self._get_entry().runtime_data.controller
            self._task = self.hass.async_create_task(
                controller.pair(self._device_id, self._setup_code), "homeseal pairing"
            )
            done, _ = await asyncio.wait({self._task}, timeout=QUICK_RESULT_WAIT)
            if done:
                return await self._async_attempt_ended(progress_shown=False)
            self._progress_task = self.hass.async_create_task(
                _at_least(MIN_PROGRESS, self._task), "homeseal pairing progress"
            )
        assert self._progress_task is not None
        if not self._progress_task.done():
            return self.async_show_progress(
                step_id="pair",
                progress_action="pairing",
                progress_task=self._progress_task,
                description_placeholders={"device_id": format_id(self._device_id or b"")},
            )
        return await self._async_attempt_ended(progress_shown=True)

    async def _async_attempt_ended(self, *, progress_shown: bool) -> SubentryFlowResult:
        task, self._task, self._progress_task = self._task, None, None
        assert task is not None
        self._setup_code = None  # one attempt per code entry; never kept longer
        try:
            self._device_key = task.result()
        except PairingError as err:
            self._errors["base"] = _pairing_error_key(err)
            if err.attempts_left is not None and err.failure is PairingFailure.WRONG_CODE:
                self._placeholders = {"attempts_left": str(err.attempts_left)}
        except Exception:
            _LOGGER.exception("Unexpected pairing failure")
            self._errors["base"] = "pairing_failed"
        next_step = self._form_step if self._errors else "finish"
        if progress_shown:
            return self.async_show_progress_done(next_step_id=next_step)
        if next_step == "finish":
            return await self.async_step_finish()
        if next_step == "manual":
            return await self.async_step_manual()
        return await self.async_step_qr_payload()

    async def async_step_finish(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        assert self._device_id is not None
        assert self._device_key is not None
        device = format_id(self._device_id)
        # The device's own name replaces this title once it has described itself.
        return self.async_create_entry(
            title=f"HomeSeal {device}",
            data={CONF_DEVICE_ID: device, CONF_DEVICE_KEY: self._device_key.hex()},
            unique_id=device,
        )

    @callback
    def async_remove(self) -> None:
        """The flow was closed: stop its pairing attempt (the device counts it anyway)."""
        for task in (self._progress_task, self._task):
            if task is not None:
                task.cancel()


async def _at_least(seconds: float, task: asyncio.Task[Any]) -> None:
    """Wait for `task` (whatever its outcome) and for at least `seconds`."""
    await asyncio.gather(asyncio.wait({task}), asyncio.sleep(seconds))


def _pairing_error_key(err: PairingError) -> str:
    """The translation key of the form error for a failed pairing attempt."""
    if err.failure in _PAIRING_FAILED:
        return "pairing_failed"
    if err.failure is PairingFailure.WRONG_CODE and err.attempts_left is not None:
        return "wrong_code_attempts"
    return str(err.failure)
