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
class Limits:
    # HTTP: login/register attempts per username and per client address.
    login_per_user: RateLimit = RateLimit(rate=1 / 30, burst=5)
    login_per_address: RateLimit = RateLimit(rate=1 / 3, burst=30)
    register_per_address: RateLimit = RateLimit(rate=1 / 60, burst=10)
    register_per_user: RateLimit = RateLimit(rate=1 / 60, burst=3)
    # PAIR_START per device and per account (PROTOCOL §3.1 code 3).
    pair_start_per_device: RateLimit = RateLimit(rate=1 / 30, burst=10)
    pair_start_per_account: RateLimit = RateLimit(rate=1 / 15, burst=20)
    # Frames an endpoint may send (close 4005 beyond): per device connection, and
    # shared by all controller connections of one account.
    frames_per_device: RateLimit = RateLimit(rate=100, burst=200)
    frames_per_account: RateLimit = RateLimit(rate=500, burst=1000)
    # Controller connections per account (close 4006 beyond).
    connections_per_account: int = 16
    # Bytes waiting in one connection's send buffer before it is a slow consumer (4004).
    send_queue_bytes: int = 256 * 1024


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "0.0.0.0"
    port: int = 8443
    db_path: Path = Path("homeseal-relay.sqlite3")
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
    # scrypt cost: N = 2**14, r = 8, p = 1 (16 MiB, the usual interactive setting).
    scrypt_n: int = 2**14
    limits: Limits = field(default_factory=Limits)
