"""The compiled configuration as JSON, and back (``fastka --dump-conf=json``).

The document mirrors :mod:`fastka.config.model` one to one, so key names are the model's
field names (Keepalived's keyword names) and stay stable; ``docs/config-json.md`` is the
schema. Conversions: addresses, prefixes and enums are strings; ``bytes`` are hex
strings; tuples are arrays; ``location`` is ``{"file": ..., "line": ...}`` (or absent);
checkers carry a ``"type"`` (``"HTTP_GET"`` ...) that selects their class on the way
back. :func:`from_json` of :func:`to_json` gives a :class:`~fastka.config.model.Config`
equal to the original.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import json
import types
import typing
from typing import Any

from fastka.config import model as m
from fastka.errors import ConfigError

SCHEMA_VERSION = 1

_IP_KINDS: dict[object, Any] = {
    cls: cls
    for cls in (
        ipaddress.IPv4Address,
        ipaddress.IPv6Address,
        ipaddress.IPv4Interface,
        ipaddress.IPv6Interface,
        ipaddress.IPv4Network,
        ipaddress.IPv6Network,
    )
}


# --------------------------------------------------------------------------- encode
def encode(value: object) -> Any:
    """A JSON-ready value for a model object (recursively)."""
    if value is None or (isinstance(value, bool | int | float | str) and not isinstance(value, enum.Enum)):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, m.Location):
        return {"file": value.file, "line": value.line}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        if isinstance(value, m.Checker):
            out["type"] = value.TYPE
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.name == "location" and item is None:
                continue
            out[f.name] = encode(item)
        return out
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return value.with_prefixlen
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value.with_prefixlen
    raise TypeError(f"cannot encode {type(value).__name__}")


def to_json(config: m.Config) -> dict[str, Any]:
    doc = encode(config)
    assert isinstance(doc, dict)
    return {"schema": SCHEMA_VERSION, **doc}


def dumps(config: m.Config, *, indent: int | None = 2) -> str:
    return json.dumps(to_json(config), indent=indent, ensure_ascii=False)


# --------------------------------------------------------------------------- decode
_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls, vars(m))
    return hints


def decode(tp: Any, value: Any) -> Any:
    """Rebuild a value of type ``tp`` from its JSON form."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"null where {tp} expected")
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return decode(options[0], value)
        if all(o in _IP_KINDS for o in options):
            return _ip_value(options, value)
        for option in options:
            try:
                return decode(option, value)
            except (ConfigError, ValueError, TypeError):
                continue
        raise ConfigError(f"cannot decode {value!r} as {tp}")
    if origin is list:
        return [decode(args[0], v) for v in _array(value)]
    if origin is tuple:
        items = _array(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], v) for v in items)
        if len(items) != len(args):
            raise ConfigError(f"expected {len(args)} items, got {len(items)}")
        return tuple(decode(a, v) for a, v in zip(args, items, strict=True))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected an object, got {value!r}")
        return {k: decode(args[1], v) for k, v in value.items()}
    if tp is m.Location:
        return m.Location(file=str(value["file"]), line=int(value["line"]))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, value)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    if tp in _IP_KINDS:
        return _IP_KINDS[tp](value)
    if tp is bytes:
        return bytes.fromhex(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"expected a boolean, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {value!r}")
        return value
    if tp is object or tp is Any:
        return value
    raise ConfigError(f"cannot decode type {tp}")


def _array(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"expected an array, got {value!r}")
    return value


def _ip_value(options: list[Any], value: Any) -> Any:
    if not isinstance(value, str):
        raise ConfigError(f"expected an address string, got {value!r}")
    if ipaddress.IPv4Interface in options:
        return ipaddress.ip_interface(value)
    if ipaddress.IPv4Network in options:
        return ipaddress.ip_network(value)
    return ipaddress.ip_address(value)


def _dataclass(cls: type[Any], value: Any) -> Any:
    if not isinstance(value, dict):
        raise ConfigError(f"expected an object for {cls.__name__}, got {value!r}")
    if cls is m.Checker or issubclass(cls, m.Checker):
        kind = value.get("type", getattr(cls, "TYPE", ""))
        sub = m.CHECKER_TYPES.get(kind)
        if sub is None:
            raise ConfigError(f"unknown checker type {kind!r}")
        cls = sub
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in value:
            kwargs[f.name] = decode(hints[f.name], value[f.name])
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{cls.__name__}: {exc}") from None


def from_json(doc: Any) -> m.Config:
    """The Config a :func:`to_json` document describes; ConfigError if it is not one."""
    if not isinstance(doc, dict):
        raise ConfigError("a configuration document must be a JSON object")
    schema = doc.get("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION:
        raise ConfigError(f"unsupported configuration schema {schema!r}")
    body = {k: v for k, v in doc.items() if k != "schema"}
    try:
        config = _dataclass(m.Config, body)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"invalid configuration document: {exc}") from None
    assert isinstance(config, m.Config)
    return config


def loads(text: str) -> m.Config:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc}") from None
    return from_json(doc)
