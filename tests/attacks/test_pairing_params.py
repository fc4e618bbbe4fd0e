"""I3 on the device's link: the PBKDF parameters cross the relay unauthenticated, so a
link attacker (or the relay) can change them; the device binds both parameter messages,
as it sent and received them, into the SPAKE2+ Context (PROTOCOL §5.1), so a change is
detected as tampering, not taken for the truth.

The attacker changes only the attempts-left value of PBKDF_PARAM_RESPONSE on its way to
the controller: the salt and the iteration count still give the right verifier, so only
the binding can notice. Both confirmations fail (the controller refuses confirmV), the
device counts the attempt like any failed one, and an untouched attempt then pairs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from homeseal_protocol.envelope import FrameType
from homeseal_protocol.errors import PairingFailure
from testbed.accounts import new_account
from testbed.endpoints import Controller
from testbed.firmware import DeviceProcess, provision
from testbed.relay import RelayProcess
from tests.firmware.statefiles import read_record
from tests.support import raises_pairing

from .proxy import DEVICE, UP, Mitm
from .test_mitm import CODE

pytestmark = pytest.mark.micropython

PBKDF_PARAM_RESPONSE = 0x02


def raise_attempts_left(link: str, direction: str, data: bytes) -> list[bytes]:
    """PBKDF_PARAM_RESPONSE from the device, its attempts_left (the last byte) raised to 119."""
    params = data[:1] == bytes((FrameType.PAIR,)) and data[11:12] == bytes((PBKDF_PARAM_RESPONSE,))
    if link == DEVICE and direction == UP and params:
        return [data[:-1] + bytes((119,))]
    return [data]


async def test_i3_tampered_pbkdf_parameters_fail_the_device_pairing(
    relay: RelayProcess, mitm: Mitm, tmp_path: Path
) -> None:
    dev = DeviceProcess(tmp_path / "device", mitm.ws_device)
    provision(dev.state, CODE)
    dev.start()
    _, token = await new_account(relay.base)
    ctl = await Controller(relay.base, token).connect()
    try:
        await dev.wait_log_async("relay connected")
        mitm.hook = raise_attempts_left
        with raises_pairing(PairingFailure.WRONG_CODE):
            await ctl.pair(dev.device_id, CODE)
        # The device saw PAKE1 and counted it; the controller never sent PAKE3.
        assert read_record(dev.state, "attempts.json") == {"failed": 1}
        assert "paired with controller" not in dev.output()
        mitm.hook = None
        assert await ctl.pair(dev.device_id, CODE) == dev.public_key
        await dev.wait_log_async("claimed by controller")
    finally:
        mitm.hook = None
        await ctl.close()
        dev.stop()
