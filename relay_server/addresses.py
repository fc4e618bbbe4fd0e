"""Client addresses as the per-address limits and caps count them."""

from __future__ import annotations

import ipaddress

from aiohttp import web


def address_key(text: str) -> str | None:
    """An IP address as a limiter key: IPv4 as is, IPv6 by its /64 (one subscriber's
    prefix: its 2^64 addresses share one budget); None if `text` is no address."""
    if len(text) > 64:
        return None
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def client_address(request: web.BaseRequest, behind_proxy: bool) -> str:
    """The client's address key. Behind a trusted proxy, the last X-Forwarded-For entry
    (the one that proxy appended) if it is an address; else the TCP peer."""
    if behind_proxy:
        forwarded = request.headers.getall("X-Forwarded-For", [])
        if forwarded:
            key = address_key(forwarded[-1].rsplit(",", 1)[-1].strip())
            if key is not None:
                return key
    return address_key(request.remote or "") or "unknown"
