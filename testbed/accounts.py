"""A relay account over the relay's HTTP API (PROTOCOL §8): register, log in."""

from __future__ import annotations

import secrets
import ssl
from typing import Any, NamedTuple

import aiohttp


class Account(NamedTuple):
    username: str
    token: str


async def _post_credentials(
    http: aiohttp.ClientSession,
    url: str,
    username: str,
    password: str,
    ssl_context: ssl.SSLContext | None,
) -> Any:
    """POST username and password; anything but 201 Created is an AssertionError."""
    body = {"username": username, "password": password}
    async with http.post(url, json=body, ssl=ssl_context or True) as resp:
        assert resp.status == 201, (url, resp.status, await resp.text())
        return await resp.json()


async def register(
    http: aiohttp.ClientSession,
    base: str,
    username: str,
    password: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """POST /api/v1/accounts."""
    await _post_credentials(http, f"{base}/api/v1/accounts", username, password, ssl_context)


async def login(
    http: aiohttp.ClientSession,
    base: str,
    username: str,
    password: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> str:
    """POST /api/v1/tokens; returns the bearer token."""
    url = f"{base}/api/v1/tokens"
    return str((await _post_credentials(http, url, username, password, ssl_context))["token"])


async def new_account(
    base: str,
    username: str | None = None,
    password: str | None = None,
    *,
    http: aiohttp.ClientSession | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Account:
    """Register an account (a fresh random one by default) and log in to it."""
    username = username or "tb" + secrets.token_hex(6)
    password = password or "correct horse " + secrets.token_hex(8)
    async with aiohttp.ClientSession() as own:
        session = http or own
        await register(session, base, username, password, ssl_context=ssl_context)
        token = await login(session, base, username, password, ssl_context=ssl_context)
    return Account(username, token)
