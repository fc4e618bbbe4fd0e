"""The relay's listeners: the public one (HTTP API and websockets, plain or TLS) and
the metrics one (loopback by default), run by `RelayServer`.

The public listener uses the relay's own request handler, an aiohttp
`RequestHandler` that

- reports each connection to the `ConnectionGuard` (request deadline, caps of
  connections that are not authenticated);
- answers what aiohttp refuses before any handler runs (a malformed request line, a
  header over 8190 bytes …) with the JSON error of PROTOCOL §8 instead of plain text,
  logging it as one summarised INFO line instead of an ERROR with a traceback.

Its TLS handshakes must finish within the request timeout (`ssl_handshake_timeout`),
and a TLS connection reads into a 32 KiB buffer instead of asyncio's 256 KiB one
(TLS_READ_BUFFER): a TLS record holds at most 16 KiB, and the larger buffer made
every TLS connection cost 282 KiB of memory instead of 58 KiB (docs/RELAY.md).
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import logging
import ssl
from typing import Any, Final

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from .app import create_app, create_metrics_app
from .app_keys import GUARD
from .config import Config
from .guard import ConnectionGuard, trim_memory
from .http_api import HTTP_CODES, json_error
from .logs import LogSummary
from .storage import Storage

_LOG = logging.getLogger("relay_server.http")

# Bytes asyncio's TLS transport reads at once (its default: 256 KiB per connection).
TLS_READ_BUFFER: Final = 32 * 1024
BACKLOG: Final = 4096


class ListenError(Exception):
    """A listener could not be opened (its address is in the message)."""


async def _listen(site: web.BaseSite, host: str, port: int) -> None:
    try:
        await site.start()
    except OSError as err:
        raise ListenError(f"cannot listen on {host}:{port}: {err.strerror or err}") from err


class RelayRequestHandler(RequestHandler):
    __slots__ = ("_guard", "_rejects")

    def __init__(
        self, manager: web.Server, *, guard: ConnectionGuard, rejects: LogSummary, **kwargs: Any
    ) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._rejects = rejects

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # asyncio's or uvloop's TCP transport (uvloop's do not subclass asyncio.Transport).
        self._guard.opened(self, transport)  # type: ignore[arg-type]

    def connection_lost(self, exc: BaseException | None) -> None:
        self._guard.lost(self)
        super().connection_lost(exc)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """What aiohttp answers itself (a request it could not parse, an error outside
        the middlewares): the §8 JSON error, and the connection is closed."""
        if status >= 500:
            _LOG.error("unhandled error", exc_info=exc, extra={"path": request.path})
            code, text = "internal_error", "internal error"
        else:
            code = HTTP_CODES.get(status, "invalid_request")
            text = "malformed or oversized HTTP request"
            self._rejects.log(
                str(status),
                request.remote,
                status=status,
                reason=type(exc).__name__ if exc else message,
            )
        if request.writer.output_size > 0:
            raise ConnectionError("a response was sent already: cannot send the error")
        response = json_error(status, code, text)
        response.force_close()
        return response


class RelaySite(web.TCPSite):
    """A TCP listener with the relay's request handler and TLS handshake deadline."""

    __slots__ = ("_handler_kwargs", "_handshake_timeout")

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        handshake_timeout: float,
        handler_kwargs: dict[str, Any],
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context, backlog=BACKLOG)
        self._handshake_timeout = handshake_timeout
        self._handler_kwargs = handler_kwargs

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        kwargs = self._handler_kwargs

        def factory() -> RelayRequestHandler:
            return RelayRequestHandler(server, loop=loop, **kwargs)

        tls: dict[str, Any] = {}
        if self._ssl_context is not None:
            tls = {
                "ssl_handshake_timeout": self._handshake_timeout,
                "ssl_shutdown_timeout": self._handshake_timeout,
            }
        self._server = await loop.create_server(
            factory, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog, **tls
        )

    @property
    def port(self) -> int:
        assert isinstance(self._server, asyncio.Server)
        return int(self._server.sockets[0].getsockname()[1])


class RelayServer:
    """A relay: its application on the public listener, /metrics on its own."""

    def __init__(
        self,
        config: Config,
        ssl_context: ssl.SSLContext | None = None,
        storage: Storage | None = None,
    ) -> None:
        self.config = config
        self.app = create_app(config, storage)
        self._ssl = ssl_context
        self._runner = web.AppRunner(
            self.app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=config.shutdown_timeout_s,
        )
        self._metrics_runner: web.AppRunner | None = None
        self._site: RelaySite | None = None
        self._metrics_site: web.TCPSite | None = None
        self._trim: asyncio.Task[None] | None = None
        self.rejects = LogSummary(_LOG, logging.INFO, "malformed HTTP request")

    async def setup(self) -> None:
        """Open the application's resources (database, key); nothing listens yet."""
        await self._runner.setup()

    async def start(self) -> None:
        """Listen: the public listener, then the metrics one (ListenError if one cannot)."""
        config = self.config
        if self._ssl is not None:
            # A TLS record is at most 16 KiB: asyncio's 256 KiB read buffer per
            # connection only costs memory (see the module docstring).
            asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER
        site = RelaySite(
            self._runner,
            config.host,
            config.port,
            ssl_context=self._ssl,
            handshake_timeout=config.request_timeout_s,
            handler_kwargs={
                "guard": self.app[GUARD],
                "rejects": self.rejects,
                "access_log": None,
            },
        )
        await _listen(site, config.host, config.port)
        self._site = site
        if config.metrics_host is not None:
            runner = web.AppRunner(create_metrics_app(self.app), access_log=None)
            await runner.setup()
            self._metrics_runner = runner
            metrics_site = web.TCPSite(runner, config.metrics_host, config.metrics_port)
            await _listen(metrics_site, config.metrics_host, config.metrics_port)
            self._metrics_site = metrics_site
        if config.malloc_trim:
            self._trim = asyncio.create_task(trim_memory(self.app[GUARD]))

    @property
    def port(self) -> int:
        """The public listener's port (the one it got, for a configured port 0)."""
        assert self._site is not None
        return self._site.port

    @property
    def metrics_port(self) -> int | None:
        if self._metrics_runner is None:
            return None
        return int(self._metrics_runner.addresses[0][1])

    async def cleanup(self) -> None:
        """Stop listening, close every connection (1012) and the resources."""
        if self._trim is not None:
            self._trim.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._trim
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
        await self._runner.cleanup()
        self.rejects.flush()
