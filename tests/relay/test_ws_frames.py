"""Bad input after authentication: each gets the right close code or ERROR frame,
and the relay keeps serving everybody else."""

from __future__ import annotations

import logging

import pytest

from relay_server.config import RateLimit
from testbed.endpoints import (
    AUTH_CHALLENGE,
    AUTH_OK,
    AUTH_RESPONSE,
    CLAIM,
    CLAIMED,
    ERROR,
    PAIR_START,
    PRESENCE,
    RELEASE,
    REMOVED,
    SESSION,
    open_ws,
)

from .conftest import Relay, RelayFactory, claimed_pair, eventually

BAD_FROM_EITHER = [
    (b"\x20" + bytes(9), 4000),  # 10 bytes: shorter than the header
    (b"", 4000),
    (bytes((0x99,)) + bytes(10), 4000),  # unknown type
    (bytes((0x00,)) + bytes(10), 4000),
    (bytes((AUTH_CHALLENGE,)) + bytes(10 + 64), 4000),  # relay → endpoint types
    (bytes((AUTH_RESPONSE,)) + bytes(10 + 64), 4000),  # AUTH_RESPONSE again
    (bytes((AUTH_OK,)) + bytes(11), 4000),
    (bytes((CLAIMED,)) + bytes(10), 4000),
    (bytes((REMOVED,)) + bytes(10), 4000),
    (bytes((PRESENCE,)) + bytes(11), 4000),
    (bytes((ERROR,)) + bytes(11), 4000),
    (bytes((SESSION,)) + bytes(4096), 1009),  # 4097 bytes
    ("text frame", 4000),
]


@pytest.mark.parametrize("side", ["device", "controller"])
@pytest.mark.parametrize(
    ("message", "code"), BAD_FROM_EITHER, ids=lambda v: v.hex()[:6] if isinstance(v, bytes) else v
)
async def test_bad_frames(relay: Relay, side: str, message: bytes | str, code: int) -> None:
    victim = await claimed_pair(relay, "victim")
    bystander = await claimed_pair(relay, "bystander")
    link = victim.dev if side == "device" else victim.ctl
    if isinstance(message, str):
        await link.ws.send_str(message)
    else:
        await link.send_raw(message)
    await link.expect_close(code)
    await bystander.assert_routes()
    # The other half of the victim's pair is still served too.
    if side == "device":
        await victim.ctl.expect(PRESENCE, victim.device.id, b"\x00")


@pytest.mark.parametrize(
    ("side", "frame_type"),
    [("device", PAIR_START), ("controller", CLAIM), ("controller", RELEASE)],
)
async def test_frames_in_the_wrong_direction(relay: Relay, side: str, frame_type: int) -> None:
    pair = await claimed_pair(relay, "wrongway")
    link = pair.dev if side == "device" else pair.ctl
    peer = pair.controller.id if side == "device" else pair.device.id
    await link.send(frame_type, peer, b"\x01")
    await link.expect_close(4000)


async def test_max_frame_passes_intact(relay: Relay) -> None:
    pair = await claimed_pair(relay, "bigframes")
    payload = bytes(i & 0xFF for i in range(4096 - 11))
    await pair.ctl.send(SESSION, pair.device.id, payload)
    await pair.dev.expect(SESSION, pair.controller.id, payload)
    await pair.dev.send(SESSION, pair.controller.id, payload)
    await pair.ctl.expect(SESSION, pair.device.id, payload)
    await pair.ctl.send(SESSION, pair.device.id)  # an empty payload is fine as well
    await pair.dev.expect(SESSION, pair.controller.id, b"")


async def test_device_flood_is_closed(relay_factory: RelayFactory) -> None:
    # A slow refill keeps the count exact enough on a busy machine.
    relay = await relay_factory(limits={"frames_per_device": RateLimit(2, 100)})
    flooder = await claimed_pair(relay, "flooder")
    bystander = await claimed_pair(relay, "calm")
    for _ in range(150):
        if flooder.dev.ws.closed:
            break
        await flooder.dev.send(SESSION, flooder.controller.id, b"\x03" + bytes(100))
    frames = await flooder.dev.expect_close(4005)
    assert frames == []
    received = 0
    while True:
        frame = await flooder.ctl.recv()
        if frame.type == PRESENCE:
            break
        received += 1
    # The burst (less the pairing frames already sent) passed, the rest did not.
    assert 95 <= received <= 110
    await bystander.assert_routes()


