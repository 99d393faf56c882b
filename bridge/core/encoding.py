"""Frozen dataclass values -> their JSON document and its canonical text (how specs are encoded).

``document(obj)`` is the JSON document of a value (dataclass -> dict of its fields, enums -> their
value, datetimes -> ISO text, tuples -> lists); ``text(obj)`` is exactly
``json.dumps(document(obj), sort_keys=True, separators=(",", ":"))``, written without building
the document. Generic: :func:`configure` says how a class is encoded:

* ``omit``: {field: value} — the field is left out while it equals that value (fields added
  after a document format was published, so documents that do not use them keep their text,
  and therefore their hash);
* ``shared``: a value object many jobs share (the crontab parser hands out one instance per
  distinct value): its document and text are made once per instance and shared read-only
  (keyed by id, holding the object).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import fields
from datetime import datetime
from enum import StrEnum
from typing import Any

_Encoder = Callable[[Any], dict[str, Any]]
_TextWriter = Callable[[Any], str]
_PLAIN = frozenset({str, int, float, bool, type(None)})
_SHARED_MAX = 4096
_ENCODERS: dict[type, _Encoder] = {}
_TEXT_WRITERS: dict[type, _TextWriter] = {}
_SHARED: dict[int, tuple[Any, dict[str, Any]]] = {}
_SHARED_TEXT: dict[int, tuple[Any, str]] = {}
_json_str = json.encoder.encode_basestring_ascii  # what json.dumps writes for a str
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


_OMIT: dict[type, Mapping[str, Any]] = {}
_SHARED_TYPES: set[type] = set()


def configure(cls: type, *, omit: Mapping[str, Any] | None = None, shared: bool = False) -> None:
    """How ``cls`` is encoded (declared where it is defined, before any value is encoded)."""
    _OMIT[cls] = dict(omit or {})
    if shared:
        _SHARED_TYPES.add(cls)


def _omitted(cls: type) -> Mapping[str, Any]:
    return _OMIT.get(cls, {})


def _is_shared(cls: type) -> bool:
    return cls in _SHARED_TYPES


def _shared_by_id(make: Callable[[Any], Any], cache: dict[int, tuple[Any, Any]]) -> Any:
    def shared(obj: Any) -> Any:
        hit = cache.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        if len(cache) >= _SHARED_MAX:
            cache.clear()
        made = make(obj)
        cache[id(obj)] = (obj, made)
        return made

    return shared


def _class_encoder(cls: type) -> _Encoder:
    """The document of one dataclass: its fields in order, less those omitted."""
    omit = _omitted(cls)
    names = tuple(f.name for f in fields(cls))

    def encode(obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in names:
            value = getattr(obj, name)
            if name in omit and value == omit[name]:
                continue
            out[name] = value if type(value) in _PLAIN else document(value)
        return out

    return _shared_by_id(encode, _SHARED) if _is_shared(cls) else encode


def document(obj: Any) -> Any:
    kind = type(obj)
    if kind in _PLAIN:
        return obj
    encoder = _ENCODERS.get(kind)
    if encoder is not None:
        return encoder(obj)
    if isinstance(obj, StrEnum):
        return obj.value
    if isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, datetime):
        return obj.isoformat()
    if hasattr(obj, "__dataclass_fields__"):
        encoder = _ENCODERS[kind] = _class_encoder(kind)
        return encoder(obj)
    if isinstance(obj, tuple | list):
        return [x if type(x) in _PLAIN else document(x) for x in obj]
    return obj


def _float_text(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def text(obj: Any) -> str:
    kind = type(obj)
    if kind is str:
        return _json_str(obj)
    if obj is None:
        return "null"
    if kind is bool:
        return "true" if obj else "false"
    if kind is int:
        return int.__repr__(obj)
    writer = _TEXT_WRITERS.get(kind)
    if writer is not None:
        return writer(obj)
    if kind is float:
        return _float_text(obj)
    if isinstance(obj, StrEnum):
        return _json_str(obj.value)
    if isinstance(obj, datetime):
        return _json_str(obj.isoformat())
    if hasattr(obj, "__dataclass_fields__"):
        writer = _TEXT_WRITERS[kind] = text_writer(kind)
        return writer(obj)
    if kind is tuple or kind is list:
        return "[" + ",".join([text(x) for x in obj]) + "]"
    return _CANONICAL.encode(document(obj))  # anything else: as the encoder writes it


def text_writer(cls: type, extra: tuple[tuple[str, str], ...] = ()) -> _TextWriter:
    """The canonical text of one dataclass; ``extra``: (key, text) members added to it."""
    omit = _omitted(cls)
    members = sorted([*((f.name, None) for f in fields(cls)), *extra])
    keys = {name: _json_str(name) + ":" for name, _ in members}

    def write(obj: Any) -> str:
        parts = []
        for name, fixed in members:
            if fixed is not None:
                parts.append(keys[name] + fixed)
                continue
            value = getattr(obj, name)
            if name in omit and value == omit[name]:
                continue
            parts.append(keys[name] + text(value))
        return "{" + ",".join(parts) + "}"

    return _shared_by_id(write, _SHARED_TEXT) if _is_shared(cls) else write
