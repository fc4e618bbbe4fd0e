"""Relay configuration: one frozen dataclass, built by __main__ from flags/env or by tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: `burst` tokens, refilled at `rate` per second."""

    rate: float
    burst: float


@dataclass(frozen=True, slots=True)
class Argon2Params:
    """Argon2id cost (RFC 9106). The default is OWASP's first recommendation for
    password storage: 19 MiB of memory, 2 passes, 1 lane."""

    time_cost: int = 2
    memory_kib: int = 19 * 1024
    parallelism: int = 1


@dataclass(frozen=True, slots=True)
class Limits:
    # HTTP: login/register attempts per username and per client address.
    login_per_user: RateLimit = RateLimit(rate=1 / 30, burst=5)
    login_per_address: RateLimit = RateLimit(rate=1 / 3, burst=30)
    register_per_address: RateLimit = RateLimit(rate=1 / 60, burst=10)
    register_per_user: RateLimit = RateLimit(rate=1 / 60, burst=3)
    # The other password checks (change_password, delete_account): per account and per
    # client address, buckets of their own (a stranger's failed logins cannot lock the
    # owner out of changing the password).
    password_check_per_account: RateLimit = RateLimit(rate=1 / 30, burst=5)
    password_check_per_address: RateLimit = RateLimit(rate=1 / 3, burst=30)
    # Every keyed limiter holds at most this many keys, whose sizes (sys.getsizeof) add
    # up to at most this many bytes; past either, new keys are refused (fail closed).
    limiter_max_entries: int = 10_000
    limiter_max_key_bytes: int = 2 * 1024 * 1024
    # The password-hash pool: worker threads, jobs admitted at once (running + waiting;
    # 503 busy beyond) and jobs one client address may have admitted (429 beyond).
    hash_workers: int = 2
    hash_queue: int = 16
    hash_jobs_per_address: int = 2
    # PAIR_START per (account, device) and per account (PROTOCOL §3.1 code 3).
    pair_start_per_account_device: RateLimit = RateLimit(rate=1 / 30, burst=10)
    pair_start_per_account: RateLimit = RateLimit(rate=1 / 15, burst=20)
    # Frames an endpoint may send (close 4005 beyond): per device connection, and
    # shared by all controller connections of one account.
    frames_per_device: RateLimit = RateLimit(rate=100, burst=200)
    frames_per_account: RateLimit = RateLimit(rate=500, burst=1000)
    # Controller connections per account (close 4006 beyond).
    connections_per_account: int = 16
    # Connections that are not (yet) an authenticated endpoint: HTTP requests and
    # websockets in the challenge-response. Globally and per client address; a request
    # beyond either cap is refused with 503 too_many_connections.
    unauthenticated_connections: int = 2048
    unauthenticated_per_address: int = 64
    # Bytes waiting in one connection's send buffer before it is a slow consumer (4004).
    send_queue_bytes: int = 256 * 1024


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """How one node of a cluster (`Config.redis_url` set) uses Redis (relay_server.cluster)."""

    # This node's name in logs and metrics; its inbox is named after it and a random
    # suffix drawn at each start (a restarted node never receives its predecessor's mail).
    node_name: str = "relay"
    # A presence key lives this long unless its connection refreshes it (every third).
    presence_ttl_s: float = 15.0
    # The node publishes a probe to its own inbox this often; one not back within
    # `probe_timeout_s` is lost: the subscription is rebuilt, and the node cannot route
    # until a probe comes back.
    probe_interval_s: float = 1.0
    probe_timeout_s: float = 2.0
    # A node that cannot route for this long closes its endpoints (1012) so they
    # reconnect to a node that can; it refuses upgrades (503) at once.
    unroutable_grace_s: float = 5.0
    # Bytes of frames waiting to be published to one other node; beyond, frames are
    # dropped (at-most-once, like a lost segment: PROTOCOL §3).
    outbox_bytes: int = 4 * 1024 * 1024
    # Frames waiting for the lookup of one destination, and lookups at once.
    pending_per_lookup: int = 64
    max_lookups: int = 4096
    # Remote locations remembered (the cache is cleared when it grows past this).
    location_cache: int = 200_000


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "0.0.0.0"
    port: int = 8443
    db_path: Path = Path("homeseal-relay.sqlite3")
    # A postgresql:// URL: PostgreSQL storage (storage_pg) instead of the SQLite file.
    database_url: str | None = None
    database_pool_size: int = 10
    # A redis:// URL: this relay is one node of a cluster (relay_server.cluster).
    redis_url: str | None = None
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    key_file: Path = Path("homeseal-relay.key")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    behind_proxy: bool = False
    plain_http: bool = False
    log_level: str = "INFO"
    token_lifetime_s: int = 180 * 24 * 3600
    auth_timeout_s: float = 10.0
    heartbeat_s: float = 20.0
    shutdown_timeout_s: float = 5.0
    # A connection must complete its TLS handshake, and then start its first request
    # (headers in; a body has as long again), within this.
    request_timeout_s: float = 5.0
    # A kept-alive connection that has completed a request may idle this long before
    # its next one: longer than HTTP clients keep idle connections in their pools
    # (aiohttp: 15 s), so that the client, not the relay, closes them (no race).
    keepalive_timeout_s: float = 20.0
    # /metrics is served only on this listener (None: not at all), never the public one.
    metrics_host: str | None = "127.0.0.1"
    metrics_port: int = 9464
    # Give freed heap memory back to the system after a flood of connections (glibc).
    malloc_trim: bool = True
    password_hash: Argon2Params = field(default_factory=Argon2Params)
    limits: Limits = field(default_factory=Limits)
