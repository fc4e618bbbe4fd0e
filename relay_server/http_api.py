"""HTTP API of PROTOCOL §8. Handlers only translate HTTP to AccountService calls."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import app_keys as keys
from . import envelope as env
from .accounts import ServiceError, Session
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
    "rate_limited": 429,
}
_HTTP_CODES: Final = {
    400: "invalid_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
}
MAX_TOKEN_LEN: Final = 128


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
            headers = {"Retry-After": str(max(1, int(err.retry_after + 0.999)))}
        return json_error(STATUS.get(err.code, 400), err.code, err.message, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        # Keep headers such as Allow (405); the body becomes our JSON error.
        headers = {k: v for k, v in exc.headers.items() if k.lower() != "content-type"}
        return json_error(exc.status, code, exc.reason, headers or None)
    except StorageError:
        _LOG.exception("storage failure", extra={"path": request.path})
        return json_error(503, "storage_unavailable", "the relay's database is unavailable")
    except Exception:
        _LOG.exception("unhandled error", extra={"path": request.path})
        return json_error(500, "internal_error", "internal error")
    return response


def client_address(request: web.Request) -> str:
    """The client's address; X-Forwarded-For only counts behind a trusted proxy."""
    if request.app[keys.CONFIG].behind_proxy:
        forwarded = request.headers.getall("X-Forwarded-For", [])
        if forwarded:
            # The proxy appends the address it saw: the last entry is the one to trust.
            last = forwarded[-1].split(",")[-1].strip()
            if last:
                return last
    return request.remote or "unknown"


def bearer_token(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LEN:
        raise ServiceError("unauthorized", "an 'Authorization: Bearer <token>' header is required")
    return token


async def _session(request: web.Request) -> Session:
    return await request.app[keys.ACCOUNTS].authenticate(bearer_token(request))


async def _body(request: web.Request, *fields: str) -> list[str]:
    """The JSON object body with the given string fields, or 400 invalid_request."""
    try:
        body = json.loads(await request.read())
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
    await request.app[keys.ACCOUNTS].logout(await _session(request))
    return web.Response(status=204)


async def change_password(request: web.Request) -> web.Response:
    session = await _session(request)
    current, new = await _body(request, "current_password", "new_password")
    await request.app[keys.ACCOUNTS].change_password(session, current, new)
    return web.Response(status=204)


async def delete_account(request: web.Request) -> web.Response:
    session = await _session(request)
    (password,) = await _body(request, "password")
    await request.app[keys.ACCOUNTS].delete_account(session, password)
    return web.Response(status=204)


async def list_devices(request: web.Request) -> web.Response:
    session = await _session(request)
    router = request.app[keys.ROUTER]
    devices = await request.app[keys.ACCOUNTS].list_devices(session)
    return web.json_response(
        {
            "devices": [
                {
                    "device_id": env.format_id(d.device_id),
                    "online": router.is_online(d.device_id),
                    "claimed_at": _iso(d.claimed_at),
                }
                for d in devices
            ]
        }
    )


async def remove_device(request: web.Request) -> web.Response:
    session = await _session(request)
    try:
        device_id = env.parse_id(request.match_info["device_id"])
    except ValueError:
        raise ServiceError("not_found", "no such device in this account") from None
    await request.app[keys.ACCOUNTS].remove_device(session, device_id)
    return web.Response(status=204)


async def healthz(request: web.Request) -> web.Response:
    if request.app[keys.ROUTER].shutting_down:
        return web.json_response({"status": "shutting_down"}, status=503)
    await request.app[keys.STORAGE].ping()
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[keys.REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


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
            web.get("/metrics", metrics),
        ]
    )
