"""HTTP API of PROTOCOL §8. Handlers only translate HTTP to AccountService calls."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from homeseal_protocol.ids import format_id, parse_id

from . import addresses
from . import app_keys as keys
from .accounts import ServiceError, TokenGrant
from .storage import StorageError

_LOG = logging.getLogger("relay_server.http")

STATUS: Final = {
    "invalid_request": 400,
    "invalid_username": 400,
    "weak_password": 400,
    "invalid_credentials": 401,
    "unauthorized": 401,
    "not_found": 404,
    "username_taken": 409,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "busy": 503,
    "too_many_connections": 503,
}
HTTP_CODES: Final = {
    400: "invalid_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
    503: "unavailable",
}
MAX_TOKEN_LEN: Final = 128
# Retry-After of 503 storage_unavailable (a database restart takes seconds).
STORAGE_RETRY_AFTER_S: Final = 2
# Refusals after which the connection is closed rather than kept alive.
_CLOSING_CODES: Final = frozenset({"too_many_connections"})


def json_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


def _iso(ts: int | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every error is JSON with a stable code; no stack trace ever reaches a client."""
    try:
        response: web.StreamResponse = await handler(request)
    except ServiceError as err:
        headers = None
        if err.retry_after is not None:
            headers = {"Retry-After": str(max(1, math.ceil(err.retry_after)))}
        response = json_error(STATUS.get(err.code, 400), err.code, err.message, headers)
        if err.code in _CLOSING_CODES:
            response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = HTTP_CODES.get(exc.status, "http_error")
        # Keep headers such as Allow (405); the body becomes our JSON error.
        headers = {k: v for k, v in exc.headers.items() if k.lower() != "content-type"}
        return json_error(exc.status, code, exc.reason, headers or None)
    except StorageError as err:
        # One line, no traceback: a database restart makes many of these at once.
        _LOG.error("storage failure", extra={"path": request.path, "error": str(err)})
        return json_error(
            503,
            "storage_unavailable",
            "the relay's database is unavailable",
            {"Retry-After": str(STORAGE_RETRY_AFTER_S)},
        )
    except Exception:
        _LOG.exception("unhandled error", extra={"path": request.path})
        return json_error(500, "internal_error", "internal error")
    return response


def client_address(request: web.Request) -> str:
    """The client's address, as the per-address limits count it (addresses.address_key);
    X-Forwarded-For only counts behind a trusted proxy, and only if it is an address."""
    return addresses.client_address(request, request.app[keys.CONFIG].behind_proxy)


def bearer_token(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LEN:
        raise ServiceError("unauthorized", "an 'Authorization: Bearer <token>' header is required")
    return token


async def _grant(request: web.Request) -> TokenGrant:
    return await request.app[keys.ACCOUNTS].authenticate(bearer_token(request))


async def _body(request: web.Request, *fields: str) -> list[str]:
    """The JSON object body with the given string fields: 415 unsupported_media_type
    unless the Content-Type is application/json, 400 invalid_request unless the body is
    a JSON object with those string fields. The body must arrive within the request
    timeout."""
    if request.content_type != "application/json":
        raise ServiceError(
            "unsupported_media_type", "the body must be JSON, sent as 'application/json'"
        )
    try:
        async with asyncio.timeout(request.app[keys.CONFIG].request_timeout_s):
            raw = await request.read()
    except TimeoutError:
        raise ServiceError("invalid_request", "the body did not arrive in time") from None
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ServiceError("invalid_request", "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ServiceError("invalid_request", "the body must be a JSON object")
    values = []
    for name in fields:
        value = body.get(name)
        if not isinstance(value, str):
            raise ServiceError("invalid_request", f"'{name}' must be a string")
        values.append(value)
    return values


async def relay_info(request: web.Request) -> web.Response:
    return web.json_response({"version": 1, "relay_key": request.app[keys.RELAY_KEY].public.hex()})


async def register(request: web.Request) -> web.Response:
    username, password = await _body(request, "username", "password")
    name = await request.app[keys.ACCOUNTS].register(username, password, client_address(request))
    _LOG.info("account registered", extra={"username": name})
    return web.json_response({"username": name}, status=201)


async def login(request: web.Request) -> web.Response:
    username, password = await _body(request, "username", "password")
    token, expires_at = await request.app[keys.ACCOUNTS].login(
        username, password, client_address(request)
    )
    return web.json_response({"token": token, "expires_at": _iso(expires_at)}, status=201)


async def logout(request: web.Request) -> web.Response:
    await request.app[keys.ACCOUNTS].logout(await _grant(request))
    return web.Response(status=204)


async def change_password(request: web.Request) -> web.Response:
    grant = await _grant(request)
    current, new = await _body(request, "current_password", "new_password")
    await request.app[keys.ACCOUNTS].change_password(grant, current, new, client_address(request))
    return web.Response(status=204)


async def delete_account(request: web.Request) -> web.Response:
    grant = await _grant(request)
    (password,) = await _body(request, "password")
    await request.app[keys.ACCOUNTS].delete_account(grant, password, client_address(request))
    return web.Response(status=204)


async def list_devices(request: web.Request) -> web.Response:
    grant = await _grant(request)
    devices = await request.app[keys.ACCOUNTS].list_devices(grant)
    online = await request.app[keys.ROUTER].online(d.device_id for d in devices)
    return web.json_response(
        {
            "devices": [
                {
                    "device_id": format_id(d.device_id),
                    "online": d.device_id in online,
                    "claimed_at": _iso(d.claimed_at),
                }
                for d in devices
            ]
        }
    )


async def remove_device(request: web.Request) -> web.Response:
    grant = await _grant(request)
    try:
        device_id = parse_id(request.match_info["device_id"])
    except ValueError:
        raise ServiceError("not_found", "no such device in this account") from None
    await request.app[keys.ACCOUNTS].remove_device(grant, device_id)
    return web.Response(status=204)


async def healthz(request: web.Request) -> web.Response:
    router = request.app[keys.ROUTER]
    if router.shutting_down:
        return web.json_response({"status": "shutting_down"}, status=503)
    if router.cluster is not None and not router.cluster.routable:
        # Its inbox does not deliver (Redis is away): take it out of the rotation.
        return web.json_response(
            {"status": "cannot_route"}, status=503, headers={"Retry-After": "1"}
        )
    await request.app[keys.STORAGE].ping()
    return web.json_response({"status": "ok"})


def metrics_handler(relay: web.Application) -> Any:
    """GET /metrics of `relay`, for the metrics listener (never the public one)."""

    async def metrics(request: web.Request) -> web.Response:
        if keys.METRICS not in relay:
            raise web.HTTPServiceUnavailable(reason="the relay is starting")
        body = generate_latest(relay[keys.METRICS])
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return metrics


def add_routes(app: web.Application) -> None:
    app.router.add_routes(
        [
            web.get("/api/v1/relay", relay_info),
            web.post("/api/v1/accounts", register),
            web.post("/api/v1/tokens", login),
            web.delete("/api/v1/tokens/current", logout),
            web.post("/api/v1/account/password", change_password),
            web.delete("/api/v1/account", delete_account),
            web.get("/api/v1/devices", list_devices),
            web.delete("/api/v1/devices/{device_id}", remove_device),
            web.get("/healthz", healthz),
        ]
    )
