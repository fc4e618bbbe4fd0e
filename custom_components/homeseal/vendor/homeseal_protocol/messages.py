"""Application messages inside a session (PROTOCOL §7): strict validation both ways.

Unknown keys, missing fields, wrong types and unknown `t` values raise MessageError;
the session layer answers that with `RESET protocol_error`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from .errors import MessageError

MAX_MESSAGE: Final = 3072
MAX_ID: Final = 2**31 - 1
MAX_NAME: Final = 64
MAX_SAFE_INT: Final = 2**53
KEY_RE: Final = re.compile(r"[a-z0-9_]{1,32}")

type EntityKind = Literal[
    "switch",
    "light",
    "sensor",
    "binary_sensor",
    "button",
    "number",
    "select",
    "text_sensor",
    "event",
    "fan",
    "cover",
]
type StateValue = bool | float | int | str | LightState | FanState | CoverState | None
type EventType = Literal["single", "double", "long"]
type ColorMode = Literal["brightness", "rgb", "rgbw", "color_temp"]
type Motion = Literal["opening", "closing", "idle"]
type Direction = Literal["forward", "reverse"]

MAX_OPTION: Final = 32
MAX_OPTIONS: Final = 16
MAX_TEXT: Final = 64
EVENT_TYPES: Final = ("single", "double", "long")
NUMBER_MODES: Final = frozenset({"auto", "box", "slider"})
COLOR_MODES: Final = ("brightness", "rgb", "rgbw", "color_temp")
MOTIONS: Final = ("opening", "closing", "idle")
DIRECTIONS: Final = ("forward", "reverse")
MIN_KELVIN: Final = 1000
MAX_KELVIN: Final = 20000
# The state field that carries a colour light's colour, by its mode.
COLOR_FIELDS: Final = {"rgb": "rgb", "rgbw": "rgbw", "color_temp": "kelvin"}

# Per kind: its extra description fields, and which of them are required.
KINDS: Final[dict[str, frozenset[str]]] = {
    "switch": frozenset(),
    "light": frozenset({"color_mode", "min_kelvin", "max_kelvin"}),
    "sensor": frozenset({"device_class", "unit", "state_class"}),
    "binary_sensor": frozenset({"device_class"}),
    "button": frozenset(),
    "number": frozenset({"min", "max", "step", "unit", "mode", "device_class"}),
    "select": frozenset({"options"}),
    "text_sensor": frozenset(),
    "event": frozenset({"event_types"}),
    "fan": frozenset({"reversible"}),
    "cover": frozenset({"device_class"}),
}
# (A color_temp light also requires min_kelvin and max_kelvin: checked in _entity.)
REQUIRED: Final[dict[str, frozenset[str]]] = {
    "number": frozenset({"min", "max", "step"}),
    "select": frozenset({"options"}),
    "event": frozenset({"event_types"}),
}
# Fields every kind may carry (HA's entity category and registry default).
COMMON_OPTIONAL: Final = frozenset({"category", "disabled_by_default"})
# What only reports never configures: HA refuses a sensor in the config category.
_REPORTING: Final = frozenset({"sensor", "binary_sensor", "text_sensor", "event"})
CATEGORIES: Final[dict[str, frozenset[str]]] = {
    kind: frozenset({"diagnostic"} if kind in _REPORTING else {"config", "diagnostic"})
    for kind in KINDS
}
# Each command argument and the one action it goes with.
ACTION_ARGUMENTS: Final = {
    "brightness": "turn_on",
    "rgb": "turn_on",
    "rgbw": "turn_on",
    "kelvin": "turn_on",
    "percentage": "turn_on",
    "value": "set",
    "option": "select",
    "position": "set_position",
    "direction": "set_direction",
}
# The one pair a command may carry: brightness with a colour.
_COLOURS: Final = frozenset({"rgb", "rgbw", "kelvin"})


@dataclass(frozen=True, slots=True)
class EntityInfo:
    """One entity from a `describe` message."""

    key: str
    kind: EntityKind
    name: str
    device_class: str | None = None
    unit: str | None = None
    state_class: str | None = None
    category: str | None = None  # "config" or "diagnostic" (HA's entity category)
    disabled_by_default: bool = False
    min: float | None = None  # number
    max: float | None = None
    step: float | None = None
    mode: str | None = None
    options: tuple[str, ...] = ()  # select
    event_types: tuple[EventType, ...] = ()  # event
    color_mode: ColorMode = "brightness"  # light
    min_kelvin: int | None = None
    max_kelvin: int | None = None
    reversible: bool = False  # fan


@dataclass(frozen=True, slots=True)
class LightState:
    """A light's state; the colour field its mode has (COLOR_FIELDS) is set."""

    on: bool
    brightness: int
    rgb: tuple[int, int, int] | None = None
    rgbw: tuple[int, int, int, int] | None = None
    kelvin: int | None = None


