"""An active attacker on the websocket links: an aiohttp proxy in front of the real relay.

Endpoints connect to the proxy exactly as they would to the relay (/ws/device,
/ws/controller, same subprotocol and bearer token); the proxy opens the matching
connection upstream and pumps frames both ways. Every frame passes through `hook`,
which may drop it, change it, or emit others in its place — the attacker's whole
power over the link. `capture` keeps everything that crossed.

Put the device behind it for a man-in-the-middle on the device's link; put the
controller behind it for a malicious relay (it sees and controls exactly what the
relay does).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

SUBPROTOCOL = "homeseal.v1"
DEVICE, CONTROLLER = "device", "controller"
UP, DOWN = "up", "down"  # up: endpoint → relay; down: relay → endpoint

Hook = Callable[[str, str, bytes], list[bytes]]


@dataclass
class Captured:
    link: str
    direction: str
    data: bytes
    who: bytes  # the endpoint id the connection authenticated as (b"" before that)


@dataclass
class Mitm:
    upstream: str  # ws://host:port of the real relay
    hook: Hook | None = None
    # When set, the hook sees only the connection of this endpoint id; others pass.
    only: bytes | None = None
    capture: list[Captured] = field(default_factory=list)
    _server: TestServer | None = None
    _http: aiohttp.ClientSession | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # Live connections by (link, endpoint id): (endpoint side, relay side).
    _live: dict[tuple[str, bytes], tuple[object, object]] = field(default_factory=dict)

    @property
    def http_base(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("")).rstrip("/")

    @property
    def ws_device(self) -> str:
        return self.http_base.replace("http://", "ws://") + "/ws/device"

    async def start(self) -> Mitm:
        app = web.Application()
        app.router.add_get("/ws/device", self._handler(DEVICE))
        app.router.add_get("/ws/controller", self._handler(CONTROLLER))
        self._http = aiohttp.ClientSession()
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()
        if self._http is not None:
            await self._http.close()

    async def inject(self, link: str, who: bytes, direction: str, frame: bytes) -> None:
        """Send a frame of the attacker's own on a live connection: UP to the relay as if
        the endpoint sent it, DOWN to the endpoint as if the relay did."""
        endpoint_side, relay_side = self._live[(link, who)]
        target = relay_side if direction == UP else endpoint_side
        self.capture.append(Captured(link, direction, frame, who))
        await target.send_bytes(frame)  # type: ignore[attr-defined]

    def frames(self, link: str, direction: str, who: bytes | None = None) -> list[bytes]:
        return [
            c.data
            for c in self.capture
            if c.link == link and c.direction == direction and who in (None, c.who)
        ]

    def _filter(self, link: str, direction: str, data: bytes, who: bytes) -> list[bytes]:
        self.capture.append(Captured(link, direction, data, who))
        if self.hook is None or self.only not in (None, who):
            return [data]
        return self.hook(link, direction, data)

    def _handler(self, link: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            assert self._http is not None
            down = web.WebSocketResponse(protocols=(SUBPROTOCOL,), max_msg_size=0, autoping=True)
            await down.prepare(request)
            headers = {}
            if "Authorization" in request.headers:
                headers["Authorization"] = request.headers["Authorization"]
            try:
                up = await self._http.ws_connect(
                    self.upstream + request.path, protocols=(SUBPROTOCOL,), headers=headers,
                    max_msg_size=0, autoping=True,
                )  # fmt: skip
            except aiohttp.ClientError:
                await down.close(code=1011)
                return down

            who = [b""]

            async def pump(src: object, dst: object, direction: str) -> None:
                async for msg in src:  # type: ignore[attr-defined]
                    if msg.type is aiohttp.WSMsgType.BINARY:
                        data = msg.data
                        if direction == UP and data[:1] == b"\x02" and len(data) >= 11:
                            who[0] = data[1:11]  # AUTH_RESPONSE names the endpoint
                            self._live[(link, who[0])] = (down, up)
                        for out in self._filter(link, direction, data, who[0]):
                            if not dst.closed:  # type: ignore[attr-defined]
                                await dst.send_bytes(out)  # type: ignore[attr-defined]
                    elif msg.type is aiohttp.WSMsgType.TEXT:
                        await dst.send_str(msg.data)  # type: ignore[attr-defined]
                code = getattr(src, "close_code", None) or 1000
                if not dst.closed:  # type: ignore[attr-defined]
                    with contextlib.suppress(Exception):
                        await dst.close(code=code)  # type: ignore[attr-defined]

            up_task = asyncio.create_task(pump(down, up, UP))
            down_task = asyncio.create_task(pump(up, down, DOWN))
            self._tasks |= {up_task, down_task}
            try:
                await asyncio.wait({up_task, down_task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in (up_task, down_task):
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
                    self._tasks.discard(t)
                await up.close()
                await down.close()
            return down

        return handle
