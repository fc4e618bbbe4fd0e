"""The device looks after itself (firmware/README.md "Watchdog"): a main loop that
hangs is reset by the watchdog, an unexpected exception in any task is a logged
restart, and either way the device comes back, reconnects and reports why it
restarted. The real firmware under scripts/simdevice, which starts it again after a
reset as a board would; the hang and the crash are injected through the simulated
pins' control socket."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from testbed.endpoints import Controller, SessionClient
from testbed.firmware import HEALTH, DeviceProcess, provision
from testbed.process import TestbedError

pytestmark = pytest.mark.micropython

CODE = "51627384"
REASON = [e for e in HEALTH if e["key"] == "restart_reason"]


async def _paired(
    make_device: Callable[..., DeviceProcess], controller: Controller
) -> tuple[DeviceProcess, bytes]:
    dev = make_device(entities=REASON, supervised=True)
    dev.fields["watchdog_ms"] = 1000
    provision(dev.state, CODE)
    dev.start()
    await dev.wait_log_async("relay connected")
    device_pub = await controller.pair(dev.device_id, CODE)
    await dev.wait_log_async("claimed by controller")
    return dev, device_pub


async def _reason(controller: Controller, dev: DeviceProcess, device_pub: bytes) -> object:
    controller.drain()
    session: SessionClient = await controller.open_session(dev.device_id, device_pub)
    return session.state["restart_reason"]


async def test_a_hung_main_loop_is_reset_by_the_watchdog(
    make_device: Callable[..., DeviceProcess], controller: Controller
) -> None:
    dev, device_pub = await _paired(make_device, controller)
    assert await _reason(controller, dev, device_pub) == "power_on"
    # Fed every 250 ms; 1 s without a feed is a reset, long before the hang ends.
    started = time.monotonic()
    with pytest.raises((TestbedError, OSError, ConnectionError)):
        await dev.control({"op": "hang", "ms": 20000})
    await dev.wait_log_async(r"watchdog: not fed for \d+ ms: reset")
    assert time.monotonic() - started < 10
    await dev.wait_log_async("device reset itself \\(watchdog\\)")
    await dev.wait_log_async("relay connected", count=2, within=30)
    assert await _reason(controller, dev, device_pub) == "watchdog"


async def test_an_unexpected_exception_is_a_logged_restart(
    make_device: Callable[..., DeviceProcess], controller: Controller
) -> None:
    dev, device_pub = await _paired(make_device, controller)
    assert (await dev.control({"op": "crash"}))["ok"] is True
    await dev.wait_log_async("simulated crash")  # the traceback is in the log
    await dev.wait_log_async(r"restarting \(unexpected error")
    await dev.wait_log_async("relay connected", count=2, within=30)
    assert await _reason(controller, dev, device_pub) == "crash"
    # The paired device is still paired and serves its controller after the restart.
    assert dev.proc is not None
    assert dev.proc.poll() is None


async def test_watchdog_timeout_is_checked(make_device: Callable[..., DeviceProcess]) -> None:
    dev = make_device(entities=REASON)
    dev.fields["watchdog_ms"] = 9000  # beyond a Pico W's watchdog
    provision(dev.state, CODE)
    dev.start()
    assert dev.wait_exit() == 2
    assert "config error: watchdog_ms" in dev.log.read_text()
