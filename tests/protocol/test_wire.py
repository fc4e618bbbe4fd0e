"""The client's wire layers without Home Assistant: envelope (§3), relay auth (§4),
application messages (§7), relay URLs and TLS settings (§8)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from homeseal_protocol import envelope, messages, relay_auth
from homeseal_protocol.client import api
from homeseal_protocol.envelope import CloseCode, FrameType
from homeseal_protocol.errors import EnvelopeError, InvalidRelayUrl, MessageError
from homeseal_protocol.keys import public_bytes

PEER = bytes(range(10))


def test_envelope_round_trip_and_limits() -> None:
    data = envelope.encode_frame(FrameType.SESSION, PEER, b"abc")
    assert data == b"\x20" + PEER + b"abc"
    frame = envelope.decode_frame(data)
    assert (frame.type, frame.peer, frame.payload) == (FrameType.SESSION, PEER, b"abc")
    # Exactly MAX_FRAME is fine, one more byte is too big (1009).
    envelope.encode_frame(FrameType.SESSION, PEER, bytes(4096 - 11))
    with pytest.raises(EnvelopeError) as err:
        envelope.encode_frame(FrameType.SESSION, PEER, bytes(4096 - 10))
    assert err.value.close_code == CloseCode.TOO_BIG
    with pytest.raises(EnvelopeError) as err:
        envelope.decode_frame(b"\x20" + PEER + bytes(4086))
    assert err.value.close_code == CloseCode.TOO_BIG
    with pytest.raises(EnvelopeError):
        envelope.encode_frame(FrameType.SESSION, b"short", b"")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x20" + PEER[:9],  # shorter than the header
        b"\x7e" + PEER,  # unknown type
        b"\x02" + PEER,  # AUTH_RESPONSE never goes to a controller
        b"\x10" + PEER,  # nor does PAIR_START
        b"\x30" + PEER,  # nor CLAIM
    ],
)
def test_envelope_protocol_errors(data: bytes) -> None:
    with pytest.raises(EnvelopeError) as err:
        envelope.decode_frame(data)
    assert err.value.close_code == CloseCode.PROTOCOL_ERROR


def test_relay_auth_response_matches_protocol() -> None:
    key = X25519PrivateKey.generate()
    relay = X25519PrivateKey.generate()
    relay_pub = public_bytes(relay)
    nonce = bytes(range(32))
    response = relay_auth.auth_response(key, relay_pub + nonce)
    own_pub, mac = response[:32], response[32:]
    assert own_pub == public_bytes(key)
    # What the relay computes with its own private key (§4).
    dh = relay.exchange(key.public_key())
    k = HKDF(hashes.SHA256(), 32, salt=nonce, info=b"HomeSeal v1 relay auth").derive(dh)
    expected = hmac.new(
        k, b"HomeSeal v1 relay auth" + b"\x02" + relay_pub + own_pub + nonce, hashlib.sha256
    ).digest()
    assert mac == expected
    with pytest.raises(relay_auth.RelayAuthError):
        relay_auth.auth_response(key, relay_pub)  # too short
    with pytest.raises(relay_auth.RelayAuthError):
        relay_auth.auth_response(key, bytes(32) + nonce)  # low-order key: all-zero DH


DESCRIBE = {
    "t": "describe",
    "fw": "0.1.0",
    "model": "sim-1",
    "name": "Board",
    "entities": [
        {"key": "relay1", "kind": "switch", "name": "Relay"},
        {"key": "lamp", "kind": "light", "name": "Lamp"},
        {"key": "t", "kind": "sensor", "name": "T", "device_class": "temperature", "unit": "°C"},
        {"key": "door", "kind": "binary_sensor", "name": "Door", "device_class": "door"},
        {"key": "bell", "kind": "button", "name": "Bell"},
    ],
}


def _b(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_device_messages_parse_and_round_trip() -> None:
    describe = messages.parse_device_message(_b(DESCRIBE))
    assert isinstance(describe, messages.Describe)
    assert [e.kind for e in describe.entities] == [
        "switch",
        "light",
        "sensor",
        "binary_sensor",
        "button",
    ]
    assert describe.entities[2].unit == "°C"
    assert describe.entities[2].category is None
    assert describe.entities[2].disabled_by_default is False
    assert messages.parse_device_message(messages.encode(describe)) == describe

    state = messages.parse_device_message(
        _b(
            {
                "t": "state",
                "s": {
                    "relay1": True,
                    "lamp": {"on": True, "brightness": 7},
                    "t": 1.5,
                    "bell": None,
                },
            }
        )
    )
    assert isinstance(state, messages.State)
    assert state.values["lamp"] == messages.LightState(True, 7)
    assert messages.parse_device_message(messages.encode(state)) == state
    result = messages.parse_device_message(
        _b({"t": "result", "id": 5, "ok": False, "error": "bad_value"})
    )
    assert result == messages.Result(5, False, "bad_value")
    assert messages.parse_device_message(messages.encode(result)) == result
    assert messages.parse_device_message(_b({"t": "ping", "id": 1})) == messages.Ping(1)
    assert messages.parse_device_message(_b({"t": "pong", "id": 2})) == messages.Pong(2)


NUMBER = {"key": "speed", "kind": "number", "name": "Speed", "min": 0, "max": 100, "step": 5,
          "unit": "%", "mode": "slider"}  # fmt: skip
SELECT = {"key": "pattern", "kind": "select", "name": "Pattern", "options": ["off", "slow"]}
TEXT = {"key": "ip", "kind": "text_sensor", "name": "Address", "category": "diagnostic"}
EVENT = {"key": "wall", "kind": "event", "name": "Wall", "event_types": ["single", "long"]}
RGB = {"key": "mood", "kind": "light", "name": "Mood", "color_mode": "rgb"}
CT = {"key": "desk", "kind": "light", "name": "Desk", "color_mode": "color_temp",
      "min_kelvin": 2700, "max_kelvin": 6500}  # fmt: skip
FAN = {"key": "vent", "kind": "fan", "name": "Vent", "reversible": True}
COVER = {"key": "blind", "kind": "cover", "name": "Blind", "device_class": "blind"}
BAD_NEW_KINDS = [
    {**RGB, "color_mode": "hs"},
    {**RGB, "min_kelvin": 2700},
    {**CT, "min_kelvin": 6500},
    {**CT, "max_kelvin": 20001},
    {**CT, "min_kelvin": 2700.5},
    {k: v for k, v in CT.items() if k != "max_kelvin"},
    {**FAN, "reversible": 1},
    {**FAN, "unit": "%"},
    {**COVER, "device_class": 3},
    {**COVER, "reversible": True},
    {**NUMBER, "min": 100},
    {**NUMBER, "step": 0},
    {**NUMBER, "max": "9"},
    {**NUMBER, "min": True},
    {**NUMBER, "mode": "dial"},
    {k: v for k, v in NUMBER.items() if k != "step"},
    {**SELECT, "options": []},
    {**SELECT, "options": ["a", "a"]},
    {**SELECT, "options": ["a" * 33]},
    {**SELECT, "options": [""]},
    {**SELECT, "options": [str(i) for i in range(17)]},
    {**SELECT, "options": "off"},
    {**TEXT, "category": "config"},
    {**TEXT, "unit": "x"},
    {**EVENT, "event_types": ["triple"]},
    {**EVENT, "event_types": []},
    {**EVENT, "category": "config"},
    {k: v for k, v in EVENT.items() if k != "event_types"},
]


def test_new_entity_kinds_round_trip() -> None:
    describe = messages.parse_device_message(
        _b({**DESCRIBE, "entities": [NUMBER, SELECT, TEXT, EVENT]})
    )
    assert isinstance(describe, messages.Describe)
    number, select, text, event = describe.entities
    assert (number.min, number.max, number.step, number.mode) == (0, 100, 5, "slider")
    assert select.options == ("off", "slow")
    assert text.kind == "text_sensor"
    assert event.event_types == ("single", "long")
    assert json.loads(messages.encode(describe))["entities"] == [NUMBER, SELECT, TEXT, EVENT]
    state = messages.parse_device_message(
        _b({"t": "state", "s": {"speed": 2.5, "pattern": "slow", "ip": "10.0.0.2"}})
    )
    assert isinstance(state, messages.State)
    assert state.values == {"speed": 2.5, "pattern": "slow", "ip": "10.0.0.2"}
    event_msg = messages.parse_device_message(_b({"t": "event", "key": "wall", "type": "long"}))
    assert event_msg == messages.Event("wall", "long")
    assert messages.parse_device_message(messages.encode(event_msg)) == event_msg


def test_colour_fan_and_cover_round_trip() -> None:
    plain = {"key": "lamp", "kind": "light", "name": "Lamp"}
    kinds = [RGB, CT, FAN, COVER, plain]
    describe = messages.parse_device_message(_b({**DESCRIBE, "entities": kinds}))
    assert isinstance(describe, messages.Describe)
    rgb, ct, fan, cover, lamp = describe.entities
    assert (rgb.color_mode, ct.color_mode, lamp.color_mode) == ("rgb", "color_temp", "brightness")
    assert (ct.min_kelvin, ct.max_kelvin, fan.reversible) == (2700, 6500, True)
    assert cover.device_class == "blind"
    assert json.loads(messages.encode(describe))["entities"] == kinds
    values = {
        "mood": {"on": True, "brightness": 200, "rgb": [255, 0, 10]},
        "desk": {"on": False, "brightness": 9, "kelvin": 4000},
        "vent": {"on": True, "percentage": 40, "direction": "reverse"},
        "blind": {"position": None, "motion": "opening"},
    }
    state = messages.parse_device_message(_b({"t": "state", "s": values}))
    assert isinstance(state, messages.State)
    assert state.values == {
        "mood": messages.LightState(True, 200, rgb=(255, 0, 10)),
        "desk": messages.LightState(False, 9, kelvin=4000),
        "vent": messages.FanState(True, 40, "reverse"),
        "blind": messages.CoverState(None, "opening"),
    }
    messages.check_state(state, describe.entities)
    assert json.loads(messages.encode(state))["s"] == values


@pytest.mark.parametrize(
    ("entity", "good", "bad"),
    [
        ({"key": "a", "kind": "switch", "name": "A"}, True, 1),
        ({"key": "a", "kind": "light", "name": "A"}, {"on": True, "brightness": 3}, True),
        ({"key": "a", "kind": "sensor", "name": "A"}, 2.5, "2.5"),
        (NUMBER | {"key": "a"}, 5, False),
        (SELECT | {"key": "a"}, "slow", "fast"),
        (TEXT | {"key": "a"}, "10.0.0.1", 1),
        (EVENT | {"key": "a"}, None, "single"),
        ({"key": "a", "kind": "button", "name": "A"}, None, 0),
        # A colour light's state carries its mode's colour, and no other.
        (
            RGB | {"key": "a"},
            {"on": True, "brightness": 3, "rgb": [1, 2, 3]},
            {"on": True, "brightness": 3},
        ),
        (
            RGB | {"key": "a"},
            {"on": True, "brightness": 3, "rgb": [1, 2, 3]},
            {"on": True, "brightness": 3, "rgbw": [1, 2, 3, 4]},
        ),
        (
            {"key": "a", "kind": "light", "name": "A"},
            {"on": True, "brightness": 3},
            {"on": True, "brightness": 3, "kelvin": 3000},
        ),
        (
            CT | {"key": "a"},
            {"on": True, "brightness": 3, "kelvin": 6500},
            {"on": True, "brightness": 3, "kelvin": 6501},
        ),
        (
            FAN | {"key": "a"},
            {"on": False, "percentage": 5, "direction": "forward"},
            {"on": False, "percentage": 5},
        ),
        (
            FAN | {"key": "a", "reversible": False},
            {"on": False, "percentage": 5},
            {"on": False, "percentage": 5, "direction": "forward"},
        ),
        (COVER | {"key": "a"}, {"position": 40, "motion": "idle"}, {"on": True, "brightness": 3}),
        (
            FAN | {"key": "a"},
            {"on": True, "percentage": 5, "direction": "reverse"},
            {"position": 0, "motion": "idle"},
        ),
    ],
)
def test_state_values_fit_their_kind(entity: dict[str, Any], good: object, bad: object) -> None:
    describe = messages.parse_device_message(_b({**DESCRIBE, "entities": [entity]}))
    assert isinstance(describe, messages.Describe)
    for value, fits in ((good, True), (bad, False), (None, True)):
        state = messages.parse_device_message(_b({"t": "state", "s": {"a": value, "zz": 1}}))
        assert isinstance(state, messages.State)
        if fits:
            messages.check_state(state, describe.entities)
        else:
            with pytest.raises(MessageError):
                messages.check_state(state, describe.entities)


def test_entity_category_and_default() -> None:
    chip = {"key": "chip", "kind": "sensor", "name": "Chip", "category": "diagnostic",
            "disabled_by_default": True}  # fmt: skip
    setting = {"key": "mode", "kind": "switch", "name": "Mode", "category": "config"}
    describe = messages.parse_device_message(_b({**DESCRIBE, "entities": [chip, setting]}))
    assert isinstance(describe, messages.Describe)
    assert [(e.category, e.disabled_by_default) for e in describe.entities] == [
        ("diagnostic", True),
        ("config", False),
    ]
    encoded = json.loads(messages.encode(describe))
    assert encoded["entities"] == [chip, setting]  # a false default is left out


@pytest.mark.parametrize(
    "obj",
    [
        [],
        {"id": 1},
        {"t": 3},
        {"t": "nope"},
        {"t": "command", "id": 1, "key": "a", "action": "press"},  # wrong direction
        {"t": "ping"},
        {"t": "ping", "id": 0},
        {"t": "ping", "id": 2**31},
        {"t": "ping", "id": True},
        {"t": "ping", "id": 1.0},
        {"t": "ping", "id": 1, "x": 1},
        {"t": "pong", "id": "1"},
        {"t": "result", "id": 1, "ok": 1},
        {"t": "result", "id": 1, "ok": False, "error": 3},
        {"t": "state", "s": []},
        {"t": "state", "s": {"BAD": True}},
        {"t": "state", "s": {"a": "x" * 65}},
        {"t": "state", "s": {"a": [1]}},
        {"t": "state", "s": {"a": {"on": 1, "brightness": 3}}},
        {"t": "state", "s": {"a": {"on": True, "brightness": 256}}},
        {"t": "state", "s": {"a": {"on": True}}},
        {"t": "state", "s": {"a": {"on": True, "brightness": 3, "rgb": [1, 2]}}},
        {"t": "state", "s": {"a": {"on": True, "brightness": 3, "rgb": [1, 2, 256]}}},
        {"t": "state", "s": {"a": {"on": True, "brightness": 3, "rgb": [1, 2, 3], "kelvin": 3000}}},
        {"t": "state", "s": {"a": {"on": True, "brightness": 3, "kelvin": 999}}},
        {"t": "state", "s": {"a": {"on": True, "percentage": 0}}},
        {"t": "state", "s": {"a": {"on": 1, "percentage": 5}}},
        {"t": "state", "s": {"a": {"on": True, "percentage": 5, "direction": "up"}}},
        {"t": "state", "s": {"a": {"position": 101, "motion": "idle"}}},
        {"t": "state", "s": {"a": {"position": 1, "motion": "stopped"}}},
        {"t": "state", "s": {"a": {"position": 1}}},
        {**DESCRIBE, "entities": {}},
        {**DESCRIBE, "entities": [1]},
        {**DESCRIBE, "entities": [{"key": "a", "kind": "climate", "name": "A"}]},
        {**DESCRIBE, "entities": [{"key": "a", "kind": "switch", "name": "A", "unit": "W"}]},
        {**DESCRIBE, "entities": [{"key": "a" * 33, "kind": "switch", "name": "A"}]},
        {**DESCRIBE, "entities": [{"key": "a", "kind": "switch", "name": "A" * 65}]},
        {**DESCRIBE, "entities": [{"key": "a", "kind": "switch", "name": "A"}] * 2},
        {
            **DESCRIBE,
            "entities": [{"key": "a", "kind": "sensor", "name": "A", "category": "config"}],
        },
        {
            **DESCRIBE,
            "entities": [{"key": "a", "kind": "switch", "name": "A", "category": "primary"}],
        },
        {
            **DESCRIBE,
            "entities": [{"key": "a", "kind": "switch", "name": "A", "disabled_by_default": 1}],
        },
        {**DESCRIBE, "fw": 1},
        {**DESCRIBE, "extra": 1},
        *({**DESCRIBE, "entities": [e]} for e in BAD_NEW_KINDS),
        {"t": "event", "key": "wall", "type": "triple"},
        {"t": "event", "key": "wall"},
        {"t": "event", "key": "wall", "type": "single", "n": 1},
    ],
)
def test_device_message_errors(obj: object) -> None:
    with pytest.raises(MessageError):
        messages.parse_device_message(_b(obj))


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe",
        b"{",
        b"1",
        bytes(3073),
        b'{"t":"state","s":{"a":NaN}}',
        b'{"t":"state","s":{"a":Infinity}}',
    ],
)
def test_device_message_bad_bytes(data: bytes) -> None:
    with pytest.raises(MessageError):
        messages.parse_device_message(data)


def test_controller_messages_both_ways() -> None:
    for message in (
        messages.Command(1, "lamp", "turn_on", 128),
        messages.Command(2, "relay1", "turn_off"),
        messages.Command(6, "speed", "set", value=12.5),
        messages.Command(7, "speed", "set", value=-3),
        messages.Command(8, "pattern", "select", option="slow"),
        messages.Command(9, "mood", "turn_on", brightness=9, rgb=(1, 2, 3)),
        messages.Command(10, "mood", "turn_on", rgbw=(1, 2, 3, 4)),
        messages.Command(11, "desk", "turn_on", brightness=1, kelvin=2700),
        messages.Command(12, "vent", "turn_on", percentage=40),
        messages.Command(13, "vent", "set_direction", direction="reverse"),
        messages.Command(14, "blind", "set_position", position=0),
        messages.Unpair(3),
        messages.Ping(4),
        messages.Pong(5),
    ):
        assert messages.parse_controller_message(messages.encode(message)) == message
    for bad in (
        {"t": "command", "id": 1, "key": "a", "action": "turn_off", "brightness": 3},
        {"t": "command", "id": 1, "key": "a"},
        {"t": "command", "id": 1, "key": "a", "action": "turn_on", "value": 3},
        {"t": "command", "id": 1, "key": "a", "action": "set", "value": True},
        {"t": "command", "id": 1, "key": "a", "action": "set", "value": "3"},
        {"t": "command", "id": 1, "key": "a", "action": "set", "value": 2**54},
        {"t": "command", "id": 1, "key": "a", "action": "select", "option": ""},
        {"t": "command", "id": 1, "key": "a", "action": "select", "option": "x" * 33},
        {"t": "command", "id": 1, "key": "a", "action": "set", "option": "x"},
        {"t": "command", "id": 1, "key": "a", "action": "set", "value": 1, "option": "x"},
        {"t": "command", "id": 1, "key": "a", "action": "turn_on", "rgb": [1, 2]},
        {"t": "command", "id": 1, "key": "a", "action": "turn_on", "rgb": [1, 2, 256]},
        {"t": "command", "id": 1, "key": "a", "action": "turn_on", "rgb": "red"},
        {"t": "command", "id": 1, "key": "a", "action": "turn_on", "rgbw": [1, 2, 3]},
        {
            "t": "command",
            "id": 1,
            "key": "a",
            "action": "turn_on",
            "rgb": [1, 2, 3],
            "kelvin": 3000,
        },
        {
            "t": "command",
            "id": 1,
            "key": "a",
            "action": "turn_on",
            "brightness": 1,
            "percentage": 3,
        },
        {"t": "command", "id": 1, "key": "a", "action": "turn_off", "rgb": [1, 2, 3]},
        {"t": "command", "id": 1, "key": "a", "action": "turn_on", "kelvin": 999},
        {"t": "command", "id": 1, "key": "a", "action": "turn_on", "percentage": 101},
        {"t": "command", "id": 1, "key": "a", "action": "open", "position": 3},
        {"t": "command", "id": 1, "key": "a", "action": "set_position", "position": -1},
        {"t": "command", "id": 1, "key": "a", "action": "set_position", "position": 5.5},
        {"t": "command", "id": 1, "key": "a", "action": "set_direction", "direction": "up"},
        {"t": "command", "id": 1, "key": "a", "action": "set_position", "position": None},
        {"t": "unpair"},
        {"t": "describe"},
    ):
        with pytest.raises(MessageError):
            messages.parse_controller_message(_b(bad))
    with pytest.raises(MessageError):
        messages.encode(messages.Command(0, "a", "press"))
    with pytest.raises(MessageError):
        messages.encode(messages.Command(1, "a", "x" * 4000))
    assert messages.parse_controller_message(_b({"t": "ping", "id": 9})) == messages.Ping(9)
    assert messages.parse_controller_message(_b({"t": "pong", "id": 9})) == messages.Pong(9)


def test_relay_urls_and_fingerprints() -> None:
    assert api.normalize_url(" HTTPS://Relay.Example:443/base/ ") == "https://relay.example/base"
    assert api.normalize_url("https://[::1]:8443") == "https://[::1]:8443"
    assert (
        api.websocket_url("https://relay.example:8443") == "wss://relay.example:8443/ws/controller"
    )
    for bad in ("http://relay.example", "relay.example", "https://", "wss://relay.example"):
        with pytest.raises(InvalidRelayUrl):
            api.normalize_url(bad)
    assert api.parse_fingerprint("AB:" * 31 + "AB") == bytes([0xAB]) * 32
    for bad in ("ab", "zz" * 32, "ab" * 33):
        with pytest.raises(ValueError, match="fingerprint"):
            api.parse_fingerprint(bad)
    with pytest.raises(ValueError, match="PEM"):
        api.build_ssl_context("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