async def test_account_flood_is_closed(relay_factory: RelayFactory) -> None:
    relay = await relay_factory(limits={"frames_per_account": RateLimit(2, 100)})
    flooder = await claimed_pair(relay, "accountflood")
    bystander = await claimed_pair(relay, "quiet")
    for _ in range(150):
        if flooder.ctl.ws.closed:
            break
        await flooder.ctl.send(SESSION, flooder.device.id, b"\x03" + bytes(100))
    await flooder.ctl.expect_close(4005)
    await bystander.assert_routes()


async def test_error_flood_is_limited(relay_factory: RelayFactory) -> None:
    """Frames that only earn ERROR answers count against the budget too."""
    relay = await relay_factory(limits={"frames_per_device": RateLimit(1, 40)})
    pair = await claimed_pair(relay, "errorflood")
    for _ in range(60):
        if pair.dev.ws.closed:
            break
        await pair.dev.send(SESSION, bytes(10), b"\x03")
    frames = await pair.dev.expect_close(4005)
    assert 35 <= len(frames) <= 45  # the burst, less the pairing frames
    assert {f.type for f in frames} == {ERROR}


async def test_slow_consumer_is_closed(relay_factory: RelayFactory) -> None:
    relay = await relay_factory(
        limits={"frames_per_device": RateLimit(1e6, 1e6), "send_queue_bytes": 32 * 1024}
    )
    pair = await claimed_pair(relay, "slowpoke")
    bystander = await claimed_pair(relay, "speedy")
    # The controller stops reading; its client buffers fill, then the relay's queue.
    pair.ctl.ws._response.connection.transport.pause_reading()  # type: ignore[union-attr]
    payload = b"\x03" + bytes(4000)
    for _ in range(3000):
        await pair.dev.send(SESSION, pair.controller.id, payload)
        if relay.router.stats.drops.get("slow_consumer"):
            break
    else:
        pytest.fail("the relay never detected the slow consumer")
    pair.ctl.ws._response.connection.transport.resume_reading()  # type: ignore[union-attr]
    frames = await pair.ctl.expect_close(4004, wait_s=10)
    assert all(f.type == SESSION and f.payload == payload for f in frames)
    await bystander.assert_routes()
    await pair.dev.send(SESSION, pair.controller.id, b"\x03")
    await pair.dev.expect(ERROR, pair.controller.id, b"\x01")


async def test_relay_survives_abrupt_disconnects(relay: Relay) -> None:
    bystander = await claimed_pair(relay, "steady")
    for _ in range(5):
        pair = await claimed_pair(relay, f"abrupt{_}")
        for link in (pair.dev, pair.ctl):
            link.ws._response.connection.transport.abort()  # type: ignore[union-attr]
    await eventually(
        lambda: len(relay.router.registry.devices) == len(relay.router.registry.controllers) == 1
    )
    await bystander.assert_routes()


async def test_silent_peer_is_dropped(relay_factory: RelayFactory) -> None:
    """A device that stops answering pings (half-open link) is dropped after the heartbeat."""
    relay = await relay_factory(heartbeat_s=1.0)
    pair = await claimed_pair(relay, "heartbeat")
    device = pair.device
    silent = await open_ws(relay.http, relay.ws_base + "/ws/device", autoping=False)
    await silent.send_raw(device.respond(silent.challenge))  # replaces the device's link
    assert (await silent.recv()).type == AUTH_OK
    await pair.dev.expect_close(4002)
    await pair.ctl.expect(PRESENCE, device.id, b"\x01")
    # It never reads, so never answers a ping: the relay drops it, the owner is told.
    await pair.ctl.expect(PRESENCE, device.id, b"\x00")
    assert device.id not in relay.router.registry.devices
    await silent.close()


async def test_logs_hold_no_payloads_or_secrets(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pair = await claimed_pair(relay, "logcheck")
    marker = b"\x03SECRET-PAYLOAD-MARKER"
    await pair.ctl.send(SESSION, pair.device.id, marker)
    await pair.dev.expect(SESSION, pair.controller.id, marker)
    await pair.ctl.send(0x99, pair.device.id, marker)  # a protocol error is logged too
    await pair.ctl.expect_close(4000)
    text = "\n".join(
        f"{r.getMessage()} {r.__dict__!r}" for r in caplog.records if r.name.startswith("relay")
    )
    assert "device claimed" in text
    for secret in ("SECRET-PAYLOAD-MARKER", pair.token, "a perfectly fine passphrase"):
        assert secret not in text
    assert pair.device.pub.hex() not in text
