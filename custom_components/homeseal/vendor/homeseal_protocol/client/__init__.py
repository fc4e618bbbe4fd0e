"""The asyncio side of a controller: the relay's HTTP API and websocket, device links,
and pairing over the relay (aiohttp; no Home Assistant imports)."""
