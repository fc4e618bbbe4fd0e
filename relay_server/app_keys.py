"""Typed keys of the resources an application holds (one set per app, no globals)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from .accounts import AccountService
from .auth import RelayKey
from .config import Config
from .routing import Router
from .storage import Storage

CONFIG = web.AppKey("config", Config)
STORAGE = web.AppKey("storage", Storage)
RELAY_KEY = web.AppKey("relay_key", RelayKey)
ROUTER = web.AppKey("router", Router)
ACCOUNTS = web.AppKey("accounts", AccountService)
REGISTRY = web.AppKey("registry", CollectorRegistry)
