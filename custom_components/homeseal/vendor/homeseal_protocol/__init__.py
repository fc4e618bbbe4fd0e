"""HomeSeal's protocol library: the wire format of docs/PROTOCOL.md and the controller.

One layer per module, each knowing only the one below it:

    ids, keys                   §1    endpoint ids, setup payload, static keys
    envelope                    §3    relay frames: type ‖ peer id ‖ payload
    relay_auth                  §4    challenge-response, control frames
    pairing                     §5    SPAKE2+ messages and the controller's state machine
    session                     §6    Noise KK initiator and SESSION framing
    messages                    §7    application messages
    crypto.{noise,p256,spake2plus}    the primitives above `cryptography`
    client.*                          asyncio: the relay connection (§2), device links,
                                      pairing attempts, the HTTP API (§8)

The sans-IO modules are shared by the Home Assistant integration (a vendored copy,
see docs/ARCHITECTURE.md), the relay and the tools. Every error is a HomeSealError.
"""

from .client.api import RelayApi, SslSetting, build_ssl_context, normalize_url, parse_fingerprint
from .client.controller import Controller
from .client.device_link import DeviceLink, LinkState
from .envelope import CloseCode, Frame, FrameType, RelayError
from .errors import (
    AuthRejected,
    CannotConnect,
    CommandRejected,
    CommandTimeout,
    DeviceError,
    DeviceOffline,
    EnvelopeError,
    HomeSealError,
    InvalidCredentials,
    InvalidRelayUrl,
    InvalidUsername,
    MessageError,
    NotConnected,
    NotFound,
    NotRecognised,
    PairingError,
    PairingFailure,
    RateLimited,
    RelayApiError,
    RelayAuthError,
    SessionError,
    StateError,
    TlsNotTrusted,
    Unauthorized,
    UsernameTaken,
    WeakPassword,
)
from .ids import (
    SetupPayload,
    endpoint_id,
    format_id,
    format_setup_code,
    format_setup_payload,
    parse_id,
    parse_setup_payload,
    validate_setup_code,
)
from .keys import generate_private_key, private_bytes, public_bytes
from .messages import (
    ColorMode,
    CoverState,
    Describe,
    Direction,
    EntityInfo,
    EntityKind,
    EventType,
    FanState,
    LightState,
    Motion,
    StateValue,
)

__all__ = [
    "AuthRejected",
    "CannotConnect",
    "CloseCode",
    "ColorMode",
    "CommandRejected",
    "CommandTimeout",
    "Controller",
    "CoverState",
    "Describe",
    "DeviceError",
    "DeviceLink",
    "DeviceOffline",
    "Direction",
    "EntityInfo",
    "EntityKind",
    "EnvelopeError",
    "EventType",
    "FanState",
    "Frame",
    "FrameType",
    "HomeSealError",
    "InvalidCredentials",
    "InvalidRelayUrl",
    "InvalidUsername",
    "LightState",
    "LinkState",
    "MessageError",
    "Motion",
    "NotConnected",
    "NotFound",
    "NotRecognised",
    "PairingError",
    "PairingFailure",
    "RateLimited",
    "RelayApi",
    "RelayApiError",
    "RelayAuthError",
    "RelayError",
    "SessionError",
    "SetupPayload",
    "SslSetting",
    "StateError",
    "StateValue",
    "TlsNotTrusted",
    "Unauthorized",
    "UsernameTaken",
    "WeakPassword",
    "build_ssl_context",
    "endpoint_id",
    "format_id",
    "format_setup_code",
    "format_setup_payload",
    "generate_private_key",
    "normalize_url",
    "parse_fingerprint",
    "parse_id",
    "parse_setup_payload",
    "private_bytes",
    "public_bytes",
    "validate_setup_code",
]
