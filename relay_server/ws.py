"""The websocket endpoints /ws/device and /ws/controller (PROTOCOL §2, §4).

Each handler upgrades (subprotocol homeseal.v1 required), runs the
challenge-response, registers the connection with the router and then feeds
it every binary message. Text messages, frames before or outside their place,
and anything malformed close the connection with the code of §2.1.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import WSMsgType, web

from . import auth
from . import envelope as env
from .accounts import Session
from .app_keys import ACCOUNTS, CONFIG, RELAY_KEY, ROUTER, STORAGE
from .http_api import bearer_token, client_address, json_error
from .routing import NEEDS_STORAGE, ROLE_CONTROLLER, ROLE_DEVICE, Conn, Router
from .storage import StorageError

_LOG = logging.getLogger("relay_server.ws")


async def device_ws(request: web.Request) -> web.StreamResponse:
    return await _endpoint(request, ROLE_DEVICE, None)


async def controller_ws(request: web.Request) -> web.StreamResponse:
    # The token is checked before the upgrade: a bad one gets a plain 401.
    session = await request.app[ACCOUNTS].authenticate(bearer_token(request))
    return await _endpoint(request, ROLE_CONTROLLER, session)


async def close_ws(ws: web.WebSocketResponse, code: int) -> None:
    try:
        async with asyncio.timeout(3.0):
            await ws.close(code=code, message=env.CLOSE_REASONS.get(code, b""))
    except (TimeoutError, ConnectionError):
        pass


async def _endpoint(request: web.Request, role: str, session: Session | None) -> web.StreamResponse:
    app = request.app
    config, router = app[CONFIG], app[ROUTER]
    ws = web.WebSocketResponse(
        protocols=(env.SUBPROTOCOL,),
        heartbeat=config.heartbeat_s,
        # aiohttp refuses messages of max_msg_size bytes or more: allow exactly MAX_FRAME.
        max_msg_size=env.MAX_FRAME + 1,
        compress=False,
    )
    ready = ws.can_prepare(request)
    if not ready.ok or ready.protocol != env.SUBPROTOCOL:
        return json_error(
            400, "invalid_request", f"a websocket upgrade offering '{env.SUBPROTOCOL}' is required"
        )
    if router.shutting_down:
        return json_error(503, "restarting", "the relay is restarting")
    await ws.prepare(request)
    stats = router.stats
    router.pending.add(ws)
    try:
        result = await _authenticate(request, ws, role)
    finally:
        router.pending.discard(ws)
    if isinstance(result, int):
        if result in (env.CLOSE_AUTH_FAILED, env.CLOSE_AUTH_TIMEOUT):
            stats.auth_failures[role] = stats.auth_failures.get(role, 0) + 1
            _LOG.warning(
                "authentication failed",
                extra={"role": role, "code": result, "address": client_address(request)},
            )
        if result:
            await close_ws(ws, result)
        return ws

    endpoint_id, verified = result
    conn = Conn(ws, request, role, endpoint_id)
    # Authenticates this connection's CLAIM/RELEASE frames (§4.1); only devices send them.
    conn.control_key = verified.control_key if role == ROLE_DEVICE else None
    try:
        code = await _register(request, router, conn, verified.public_key, session)
        if code:
            if code == env.CLOSE_AUTH_FAILED:
                stats.auth_failures[role] = stats.auth_failures.get(role, 0) + 1
            await close_ws(ws, code)
            return ws
        await _read_loop(ws, conn, router)
    except StorageError:
        _LOG.exception("storage failure", extra={"role": role})
        router.close(conn, env.CLOSE_INTERNAL_ERROR)
    except Exception:
        # A bug must cost one connection, never the relay; the response is upgraded
        # already, so the error middleware cannot answer for us.
        _LOG.exception("unexpected error on a websocket", extra={"role": role})
        router.close(conn, env.CLOSE_INTERNAL_ERROR)
    finally:
        router.remove(conn)
    if conn.close_task is not None:
        # Let the close handshake started elsewhere (replaced, revoked…) finish.
        await asyncio.shield(conn.close_task)
    return ws


async def _authenticate(
    request: web.Request, ws: web.WebSocketResponse, role: str
) -> tuple[bytes, auth.Verified] | int:
    """(endpoint id, its key and k_ctl) on success, else a close code (0: the peer left)."""
    config, key = request.app[CONFIG], request.app[RELAY_KEY]
    nonce = auth.new_nonce()
    await ws.send_bytes(env.build(env.AUTH_CHALLENGE, env.ZERO_ID, key.public + nonce))
    try:
        # One deadline for the whole exchange: pings do not extend it.
        async with asyncio.timeout(config.auth_timeout_s):
            msg = await ws.receive()
    except TimeoutError:
        return env.CLOSE_AUTH_TIMEOUT
    if msg.type is WSMsgType.TEXT:
        return env.CLOSE_PROTOCOL_ERROR
    if msg.type is not WSMsgType.BINARY:
        return 0
    data: bytes = msg.data
    if len(data) < env.HEADER_LEN or data[0] != env.AUTH_RESPONSE:
        return env.CLOSE_PROTOCOL_ERROR
    role_byte = auth.ROLE_DEVICE if role == ROLE_DEVICE else auth.ROLE_CONTROLLER
    try:
        verified = auth.verify_response(key, nonce, role_byte, data[1:11], data[11:])
    except auth.AuthError as err:
        _LOG.info("auth response rejected", extra={"role": role, "reason": str(err)})
        return env.CLOSE_AUTH_FAILED
    return data[1:11], verified


async def _register(
    request: web.Request,
    router: Router,
    conn: Conn,
    public_key: bytes,
    session: Session | None,
) -> int:
    storage = request.app[STORAGE]
    now = int(time.time())
    if session is None:
        # Durable before AUTH_OK: a device the relay has acknowledged is registered.
        device = await storage.register_device(conn.endpoint_id, public_key, now)
        flags = b"\x01" if device.owner_account_id is not None else b"\x00"
        router.add_device(conn, device.owner_account_id, env.build(env.AUTH_OK, env.ZERO_ID, flags))
        return 0
    bound = await storage.bind_controller(conn.endpoint_id, session.account_id, now)
    if bound != session.account_id:
        _LOG.warning(
            "controller id bound to another account",
            extra={"controller_id": env.format_id(conn.endpoint_id)},
        )
        return env.CLOSE_AUTH_FAILED
    if session.expires_at <= time.time():
        return env.CLOSE_UNAUTHORIZED
    return router.add_controller(conn, session.account_id, session.token_hash, session.expires_at)


async def _read_loop(ws: web.WebSocketResponse, conn: Conn, router: Router) -> None:
    receive = ws.receive
    handle = router.handle
    binary = WSMsgType.BINARY
    while True:
        msg = await receive()
        if msg.type is binary:
            code = handle(conn, msg.data)
            if code:
                if code == NEEDS_STORAGE:
                    code = await router.control(conn, msg.data)
                if code:
                    router.close(conn, code)
                    return
        elif msg.type is WSMsgType.TEXT:
            router.stats.drop("protocol_error")
            router.close(conn, env.CLOSE_PROTOCOL_ERROR)
            return
        else:
            # CLOSE / CLOSING / CLOSED, or ERROR (aiohttp has closed with 1009 for an
            # oversized frame, 1002 for a broken one).
            if msg.type is WSMsgType.ERROR:
                router.stats.drop("ws_error")
            return
