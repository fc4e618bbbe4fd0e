"""The websocket endpoints /ws/device and /ws/controller (PROTOCOL §2, §4).

Each handler upgrades (subprotocol homeseal.v1 required), runs the
challenge-response, registers the endpoint with the registry and then feeds
every binary message to the forwarding path, acting on each frame's `Verdict`.
Text messages, frames before or outside their place, and anything malformed
close the connection with the code of §2.1.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import WSMsgType, web

from homeseal_protocol.envelope import (
    HEADER_LEN,
    MAX_FRAME,
    SUBPROTOCOL,
    ZERO_ID,
    CloseCode,
    FrameType,
    encode_frame,
)
from homeseal_protocol.errors import RelayAuthError
from homeseal_protocol.ids import format_id
from homeseal_protocol.relay_auth import Verified

from . import auth
from .accounts import TokenGrant
from .app_keys import ACCOUNTS, CONFIG, GUARD, RELAY_KEY, ROUTER, STORAGE
from .connections import Conn, ControllerConn, DeviceConn, Role
from .forwarding import Verdict
from .http_api import bearer_token, client_address, json_error
from .routing import Router
from .storage import StorageError

_LOG = logging.getLogger("relay_server.ws")

# Refusals that count as failed authentications.
_AUTH_FAILURES = frozenset({CloseCode.AUTH_FAILED, CloseCode.AUTH_TIMEOUT})


async def device_ws(request: web.Request) -> web.StreamResponse:
    return await _endpoint(request, Role.DEVICE, None)


async def controller_ws(request: web.Request) -> web.StreamResponse:
    # The token is checked before the upgrade: a bad one gets a plain 401.
    grant = await request.app[ACCOUNTS].authenticate(bearer_token(request))
    return await _endpoint(request, Role.CONTROLLER, grant)


async def _endpoint(
    request: web.Request, role: Role, grant: TokenGrant | None
) -> web.StreamResponse:
    router = request.app[ROUTER]
    ws = web.WebSocketResponse(
        protocols=(SUBPROTOCOL,),
        heartbeat=request.app[CONFIG].heartbeat_s,
        # aiohttp refuses messages of max_msg_size bytes or more: allow exactly MAX_FRAME.
        max_msg_size=MAX_FRAME + 1,
        compress=False,
    )
    ready = ws.can_prepare(request)
    if not ready.ok or ready.protocol != SUBPROTOCOL:
        return json_error(
            400, "invalid_request", f"a websocket upgrade offering '{SUBPROTOCOL}' is required"
        )
    if router.shutting_down:
        return json_error(503, "restarting", "the relay is restarting")
    if router.cluster is not None and not router.cluster.routable:
        # A node that cannot reach the others takes no endpoints: they retry elsewhere.
        return json_error(503, "unavailable", "this node cannot route; retry", {"Retry-After": "1"})
    await ws.prepare(request)
    guard = request.app[GUARD]
    guard.upgraded(request)
    link = Conn(ws, request)
    registry = router.registry
    registry.pending.add(link)
    conn: DeviceConn | ControllerConn | None = None
    try:
        conn = await _admit(request, router, link, role, grant)
        registry.pending.discard(link)
        if conn is not None:
            guard.authenticated(request)
            await _read_loop(ws, conn, router)
    except StorageError:
        _LOG.exception("storage failure", extra={"role": role})
        router.registry.closer.close(conn or link, CloseCode.INTERNAL_ERROR)
    except Exception:
        # A bug must cost one connection, never the relay; the response is upgraded
        # already, so the error middleware cannot answer for us.
        _LOG.exception("unexpected error on a websocket", extra={"role": role})
        router.registry.closer.close(conn or link, CloseCode.INTERNAL_ERROR)
    finally:
        registry.pending.discard(link)
        if conn is not None:
            registry.remove(conn)
    closing = (conn or link).close_task
    if closing is not None:
        # Let the close handshake finish, whoever started it (refused, replaced, revoked…).
        await asyncio.shield(closing)
    return ws


async def _admit(
    request: web.Request, router: Router, link: Conn, role: Role, grant: TokenGrant | None
) -> DeviceConn | ControllerConn | None:
    """Authenticate the endpoint on `link` and register it; None if it was refused
    (`link` is closing) or left."""
    outcome = await _authenticate(request, link, role)
    if outcome is None:
        return None
    if isinstance(outcome, CloseCode):
        _refuse(request, router, link, role, outcome)
        return None
    endpoint_id, verified = outcome
    storage = request.app[STORAGE]
    now = int(time.time())
    cluster = router.cluster
    if grant is None:
        # Durable before AUTH_OK: a device the relay has acknowledged is registered.
        device = await storage.register_device(endpoint_id, verified.public_key, now)
        if cluster is not None:
            await cluster.reserve(True, endpoint_id)  # its presence too (Redis)
        if link.close_code is not None or link.ws.closed:
            return None
        return router.registry.add_device(
            link, endpoint_id, verified.control_key, device.owner_account_id
        )
    bound = await storage.bind_controller(endpoint_id, grant.account_id, now)
    if bound != grant.account_id:
        _LOG.warning(
            "controller id bound to another account",
            extra={"controller_id": format_id(endpoint_id)},
        )
        refusal = CloseCode.AUTH_FAILED
    elif grant.expires_at <= time.time():
        refusal = CloseCode.UNAUTHORIZED
    else:
        if cluster is not None:
            await cluster.reserve(False, endpoint_id)
            if link.close_code is not None or link.ws.closed:
                return None
        added = router.registry.add_controller(link, endpoint_id, grant)
        if isinstance(added, ControllerConn):
            return added
        refusal = added
    _refuse(request, router, link, role, refusal)
    return None


def _refuse(request: web.Request, router: Router, link: Conn, role: Role, code: CloseCode) -> None:
    """Close a connection that does not get in (the one place counting its auth failure)."""
    if code in _AUTH_FAILURES:
        router.stats.auth_failed(role)
        # A flood of these (4,000 auth timeouts) logs a few lines and a summary a minute.
        router.registry.auth_log.log(
            f"{role}/{code.name.lower()}", client_address(request), role=role, code=int(code)
        )
    router.registry.closer.close(link, code)


async def _authenticate(
    request: web.Request, link: Conn, role: Role
) -> tuple[bytes, Verified] | CloseCode | None:
    """(endpoint id, its key and k_ctl) on success, else the close code to refuse it
    with, or None when the peer left."""
    config, key = request.app[CONFIG], request.app[RELAY_KEY]
    nonce = auth.new_nonce()
    link.send(encode_frame(FrameType.AUTH_CHALLENGE, ZERO_ID, key.public + nonce))
    try:
        # One deadline for the whole exchange: pings do not extend it.
        async with asyncio.timeout(config.auth_timeout_s):
            msg = await link.ws.receive()
    except TimeoutError:
        return CloseCode.AUTH_TIMEOUT
    if msg.type is WSMsgType.TEXT:
        return CloseCode.PROTOCOL_ERROR
    if msg.type is not WSMsgType.BINARY:
        return None
    data: bytes = msg.data
    if len(data) < HEADER_LEN or data[0] != FrameType.AUTH_RESPONSE:
        return CloseCode.PROTOCOL_ERROR
    try:
        verified = auth.verify_response(
            key, nonce, role.auth_byte, data[1:HEADER_LEN], data[HEADER_LEN:]
        )
    except RelayAuthError as err:
        _LOG.info("auth response rejected", extra={"role": role, "reason": str(err)})
        return CloseCode.AUTH_FAILED
    return data[1:HEADER_LEN], verified


async def _read_loop(
    ws: web.WebSocketResponse, conn: DeviceConn | ControllerConn, router: Router
) -> None:
    receive = ws.receive
    forward = router.forwarding.forward
    handled = Verdict.HANDLED
    binary = WSMsgType.BINARY
    while True:
        msg = await receive()
        if msg.type is binary:
            verdict = forward(conn, msg.data)
            if verdict is handled:
                continue
            if verdict is Verdict.CONTROL:
                verdict = await router.control.handle(conn, msg.data)
                if verdict is handled:
                    continue
            elif verdict is Verdict.CLUSTER:
                assert router.cluster is not None
                verdict = await router.cluster.pair_start(conn, msg.data)
                if verdict is handled:
                    continue
            if router.cluster is not None:
                # The answers to its frames still being looked up go out before the close.
                await router.cluster.settle()
            router.registry.closer.close(conn, verdict.close_code)
            return
        if msg.type is WSMsgType.TEXT:
            router.stats.drop("protocol_error")
            router.registry.closer.close(conn, CloseCode.PROTOCOL_ERROR)
            return
        # CLOSE / CLOSING / CLOSED, or ERROR (aiohttp has closed with 1009 for an
        # oversized frame, 1002 for a broken one).
        if msg.type is WSMsgType.ERROR:
            router.stats.drop("ws_error")
        return
