"""The relay's HTTP API (PROTOCOL §8) over an injected aiohttp ClientSession (`http`)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp

from ..errors import (
    CannotConnect,
    InvalidCredentials,
    InvalidRelayUrl,
    InvalidUsername,
    NotFound,
    RateLimited,
    RelayApiError,
    TlsNotTrusted,
    Unauthorized,
    UsernameTaken,
    WeakPassword,
)
from ..ids import format_id

API_PREFIX: Final = "/api/v1"
REQUEST_TIMEOUT: Final = 15.0

type SslSetting = ssl.SSLContext | aiohttp.Fingerprint | bool


_ERRORS: Final[dict[str, type[RelayApiError]]] = {
    "invalid_credentials": InvalidCredentials,
    "unauthorized": Unauthorized,
    "username_taken": UsernameTaken,
    "invalid_username": InvalidUsername,
    "weak_password": WeakPassword,
    "not_found": NotFound,
}


@dataclass(frozen=True, slots=True)
class Token:
    token: str
    expires_at: Any


@dataclass(frozen=True, slots=True)
class RelayInfo:
    version: int
    relay_key: bytes


@dataclass(frozen=True, slots=True)
class RelayDevice:
    device_id: str
    online: bool


def normalize_url(url: str) -> str:
    """Canonical base URL of a relay: https, lowercase host, no trailing slash or query."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise InvalidRelayUrl("the relay URL must start with https://")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port and parts.port != 443 else host
    return urlunsplit(("https", netloc, parts.path.rstrip("/"), "", ""))


def websocket_url(base_url: str) -> str:
    """The controller websocket endpoint of a relay (§2)."""
    return "wss" + normalize_url(base_url)[len("https") :] + "/ws/controller"


def parse_fingerprint(text: str) -> bytes:
    """A SHA-256 certificate fingerprint as hex, with or without colons/spaces."""
    cleaned = text.replace(":", "").replace(" ", "").strip().lower()
    try:
        digest = bytes.fromhex(cleaned)
    except ValueError:
        raise ValueError("fingerprint must be hexadecimal") from None
    if len(digest) != 32:
        raise ValueError("fingerprint must be a SHA-256 digest (32 bytes)")
    return digest


def build_ssl_context(ca_pem: str) -> ssl.SSLContext:
    """Verifying context trusting only `ca_pem`. Reads no files but is CPU-heavy: run it
    in the executor."""
    try:
        context = ssl.create_default_context(cadata=ca_pem)
    except (ssl.SSLError, ValueError) as err:
        raise ValueError("not a PEM CA certificate") from err
    return context


class RelayApi:
    """Typed calls to one relay. TLS verification is whatever `ssl_setting` says; the
    caller passes True (system CAs), a context with a custom CA, or a Fingerprint."""

    def __init__(
        self, http: aiohttp.ClientSession, base_url: str, ssl_setting: SslSetting = True
    ) -> None:
        self._http = http
        self.base_url = normalize_url(base_url)
        self.ssl = ssl_setting

    async def _request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with self._http.request(
                method,
                self.base_url + API_PREFIX + path,
                json=body,
                headers=headers,
                ssl=self.ssl,
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
            ) as response:
                data: Any = None
                if response.status != 204:
                    try:
                        data = await response.json(content_type=None)
                    except ValueError:
                        data = None
                if response.status >= 400:
                    self._raise(response, data)
                return response.status, data
        except (aiohttp.ServerFingerprintMismatch, aiohttp.ClientSSLError) as err:
            raise TlsNotTrusted(str(err)) from err
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise CannotConnect(str(err) or type(err).__name__) from err

    @staticmethod
    def _raise(response: aiohttp.ClientResponse, data: Any) -> None:
        code = ""
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            code = str(data["error"].get("code", ""))
        if response.status == 429:
            retry: float | None = None
            try:
                retry = float(response.headers.get("Retry-After", ""))
            except ValueError:
                retry = None
            raise RateLimited("rate limited by the relay", retry)
        if code in _ERRORS:
            raise _ERRORS[code](code)
        if response.status == 401:
            raise Unauthorized("unauthorized")
        raise CannotConnect(f"unexpected answer {response.status} {code}".strip())

    async def relay_info(self) -> RelayInfo:
        _, data = await self._request("GET", "/relay")
        try:
            return RelayInfo(int(data["version"]), bytes.fromhex(data["relay_key"]))
        except (TypeError, KeyError, ValueError) as err:
            raise CannotConnect("not a HomeSeal relay") from err

    async def register(self, username: str, password: str) -> None:
        await self._request("POST", "/accounts", body={"username": username, "password": password})

    async def login(self, username: str, password: str) -> Token:
        _, data = await self._request(
            "POST", "/tokens", body={"username": username, "password": password}
        )
        try:
            return Token(str(data["token"]), data.get("expires_at"))
        except (TypeError, KeyError) as err:
            raise CannotConnect("malformed login answer") from err

    async def logout(self, token: str) -> None:
        await self._request("DELETE", "/tokens/current", token=token)

    async def devices(self, token: str) -> list[RelayDevice]:
        _, data = await self._request("GET", "/devices", token=token)
        try:
            return [RelayDevice(str(d["device_id"]), bool(d["online"])) for d in data["devices"]]
        except (TypeError, KeyError) as err:
            raise CannotConnect("malformed device list") from err

    async def remove_device(self, token: str, device_id: bytes) -> None:
        await self._request(
            "DELETE", f"/devices/{quote(format_id(device_id), safe='')}", token=token
        )