@dataclass(frozen=True, slots=True)
class FanState:
    on: bool
    percentage: int
    direction: Direction | None = None  # reversible fans only


@dataclass(frozen=True, slots=True)
class CoverState:
    position: int | None  # 0 closed … 100 open; None until the device knows it
    motion: Motion


@dataclass(frozen=True, slots=True)
class Describe:
    fw: str
    model: str
    name: str
    entities: tuple[EntityInfo, ...]


@dataclass(frozen=True, slots=True)
class State:
    values: dict[str, StateValue]


@dataclass(frozen=True, slots=True)
class Result:
    id: int
    ok: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    id: int


@dataclass(frozen=True, slots=True)
class Pong:
    id: int


@dataclass(frozen=True, slots=True)
class Event:
    """An event entity fired (a momentary signal, not a state)."""

    key: str
    type: EventType


@dataclass(frozen=True, slots=True)
class Command:
    """Each argument goes with one action (ACTION_ARGUMENTS); at most one is set,
    but for `brightness` with a colour."""

    id: int
    key: str
    action: str
    brightness: int | None = None
    rgb: tuple[int, int, int] | None = None
    rgbw: tuple[int, int, int, int] | None = None
    kelvin: int | None = None
    percentage: int | None = None
    value: float | None = None
    option: str | None = None
    position: int | None = None
    direction: Direction | None = None


@dataclass(frozen=True, slots=True)
class Unpair:
    id: int


type DeviceMessage = Describe | State | Result | Event | Ping | Pong
type ControllerMessage = Command | Ping | Pong | Unpair


def _fields(
    obj: dict[str, Any], required: set[str], optional: frozenset[str] = frozenset()
) -> None:
    keys = set(obj)
    if missing := required - keys:
        raise MessageError(f"missing fields: {sorted(missing)}")
    if extra := keys - required - optional:
        raise MessageError(f"unknown fields: {sorted(extra)}")


def _str(value: Any, field: str, max_len: int | None = None) -> str:
    if not isinstance(value, str):
        raise MessageError(f"{field} must be a string")
    if max_len is not None and len(value) > max_len:
        raise MessageError(f"{field} longer than {max_len}")
    return value


def _int(value: Any, field: str, low: int, high: int) -> int:
    # bool is an int in Python; JSON true is not a number here.
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise MessageError(f"{field} must be an integer in {low}..{high}")
    return value


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MessageError(f"{field} must be a number")
    if isinstance(value, int) and not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        raise MessageError(f"{field} out of range")
    if isinstance(value, float) and not math.isfinite(value):
        raise MessageError(f"{field} must be finite")
    return value


