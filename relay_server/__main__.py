"""Command line: `homeseal-relay` / `python -m relay_server`.

Every option has an environment variable (HOMESEAL_RELAY_*) as its default, so a
systemd unit or container can configure the relay without a command line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import signal
import socket
import ssl
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from .auth import KeyFileError
from .config import ClusterSettings, Config, Limits, RateLimit
from .logs import setup_logging
from .server import ListenError, RelayServer
from .storage import StorageError

_LOG = logging.getLogger("relay_server")
EXIT_CONFIG = 2


class ConfigError(Exception):
    """Bad configuration: reported on stderr, exit status 2."""


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"HOMESEAL_RELAY_{name}", default)


def _env_int(name: str, default: int) -> int:
    """An integer option's default: HOMESEAL_RELAY_<name> when set, else `default`."""
    raw = _env(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        # Exit 2 with one line, as argparse does for a bad command-line value.
        print(f"homeseal-relay: HOMESEAL_RELAY_{name}={raw!r} is not an integer", file=sys.stderr)
        raise SystemExit(2) from None


def _env_flag(name: str) -> bool:
    return (_env(name) or "").strip().lower() in ("1", "true", "yes", "on")


def build_parser() -> argparse.ArgumentParser:
    defaults = Config()
    lim = defaults.limits
    cluster = defaults.cluster
    p = argparse.ArgumentParser(
        prog="homeseal-relay",
        description="HomeSeal relay: accounts, device registry and routing of opaque frames. "
        "Every option defaults to the environment variable named in brackets.",
    )
    p.add_argument(
        "--host",
        default=_env("HOST", defaults.host),
        help="listen address [HOMESEAL_RELAY_HOST] (default %(default)s)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=_env_int("PORT", defaults.port),
        help="listen port [HOMESEAL_RELAY_PORT] (default %(default)s)",
    )
    p.add_argument(
        "--db",
        type=Path,
        default=Path(_env("DB", str(defaults.db_path)) or ""),
        help="SQLite database file [HOMESEAL_RELAY_DB] (default %(default)s)",
    )
    p.add_argument(
        "--database",
        metavar="URL",
        default=_env("DATABASE"),
        help="PostgreSQL instead of the SQLite file: postgresql://user:password@host:port/db "
        "(the nodes of a cluster share it) [HOMESEAL_RELAY_DATABASE]",
    )
    p.add_argument(
        "--database-pool",
        type=int,
        default=_env_int("DATABASE_POOL", defaults.database_pool_size),
        help="PostgreSQL connections this relay keeps at most "
        "[HOMESEAL_RELAY_DATABASE_POOL] (default %(default)s)",
    )
    p.add_argument(
        "--redis",
        metavar="URL",
        default=_env("REDIS"),
        help="run as one node of a cluster: presence, routing and shared rate limits on this "
        "Redis, redis://host:port/db (needs --database) [HOMESEAL_RELAY_REDIS]",
    )
    p.add_argument(
        "--node-name",
        default=_env("NODE_NAME", socket.gethostname()),
        help="this node's name in logs and metrics (its inbox is named after it) "
        "[HOMESEAL_RELAY_NODE_NAME] (default: the host name, %(default)s)",
    )
    p.add_argument(
        "--presence-ttl",
        type=float,
        default=float(_env("PRESENCE_TTL", str(cluster.presence_ttl_s)) or 0),
        help="seconds a presence key outlives its node (refreshed every third of it) "
        "[HOMESEAL_RELAY_PRESENCE_TTL] (default %(default)s)",
    )
    p.add_argument(
        "--cluster-grace",
        type=float,
        default=float(_env("CLUSTER_GRACE", str(cluster.unroutable_grace_s)) or 0),
        help="seconds a node that cannot route (its probes of its own inbox are lost) keeps "
        "its endpoints before closing them with 1012; it refuses new ones at once "
        "[HOMESEAL_RELAY_CLUSTER_GRACE] (default %(default)s)",
    )
    p.add_argument(
        "--event-loop",
        choices=["auto", "uvloop", "asyncio"],
        default=_env("EVENT_LOOP", "auto"),
        help="uvloop (less CPU per forwarded frame), asyncio (the standard loop, the "
        "fallback), or auto: uvloop if installed, except with --tls-cert (asyncio's TLS "
        "transport, whose read buffer the relay trims) [HOMESEAL_RELAY_EVENT_LOOP] "
        "(default %(default)s)",
    )
    p.add_argument(
        "--key-file",
        type=Path,
        default=Path(_env("KEY_FILE", str(defaults.key_file)) or ""),
        help="the relay's static X25519 key, created (mode 0600) on first start "
        "[HOMESEAL_RELAY_KEY_FILE] (default %(default)s)",
    )
    p.add_argument(
        "--tls-cert",
        type=Path,
        default=_env("TLS_CERT"),
        help="TLS certificate chain, PEM [HOMESEAL_RELAY_TLS_CERT]",
    )
    p.add_argument(
        "--tls-key",
        type=Path,
        default=_env("TLS_KEY"),
        help="TLS private key, PEM [HOMESEAL_RELAY_TLS_KEY]",
    )
    p.add_argument(
        "--behind-proxy",
        action="store_true",
        default=_env_flag("BEHIND_PROXY"),
        help="a TLS-terminating reverse proxy is in front: serve plain HTTP and "
        "trust the last X-Forwarded-For entry [HOMESEAL_RELAY_BEHIND_PROXY=1]",
    )
    p.add_argument(
        "--plain-http",
        action="store_true",
        default=_env_flag("PLAIN_HTTP"),
        help="serve plain HTTP without a proxy (local development and tests "
        "only) [HOMESEAL_RELAY_PLAIN_HTTP=1]",
    )
    p.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", defaults.log_level),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="[HOMESEAL_RELAY_LOG_LEVEL] (default %(default)s)",
    )
    p.add_argument(
        "--token-days",
        type=float,
        default=float(_env("TOKEN_DAYS", str(defaults.token_lifetime_s / 86400)) or 0),
        help="access token lifetime in days [HOMESEAL_RELAY_TOKEN_DAYS] (default %(default)s)",
    )
    p.add_argument(
        "--max-connections-per-account",
        type=int,
        default=_env_int("MAX_CONNECTIONS_PER_ACCOUNT", lim.connections_per_account),
        help="controller connections per account "
        "[HOMESEAL_RELAY_MAX_CONNECTIONS_PER_ACCOUNT] (default %(default)s)",
    )
    p.add_argument(
        "--device-frame-rate",
        type=float,
        default=float(_env("DEVICE_FRAME_RATE", str(lim.frames_per_device.rate)) or 0),
        help="frames per second a device may send; bursts of twice that "
        "[HOMESEAL_RELAY_DEVICE_FRAME_RATE] (default %(default)s)",
    )
    p.add_argument(
        "--account-frame-rate",
        type=float,
        default=float(_env("ACCOUNT_FRAME_RATE", str(lim.frames_per_account.rate)) or 0),
        help="frames per second an account's controllers may send together; "
        "bursts of twice that [HOMESEAL_RELAY_ACCOUNT_FRAME_RATE] "
        "(default %(default)s)",
    )
    p.add_argument(
        "--register-per-address",
        type=int,
        default=_env_int("REGISTER_PER_ADDRESS", int(lim.register_per_address.burst)),
        help="registrations one client address may make at once; one more per minute after "
        "that [HOMESEAL_RELAY_REGISTER_PER_ADDRESS] (default %(default)s)",
    )
    p.add_argument(
        "--login-per-address",
        type=int,
        default=_env_int("LOGIN_PER_ADDRESS", int(lim.login_per_address.burst)),
        help="login attempts one client address may make at once; one more every 3 s after "
        "that [HOMESEAL_RELAY_LOGIN_PER_ADDRESS] (default %(default)s)",
    )
    p.add_argument(
        "--metrics-listen",
        default=_env("METRICS_LISTEN", f"{defaults.metrics_host}:{defaults.metrics_port}"),
        metavar="HOST:PORT",
        help="where /metrics is served (never on the public listener; 'off': nowhere) "
        "[HOMESEAL_RELAY_METRICS_LISTEN] (default %(default)s)",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=float(_env("REQUEST_TIMEOUT", str(defaults.request_timeout_s)) or 0),
        help="seconds a connection has to finish its TLS handshake and then to send its "
        "first request (a websocket: its upgrade); kept-alive connections may idle "
        f"{defaults.keepalive_timeout_s:g} s between requests "
        "[HOMESEAL_RELAY_REQUEST_TIMEOUT] (default %(default)s)",
    )
    p.add_argument(
        "--max-unauthenticated",
        type=int,
        default=_env_int("MAX_UNAUTHENTICATED", lim.unauthenticated_connections),
        help="connections that are not an authenticated endpoint, in all; requests beyond "
        "get 503 too_many_connections [HOMESEAL_RELAY_MAX_UNAUTHENTICATED] "
        "(default %(default)s)",
    )
    p.add_argument(
        "--max-unauthenticated-per-address",
        type=int,
        default=int(
            _env("MAX_UNAUTHENTICATED_PER_ADDRESS", str(lim.unauthenticated_per_address)) or 0
        ),
        help="the same, per client address [HOMESEAL_RELAY_MAX_UNAUTHENTICATED_PER_ADDRESS] "
        "(default %(default)s)",
    )
    p.add_argument(
        "--hash-queue",
        type=int,
        default=_env_int("HASH_QUEUE", lim.hash_queue),
        help="password-hash jobs admitted at once (running or waiting on the "
        f"{lim.hash_workers} hash threads); beyond, 503 busy at once "
        "[HOMESEAL_RELAY_HASH_QUEUE] (default %(default)s)",
    )
    p.add_argument(
        "--hash-jobs-per-address",
        type=int,
        default=_env_int("HASH_JOBS_PER_ADDRESS", lim.hash_jobs_per_address),
        help="password-hash jobs one client address may have admitted; beyond, 429 "
        "[HOMESEAL_RELAY_HASH_JOBS_PER_ADDRESS] (default %(default)s)",
    )
    p.add_argument(
        "--no-malloc-trim",
        action="store_true",
        default=_env_flag("NO_MALLOC_TRIM"),
        help="do not hand freed memory back to the system after a flood of connections "
        "(glibc malloc_trim) [HOMESEAL_RELAY_NO_MALLOC_TRIM=1]",
    )
    p.add_argument(
        "--send-queue-kib",
        type=int,
        default=_env_int("SEND_QUEUE_KIB", lim.send_queue_bytes // 1024),
        help="KiB queued for one connection before it is closed as a slow "
        "consumer [HOMESEAL_RELAY_SEND_QUEUE_KIB] (default %(default)s)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> Config:
    if not 0 < args.port < 65536:
        raise ConfigError(f"invalid port {args.port}")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if args.tls_cert is None and not (args.behind_proxy or args.plain_http):
        raise ConfigError(
            "refusing to serve without TLS: give --tls-cert and --tls-key, or --behind-proxy "
            "(TLS terminated by a reverse proxy), or --plain-http (development only)"
        )
    for name in ("token_days", "device_frame_rate", "account_frame_rate"):
        if getattr(args, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive")
    if args.register_per_address < 1 or args.login_per_address < 1:
        raise ConfigError("--register-per-address and --login-per-address must be ≥ 1")
    if args.max_connections_per_account < 1 or args.send_queue_kib < 16:
        raise ConfigError("--max-connections-per-account ≥ 1 and --send-queue-kib ≥ 16")
    if args.request_timeout <= 0:
        raise ConfigError("--request-timeout must be positive")
    if args.database is not None and not args.database.startswith(("postgresql://", "postgres://")):
        raise ConfigError("--database wants a postgresql:// URL")
    if args.redis is not None:
        if not args.redis.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("--redis wants a redis:// URL")
        if args.database is None:
            raise ConfigError("--redis (a cluster) needs --database: the nodes share PostgreSQL")
    if args.database_pool < 1 or args.presence_ttl < 3 or args.cluster_grace < 0:
        raise ConfigError("--database-pool ≥ 1, --presence-ttl ≥ 3 and --cluster-grace ≥ 0")
    for name in (
        "max_unauthenticated",
        "max_unauthenticated_per_address",
        "hash_queue",
        "hash_jobs_per_address",
    ):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be ≥ 1")
    metrics_host, metrics_port = _listen_address(args.metrics_listen)
    lim = Limits()
    limits = replace(
        lim,
        connections_per_account=args.max_connections_per_account,
        frames_per_device=RateLimit(args.device_frame_rate, 2 * args.device_frame_rate),
        frames_per_account=RateLimit(args.account_frame_rate, 2 * args.account_frame_rate),
        send_queue_bytes=args.send_queue_kib * 1024,
        register_per_address=replace(lim.register_per_address, burst=args.register_per_address),
        login_per_address=replace(lim.login_per_address, burst=args.login_per_address),
        unauthenticated_connections=args.max_unauthenticated,
        unauthenticated_per_address=args.max_unauthenticated_per_address,
        hash_queue=args.hash_queue,
        hash_jobs_per_address=args.hash_jobs_per_address,
    )
    return Config(
        host=args.host,
        port=args.port,
        db_path=args.db,
        key_file=args.key_file,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        behind_proxy=args.behind_proxy,
        plain_http=args.plain_http,
        log_level=args.log_level,
        token_lifetime_s=int(args.token_days * 86400),
        request_timeout_s=args.request_timeout,
        metrics_host=metrics_host,
        metrics_port=metrics_port,
        malloc_trim=not args.no_malloc_trim,
        limits=limits,
        database_url=args.database,
        database_pool_size=args.database_pool,
        redis_url=args.redis,
        cluster=ClusterSettings(
            node_name=args.node_name,
            presence_ttl_s=args.presence_ttl,
            unroutable_grace_s=args.cluster_grace,
        ),
    )


def _listen_address(text: str) -> tuple[str | None, int]:
    """HOST:PORT ([v6]:PORT) of the metrics listener, or 'off'."""
    if text.strip().lower() == "off":
        return None, 0
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--metrics-listen wants HOST:PORT or 'off', not {text!r}")
    return host, int(port)


def ssl_context(config: Config) -> ssl.SSLContext | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(config.tls_cert, config.tls_key)
    except OSError as err:
        raise ConfigError(
            f"cannot read TLS certificate/key ({config.tls_cert}, {config.tls_key}): "
            f"{err.strerror or err}"
        ) from err
    except ssl.SSLError as err:
        raise ConfigError(f"invalid TLS certificate/key: {err.reason or err}") from err
    return ctx


def loop_factory(
    choice: str, ctx: ssl.SSLContext | None
) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop to run on (None: asyncio's). uvloop forwards a frame for less CPU
    (docs/RELAY.md, Capacity); with direct TLS `auto` keeps asyncio's loop, whose TLS
    read buffer the relay cuts to 32 KiB (server.TLS_READ_BUFFER)."""
    if choice == "asyncio" or (choice == "auto" and ctx is not None):
        return None
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        if choice == "uvloop":
            raise ConfigError("--event-loop uvloop: uvloop is not installed") from None
        return None
    return uvloop.new_event_loop


def _raise_fd_limit() -> None:
    """Every connection is a file descriptor: use the whole hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(config: Config, ctx: ssl.SSLContext | None) -> None:
    relay = RelayServer(config, ctx)
    try:
        await relay.setup()
    except KeyFileError as err:
        await relay.cleanup()
        raise ConfigError(str(err)) from err
    except StorageError as err:
        await relay.cleanup()
        where = config.db_path if config.database_url is None else "(--database/--redis)"
        raise ConfigError(f"cannot use database {where}: {err}") from err
    try:
        await relay.start()
    except ListenError as err:
        await relay.cleanup()
        raise ConfigError(str(err)) from err
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    _LOG.info(
        "listening",
        extra={
            "host": config.host,
            "port": config.port,
            "tls": ctx is not None,
            "behind_proxy": config.behind_proxy,
            "loop": type(loop).__module__.split(".")[0],
            "storage": "postgresql" if config.database_url else "sqlite",
            "cluster": config.cluster.node_name if config.redis_url else None,
            "metrics": None
            if config.metrics_host is None
            else f"{config.metrics_host}:{config.metrics_port}",
        },
    )
    await stop.wait()
    _LOG.info("shutting down")
    await relay.cleanup()
    _LOG.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        setup_logging(config.log_level)
        ctx = ssl_context(config)
        _raise_fd_limit()
        asyncio.run(serve(config, ctx), loop_factory=loop_factory(args.event_loop, ctx))
    except ConfigError as err:
        print(f"homeseal-relay: error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
