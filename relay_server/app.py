"""The application factories: create_app(config) -> the relay's web.Application, and
create_metrics_app(relay) -> the one that serves its /metrics on another listener."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from .accounts import AccountEvents, AccountService
from .app_keys import (
    ACCOUNTS,
    CONFIG,
    GUARD,
    HASH_POOL,
    METRICS,
    RELAY_KEY,
    ROUTER,
    STATS,
    STORAGE,
)
from .auth import load_or_create_key
from .config import Config
from .guard import ConnectionGuard, guard_middleware
from .http_api import add_routes, error_middleware, metrics_handler
from .metrics import make_metrics
from .passwords import HashPool
from .routing import Router
from .stats import Stats
from .storage import Storage
from .storage_sqlite import SqliteStorage
from .ws import controller_ws, device_ws

__all__ = [
    "ACCOUNTS",
    "CONFIG",
    "GUARD",
    "METRICS",
    "RELAY_KEY",
    "ROUTER",
    "STORAGE",
    "create_app",
    "create_metrics_app",
]


def create_app(config: Config, storage: Storage | None = None) -> web.Application:
    """A relay application. Resources are opened on startup and closed on cleanup."""
    stats = Stats()
    guard = ConnectionGuard(config, stats)
    app = web.Application(
        client_max_size=16 * 1024, middlewares=[error_middleware, guard_middleware(guard)]
    )
    app[CONFIG] = config
    app[STATS] = stats
    app[GUARD] = guard
    add_routes(app)
    app.router.add_get("/ws/device", device_ws)
    app.router.add_get("/ws/controller", controller_ws)
    app.cleanup_ctx.append(_resources(storage))
    app.on_shutdown.append(_shutdown)
    return app


def create_metrics_app(relay: web.Application) -> web.Application:
    """GET /metrics of `relay`, for its own listener (loopback by default)."""
    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/metrics", metrics_handler(relay))
    return app


def open_storage(config: Config) -> Storage:
    """The storage `config` names: PostgreSQL for a database URL, else the SQLite file."""
    if config.database_url is not None:
        from .storage_pg import PostgresStorage  # noqa: PLC0415 (asyncpg: cluster only)

        return PostgresStorage(config.database_url, config.database_pool_size)
    return SqliteStorage(config.db_path)


def _resources(
    given: Storage | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        limits = config.limits
        key = load_or_create_key(config.key_file)
        storage = given if given is not None else open_storage(config)
        await storage.open()
        # Password hashes are computed here, never on the event loop.
        pool = HashPool(
            limits.hash_workers, limits.hash_queue, limits.hash_jobs_per_address, app[STATS]
        )
        router = Router(storage, limits, stats=app[STATS])
        cluster = None
        try:
            events: AccountEvents = router.registry
            shared = None
            if config.redis_url is not None:
                from .cluster import Cluster  # noqa: PLC0415 (redis: cluster only)

                cluster = Cluster(config, router.registry, router.forwarding, storage, app[STATS])
                await cluster.start()
                router.cluster = cluster
                events, shared = cluster, cluster.limiter
            accounts = AccountService(storage, config, events, pool, shared=shared)
            await accounts.prepare()
            app[RELAY_KEY] = key
            app[STORAGE] = storage
            app[ROUTER] = router
            app[ACCOUNTS] = accounts
            app[HASH_POOL] = pool
            app[METRICS] = make_metrics(router, app[GUARD], pool)
            yield
        finally:
            await router.registry.closer.wait()
            router.registry.auth_log.flush()
            if cluster is not None:
                await cluster.stop()
            pool.shutdown()
            await storage.close()

    return ctx


async def _shutdown(app: web.Application) -> None:
    """Tell every peer the relay is restarting (1012) before the server stops."""
    if ROUTER in app:
        await app[ROUTER].shutdown()
