"""The application factory: create_app(config) -> web.Application."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from . import envelope as env
from .accounts import AccountService
from .app_keys import ACCOUNTS, CONFIG, REGISTRY, RELAY_KEY, ROUTER, STORAGE
from .auth import load_or_create_key
from .config import Config
from .http_api import add_routes, error_middleware
from .metrics import make_registry
from .routing import Router
from .storage import Storage
from .storage_sqlite import SqliteStorage
from .ws import controller_ws, device_ws

__all__ = ["ACCOUNTS", "CONFIG", "REGISTRY", "RELAY_KEY", "ROUTER", "STORAGE", "create_app"]


def create_app(config: Config, storage: Storage | None = None) -> web.Application:
    """A relay application. Resources are opened on startup and closed on cleanup."""
    app = web.Application(client_max_size=16 * 1024, middlewares=[error_middleware])
    app[CONFIG] = config
    add_routes(app)
    app.router.add_get("/ws/device", device_ws)
    app.router.add_get("/ws/controller", controller_ws)
    app.cleanup_ctx.append(_resources(storage))
    app.on_shutdown.append(_shutdown)
    return app


def _resources(
    given: Storage | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        key = load_or_create_key(config.key_file)
        storage = given if given is not None else SqliteStorage(config.db_path)
        await storage.open()
        # scrypt runs here, never on the event loop.
        executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="relay-scrypt")
        router = Router(storage, config.limits)
        try:
            accounts = AccountService(storage, config, router, executor)
            await accounts.prepare()
            app[RELAY_KEY] = key
            app[STORAGE] = storage
            app[ROUTER] = router
            app[ACCOUNTS] = accounts
            app[REGISTRY] = make_registry(router)
            yield
        finally:
            await router.wait_closed()
            executor.shutdown(wait=True)
            await storage.close()

    return ctx


async def _shutdown(app: web.Application) -> None:
    """Tell every peer the relay is restarting (1012) before the server stops."""
    if ROUTER in app:
        await app[ROUTER].close_all(env.CLOSE_RESTARTING)
