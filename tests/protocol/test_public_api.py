"""homeseal_protocol's curated public API (what `from homeseal_protocol import …` offers)
and its single exception root. Pinned: a change here is a change for every user of the
library (the integration, the relay, the tools)."""

from __future__ import annotations

import inspect

import homeseal_protocol
from homeseal_protocol import errors

EXPECTED = {
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
    "NotRecognised",
    "LightState",
    "LinkState",
    "MessageError",
    "Motion",
    "NotConnected",
    "NotFound",
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
}


def test_public_api_is_pinned() -> None:
    assert set(homeseal_protocol.__all__) == EXPECTED
    for name in homeseal_protocol.__all__:
        assert hasattr(homeseal_protocol, name), name


def test_every_exception_has_one_root() -> None:
    classes = [
        obj
        for obj in vars(errors).values()
        if inspect.isclass(obj) and issubclass(obj, BaseException)
    ]
    assert len(classes) > 20
    for cls in classes:
        assert issubclass(cls, errors.HomeSealError), cls
    # No module of the library defines an exception of its own outside errors.py.
    for module_name, module in _library_modules():
        for obj in vars(module).values():
            ours = inspect.isclass(obj) and obj.__module__.startswith("homeseal_protocol")
            if ours and issubclass(obj, BaseException):
                assert issubclass(obj, errors.HomeSealError), f"{module_name}: {obj}"


def _library_modules() -> list[tuple[str, object]]:
    import importlib  # noqa: PLC0415
    import pkgutil  # noqa: PLC0415

    found = []
    for info in pkgutil.walk_packages(homeseal_protocol.__path__, "homeseal_protocol."):
        found.append((info.name, importlib.import_module(info.name)))
    return found
