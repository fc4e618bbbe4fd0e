"""Typed keys of the resources an application holds (one set per app, no globals)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from .accounts import AccountService
from .auth import RelayKey
from .config import Config
from .guard import ConnectionGuard
from .passwords import HashPool
from .routing import Router
from .stats import Stats
from .storage import Storage

CONFIG = web.AppKey("config", Config)
STORAGE = web.AppKey("storage", Storage)
RELAY_KEY = web.AppKey("relay_key", RelayKey)
ROUTER = web.AppKey("router", Router)
ACCOUNTS = web.AppKey("accounts", AccountService)
METRICS = web.AppKey("metrics", CollectorRegistry)
GUARD = web.AppKey("guard", ConnectionGuard)
STATS = web.AppKey("stats", Stats)
HASH_POOL = web.AppKey("hash_pool", HashPool)