def _strings(value: Any, field: str, choices: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """A non-empty list of distinct strings (of `choices`, when given)."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_OPTIONS:
        raise MessageError(f"{field} must be a list of 1 to {MAX_OPTIONS} strings")
    items = tuple(_str(v, field, MAX_OPTION) for v in value)
    if len(set(items)) != len(items) or not all(items):
        raise MessageError(f"{field} must be distinct non-empty strings")
    if choices is not None and not set(items) <= set(choices):
        raise MessageError(f"{field} must be among {list(choices)}")
    return items


def _channels(value: Any, field: str, count: int) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or len(value) != count:
        raise MessageError(f"{field} must be a list of {count} integers")
    return tuple(_int(v, field, 0, 255) for v in value)


def _choice(value: Any, field: str, choices: tuple[str, ...]) -> Any:
    if not isinstance(value, str) or value not in choices:
        raise MessageError(f"{field} must be one of {list(choices)}")
    return value


def _id(value: Any) -> int:
    return _int(value, "id", 1, MAX_ID)


def _key(value: Any) -> str:
    key = _str(value, "key")
    if not KEY_RE.fullmatch(key):
        raise MessageError("key must match [a-z0-9_]{1,32}")
    return key


def _load(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_MESSAGE:
        raise MessageError("message longer than 3072 bytes")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise MessageError("not UTF-8 JSON") from err
    if not isinstance(obj, dict):
        raise MessageError("message must be a JSON object")
    if not isinstance(obj.get("t"), str):
        raise MessageError("missing message type")
    return obj


def _entity(obj: Any) -> EntityInfo:
    if not isinstance(obj, dict):
        raise MessageError("entity description must be an object")
    kind = obj.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise MessageError(f"unknown entity kind {kind!r}")
    required = REQUIRED.get(kind, frozenset())
    _fields(obj, {"key", "kind", "name", *required}, KINDS[kind] | COMMON_OPTIONAL)
    extra: dict[str, Any] = {
        f: _str(obj[f], f, MAX_NAME)
        for f in ("device_class", "unit", "state_class")
        if f in KINDS[kind] and f in obj
    }
    if kind == "number":
        low, high = _number(obj["min"], "min"), _number(obj["max"], "max")
        step = _number(obj["step"], "step")
        if not low < high or not step > 0:
            raise MessageError("a number needs min < max and step > 0")
        extra.update(min=low, max=high, step=step)
        if "mode" in obj:
            if obj["mode"] not in NUMBER_MODES:
                raise MessageError(f"mode must be one of {sorted(NUMBER_MODES)}")
            extra["mode"] = obj["mode"]
    elif kind == "select":
        extra["options"] = _strings(obj["options"], "options")
    elif kind == "event":
        extra["event_types"] = _strings(obj["event_types"], "event_types", EVENT_TYPES)
    elif kind == "light":
        extra.update(_light_fields(obj))
    elif kind == "fan" and "reversible" in obj:
        if not isinstance(obj["reversible"], bool):
            raise MessageError("reversible must be a bool")
        extra["reversible"] = obj["reversible"]
    category = obj.get("category")
    if category is not None and category not in CATEGORIES[kind]:
        raise MessageError(f"category of a {kind} must be one of {sorted(CATEGORIES[kind])}")
    disabled = obj.get("disabled_by_default", False)
    if not isinstance(disabled, bool):
        raise MessageError("disabled_by_default must be a bool")
    return EntityInfo(
        key=_key(obj["key"]),
        kind=kind,  # type: ignore[arg-type]  # checked against KINDS above
        name=_str(obj["name"], "name", MAX_NAME),
        category=category,
        disabled_by_default=disabled,
        **extra,
    )


def _light_fields(obj: dict[str, Any]) -> dict[str, Any]:
    mode = _choice(obj.get("color_mode", "brightness"), "color_mode", COLOR_MODES)
    kelvins = {"min_kelvin", "max_kelvin"} & set(obj)
    if mode != "color_temp":
        if kelvins:
            raise MessageError("min_kelvin and max_kelvin only with color_mode color_temp")
        return {"color_mode": mode}
    if len(kelvins) != 2:
        raise MessageError("a color_temp light needs min_kelvin and max_kelvin")
    low = _int(obj["min_kelvin"], "min_kelvin", MIN_KELVIN, MAX_KELVIN)
    high = _int(obj["max_kelvin"], "max_kelvin", MIN_KELVIN, MAX_KELVIN)
    if not low < high:
        raise MessageError("a color_temp light needs min_kelvin < max_kelvin")
    return {"color_mode": mode, "min_kelvin": low, "max_kelvin": high}


def _compound(value: dict[str, Any]) -> LightState | FanState | CoverState:
    """An object state value: a light's, a fan's or a cover's, told apart by its
    fields (check_state then matches it to the entity)."""
    if "brightness" in value:
        colour = {"rgb", "rgbw", "kelvin"} & set(value)
        _fields(value, {"on", "brightness", *colour})
        if len(colour) > 1:
            raise MessageError("a light state has at most one colour")
        if not isinstance(value["on"], bool):
            raise MessageError("light on must be a bool")
        light = LightState(value["on"], _int(value["brightness"], "brightness", 0, 255))
        if "rgb" in value:
            r, g, b = _channels(value["rgb"], "rgb", 3)
            return replace(light, rgb=(r, g, b))
        if "rgbw" in value:
            r, g, b, w = _channels(value["rgbw"], "rgbw", 4)
            return replace(light, rgbw=(r, g, b, w))
        if "kelvin" in value:
            return replace(light, kelvin=_int(value["kelvin"], "kelvin", MIN_KELVIN, MAX_KELVIN))
        return light
    if "percentage" in value:
        _fields(value, {"on", "percentage"}, frozenset({"direction"}))
        if not isinstance(value["on"], bool):
            raise MessageError("fan on must be a bool")
        direction = value.get("direction")
        return FanState(
            value["on"],
            _int(value["percentage"], "percentage", 1, 100),
            None if direction is None else _choice(direction, "direction", DIRECTIONS),
        )
    _fields(value, {"position", "motion"})
    position = value["position"]
    return CoverState(
        None if position is None else _int(position, "position", 0, 100),
        _choice(value["motion"], "motion", MOTIONS),
    )


def _state_value(value: Any) -> StateValue:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        # An int too large for a float would break HA's number handling later.
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise MessageError("state value out of range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MessageError("state value must be finite")
        return value
    if isinstance(value, str):
        return _str(value, "state value", MAX_TEXT)
    if isinstance(value, dict):
        return _compound(value)
    raise MessageError("unsupported state value")


def check_state(state: State, entities: tuple[EntityInfo, ...]) -> None:
    """The values of a `state` fit their entities' kinds (§7); keys the describe does
    not name are left to the caller (ignored)."""
    by_key = {e.key: e for e in entities}
    for key, value in state.values.items():
        entity = by_key.get(key)
        if entity is None or value is None:
            continue
        match entity.kind:
            case "switch" | "binary_sensor":
                ok = isinstance(value, bool)
            case "light":
                ok = isinstance(value, LightState) and _light_fits(value, entity)
            case "fan":
                ok = isinstance(value, FanState) and (value.direction is not None) == (
                    entity.reversible
                )
            case "cover":
                ok = isinstance(value, CoverState)
            case "sensor" | "number":
                ok = isinstance(value, int | float) and not isinstance(value, bool)
            case "select":
                ok = value in entity.options
            case "text_sensor":
                ok = isinstance(value, str)
            case _:  # button, event: no value
                ok = False
        if not ok:
            raise MessageError(f"state of {key} does not fit a {entity.kind}")


def _light_fits(value: LightState, entity: EntityInfo) -> bool:
    """The state carries exactly the colour field of the light's mode, in range."""
    colour = COLOR_FIELDS.get(entity.color_mode)
    present = {f for f in ("rgb", "rgbw", "kelvin") if getattr(value, f) is not None}
    if present != ({colour} if colour else set()):
        return False
    if value.kelvin is not None:
        low, high = entity.min_kelvin, entity.max_kelvin
        return low is not None and high is not None and low <= value.kelvin <= high
    return True


def parse_device_message(data: bytes) -> DeviceMessage:
    """Validate a plaintext a device sent to the controller."""
    obj = _load(data)
    match obj["t"]:
        case "describe":
            _fields(obj, {"t", "fw", "model", "name", "entities"})
            if not isinstance(obj["entities"], list):
                raise MessageError("entities must be a list")
            entities = tuple(_entity(e) for e in obj["entities"])
            if len({e.key for e in entities}) != len(entities):
                raise MessageError("duplicate entity key")
            return Describe(
                fw=_str(obj["fw"], "fw", MAX_NAME),
                model=_str(obj["model"], "model", MAX_NAME),
                name=_str(obj["name"], "name", MAX_NAME),
                entities=entities,
            )
        case "state":
            _fields(obj, {"t", "s"})
            if not isinstance(obj["s"], dict):
                raise MessageError("s must be an object")
            return State({_key(k): _state_value(v) for k, v in obj["s"].items()})
        case "result":
            _fields(obj, {"t", "id", "ok"}, frozenset({"error"}))
            if not isinstance(obj["ok"], bool):
                raise MessageError("ok must be a bool")
            error = _str(obj["error"], "error", MAX_NAME) if "error" in obj else None
            return Result(_id(obj["id"]), obj["ok"], error)
        case "event":
            _fields(obj, {"t", "key", "type"})
            if obj["type"] not in EVENT_TYPES:
                raise MessageError(f"event type must be one of {list(EVENT_TYPES)}")
            return Event(_key(obj["key"]), obj["type"])
        case "ping":
            _fields(obj, {"t", "id"})
            return Ping(_id(obj["id"]))
        case "pong":
            _fields(obj, {"t", "id"})
            return Pong(_id(obj["id"]))
    raise MessageError(f"unknown message type {obj['t']!r} from a device")


def parse_controller_message(data: bytes) -> ControllerMessage:
    """Validate a plaintext a controller sent (the device side's rules, for tests and tools)."""
    obj = _load(data)
    match obj["t"]:
        case "command":
            _fields(obj, {"t", "id", "key", "action"}, frozenset(ACTION_ARGUMENTS))
            fields = {f: obj[f] for f in ACTION_ARGUMENTS if f in obj}
            if None in fields.values():
                raise MessageError("a command argument must not be null")
            for f in ("rgb", "rgbw"):
                if isinstance(fields.get(f), list):
                    fields[f] = tuple(fields[f])
            command = Command(
                _id(obj["id"]),
                _key(obj["key"]),
                _str(obj["action"], "action", MAX_NAME),
                **fields,
            )
            _command_arguments(command)
            return command
        case "ping":
            _fields(obj, {"t", "id"})
            return Ping(_id(obj["id"]))
        case "pong":
            _fields(obj, {"t", "id"})
            return Pong(_id(obj["id"]))
        case "unpair":
            _fields(obj, {"t", "id"})
            return Unpair(_id(obj["id"]))
    raise MessageError(f"unknown message type {obj['t']!r} from a controller")


def _command_arguments(command: Command) -> dict[str, Any]:
    """The command's arguments (each with its action) as JSON fields, checked."""
    args = {
        f: v
        for f in ACTION_ARGUMENTS
        if (v := getattr(command, f)) is not None  # a field by its name
    }
    if len(args) > 1 and not (len(args) == 2 and "brightness" in args and set(args) & _COLOURS):
        raise MessageError("a command takes one argument, or brightness with a colour")
    for field, value in args.items():
        if command.action != ACTION_ARGUMENTS[field]:
            raise MessageError(f"{field} only with {ACTION_ARGUMENTS[field]}")
        match field:
            case "brightness":
                _int(value, field, 0, 255)
            case "rgb" | "rgbw":
                args[field] = list(_channels(value, field, 3 if field == "rgb" else 4))
            case "kelvin":
                _int(value, field, MIN_KELVIN, MAX_KELVIN)
            case "percentage" | "position":
                _int(value, field, 0, 100)
            case "value":
                _number(value, field)
            case "option":
                if not _str(value, field, MAX_OPTION):
                    raise MessageError("option must not be empty")
            case "direction":
                _choice(value, field, DIRECTIONS)
    return args


def encode(message: ControllerMessage | DeviceMessage) -> bytes:
    """Serialize a message compactly; refuses one over the size limit."""
    obj: dict[str, Any]
    match message:
        case Command(id=cid, key=key, action=action):
            obj = {"t": "command", "id": _id(cid), "key": _key(key), "action": action}
            obj.update(_command_arguments(message))
        case Event(key=key, type=event_type):
            obj = {"t": "event", "key": _key(key), "type": event_type}
        case Unpair(id=cid):
            obj = {"t": "unpair", "id": _id(cid)}
        case Ping(id=cid):
            obj = {"t": "ping", "id": _id(cid)}
        case Pong(id=cid):
            obj = {"t": "pong", "id": _id(cid)}
        case Result(id=cid, ok=ok, error=error):
            obj = {"t": "result", "id": _id(cid), "ok": ok}
            if error is not None:
                obj["error"] = error
        case State(values=values):
            obj = {"t": "state", "s": {k: _encode_value(v) for k, v in values.items()}}
        case Describe():
            obj = {
                "t": "describe",
                "fw": message.fw,
                "model": message.model,
                "name": message.name,
                "entities": [_encode_entity(e) for e in message.entities],
            }
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    if len(data) > MAX_MESSAGE:
        raise MessageError("message longer than 3072 bytes")
    return data


def _encode_value(value: StateValue) -> Any:
    match value:
        case LightState():
            obj: dict[str, Any] = {"on": value.on, "brightness": value.brightness}
            for field in ("rgb", "rgbw"):
                if (channels := getattr(value, field)) is not None:
                    obj[field] = list(channels)
            if value.kelvin is not None:
                obj["kelvin"] = value.kelvin
            return obj
        case FanState():
            obj = {"on": value.on, "percentage": value.percentage}
            if value.direction is not None:
                obj["direction"] = value.direction
            return obj
        case CoverState():
            return {"position": value.position, "motion": value.motion}
    return value


def _encode_entity(entity: EntityInfo) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": entity.key, "kind": entity.kind, "name": entity.name}
    for field in (
        "device_class",
        "unit",
        "state_class",
        "category",
        "min",
        "max",
        "step",
        "mode",
        "min_kelvin",
        "max_kelvin",
    ):
        if (value := getattr(entity, field)) is not None:
            obj[field] = value
    if entity.kind == "light" and entity.color_mode != "brightness":
        obj["color_mode"] = entity.color_mode
    if entity.reversible:
        obj["reversible"] = True
    if entity.options:
        obj["options"] = list(entity.options)
    if entity.event_types:
        obj["event_types"] = list(entity.event_types)
    if entity.disabled_by_default:
        obj["disabled_by_default"] = True
    return obj
