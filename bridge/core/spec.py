"""Job specs: frozen, typed value objects with validation and a versioned JSON round trip.

A :class:`JobSpec` is everything the bridge knows about one legacy job: where it came from, when
it fires (in its own legacy dialect), what it runs, and the policies that govern running it. The
registry stores ``JobSpec.to_json()``; ``JobSpec.from_json`` reads every version this code knows.
Expression *syntax* is checked by :mod:`bridge.core.schedules` (``compile_schedule``); this module
checks structure.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.core.errors import SpecError
from bridge.core.hosts import check_host
from bridge.core.policies import (
    ComparePolicy,
    LostPolicy,
    MisfirePolicy,
    OverlapPolicy,
    Placement,
    Policies,
    RepairPolicy,
    RetryPolicy,
    ShadowMode,
)

# The policies live in bridge.core.policies; a spec's users import them from here too.
__all__ = [
    "CALLABLE_RE", "CRON_DIALECTS", "ENV_NAME_RE", "EXPRESSION_DIALECTS", "JOB_ID_RE",
    "SPEC_VERSION", "CallableHandler", "CommandHandler", "ComparePolicy", "Dialect", "Handler",
    "IntervalUnit", "JobSpec", "LostPolicy", "MisfirePolicy", "OverlapPolicy", "Placement",
    "Policies", "RepairPolicy", "RetryPolicy", "ScheduleSpec", "ShadowMode", "SourceKind",
    "SourceLocation", "UnmappedHandler", "describe_schedule",
]

SPEC_VERSION = 1
JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CALLABLE_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class Dialect(StrEnum):
    VIXIE = "vixie"
    CRONIE = "cronie"
    QUARTZ = "quartz"
    QUARTZ_SIMPLE = "quartz-simple"
    CALENDAR_INTERVAL = "calendar-interval"
    INTERVAL = "interval"


CRON_DIALECTS = frozenset({Dialect.VIXIE, Dialect.CRONIE})
EXPRESSION_DIALECTS = frozenset({Dialect.VIXIE, Dialect.CRONIE, Dialect.QUARTZ})


class IntervalUnit(StrEnum):
    SECOND = "second"
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


class SourceKind(StrEnum):
    USER_CRONTAB = "user-crontab"
    SYSTEM_CRONTAB = "system-crontab"  # /etc/crontab
    CRON_D = "cron.d"
    QUARTZ_XML = "quartz-xml"
    QUARTZ_STORE = "quartz-store"  # a Quartz JobStore: JDBC tables or the plugin's export
    MANUAL = "manual"


def _check_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as e:
        raise SpecError(f"unknown timezone '{name}'") from e


def _aware(value: datetime | None, what: str) -> None:
    if value is not None and value.tzinfo is None:
        raise SpecError(f"{what} must carry a timezone offset")


@dataclass(frozen=True)
class SourceLocation:
    file: str
    line: int | None = None
    raw: str | None = None
    kind: SourceKind = SourceKind.MANUAL
    host: str | None = None  # the machine (bridge.core.hosts); None: bound to none (Quartz)


@dataclass(frozen=True)
class ScheduleSpec:
    """When a job fires, in its legacy dialect.

    * cron dialects (``vixie``, ``cronie``) and ``quartz``: ``expression``;
    * ``quartz-simple``: ``start`` + ``interval_ms`` (+ ``repeat_count``, None = forever);
    * ``calendar-interval``: ``start`` + ``interval`` ``interval_unit`` (+ zone for day units);
    * ``interval``: every ``interval_ms`` from ``start`` (or the epoch).
    ``start``/``end`` bound every dialect (Quartz trigger start-time / end-time).
    """

    dialect: Dialect
    timezone: str = "UTC"
    expression: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    interval_ms: int | None = None
    interval: int | None = None
    interval_unit: IntervalUnit | None = None
    repeat_count: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dialect", Dialect(self.dialect))
        _check_zone(self.timezone)
        _aware(self.start, "schedule start")
        _aware(self.end, "schedule end")
        if self.start and self.end and self.end < self.start:
            raise SpecError("schedule end is before its start")
        d = self.dialect
        if d in EXPRESSION_DIALECTS:
            if not self.expression or not self.expression.strip():
                raise SpecError(f"a {d} schedule needs an expression")
        elif d in (Dialect.QUARTZ_SIMPLE, Dialect.INTERVAL):
            if self.interval_ms is None or self.interval_ms < 0:
                raise SpecError(f"a {d} schedule needs interval_ms >= 0")
            if d is Dialect.QUARTZ_SIMPLE and self.start is None:
                raise SpecError("a quartz-simple schedule needs a start time")
        elif d is Dialect.CALENDAR_INTERVAL:
            if self.interval is None or self.interval < 1 or self.interval_unit is None:
                raise SpecError("a calendar-interval schedule needs interval >= 1 and a unit")
            object.__setattr__(self, "interval_unit", IntervalUnit(self.interval_unit))
            if self.start is None:
                raise SpecError("a calendar-interval schedule needs a start time")
        if self.repeat_count is not None and self.repeat_count < -1:
            raise SpecError("repeat_count must be -1 (forever) or >= 0")
        if self.repeat_count == -1:
            object.__setattr__(self, "repeat_count", None)


@dataclass(frozen=True)
class CommandHandler:
    """A shell command run the way cron runs it: ``$SHELL -c command`` with ``stdin``."""

    command: str
    stdin: str | None = None
    user: str | None = None
    shell: str = "/bin/sh"
    env: tuple[tuple[str, str], ...] = ()
    dry_run_command: str | None = None  # shadow dry-run form; else BRIDGE_SHADOW=1 in env
    kind: str = field(default="command", init=False)

    def __post_init__(self) -> None:
        if not self.command.strip():
            raise SpecError("command handler has an empty command")
        try:
            env = _checked_env(self.env)  # one check per distinct environment
        except TypeError:  # unhashable pairs (lists from JSON): normalised, then checked
            env = _checked_env(tuple((str(k), str(v)) for k, v in self.env))
        object.__setattr__(self, "env", env)


@lru_cache(maxsize=1024)
def _checked_env(env: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """``env`` as (str, str) pairs, every name one a shell can carry; jobs that share an
    environment share the returned tuple."""
    pairs = tuple((str(k), str(v)) for k, v in env)
    for name, _ in pairs:
        if not ENV_NAME_RE.match(name):
            raise SpecError(f"bad environment variable name '{name}'")
    return pairs


@dataclass(frozen=True)
class CallableHandler:
    """A Python callable ``module:function`` run in the worker, with JSON args."""

    target: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    dry_run_target: str | None = None
    kind: str = field(default="callable", init=False)

    def __post_init__(self) -> None:
        if not CALLABLE_RE.match(self.target):
            raise SpecError(f"callable target '{self.target}' is not 'module:function'")
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "kwargs", tuple((str(k), v) for k, v in self.kwargs))


@dataclass(frozen=True)
class UnmappedHandler:
    """A Quartz job class with no mapping: observable in shadow, never executed or flipped."""

    job_class: str
    job_data: tuple[tuple[str, str], ...] = ()
    kind: str = field(default="unmapped", init=False)


Handler = CommandHandler | CallableHandler | UnmappedHandler


@dataclass(frozen=True)
class JobSpec:
    id: str
    schedule: ScheduleSpec
    handler: Handler
    source: SourceLocation = SourceLocation(file="<manual>")
    policies: Policies = Policies()
    compare: ComparePolicy = ComparePolicy()
    description: str | None = None
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.source.host is not None:
            check_host(self.source.host)
        if not JOB_ID_RE.match(self.id):
            raise SpecError(
                f"bad job id '{self.id}': use letters, digits, '.', '_', '@', '-' (max 200)"
            )
        object.__setattr__(self, "tags", tuple(self.tags))

    @property
    def mapped(self) -> bool:
        return not isinstance(self.handler, UnmappedHandler)

    @property
    def host(self) -> str | None:
        """The host of the job's legacy line (``source.host``; None: bound to no machine)."""
        return self.source.host

    def to_json(self) -> dict[str, Any]:
        """The versioned JSON document (a new dict; nested documents of shared values such as
        schedules and policies are shared: do not mutate them)."""
        return {"version": SPEC_VERSION, **_encode(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobSpec:
        version = data.get("version")
        if version != SPEC_VERSION:
            raise SpecError(f"job spec version {version!r} is not supported (this code reads 1)")
        try:
            return _decode_job(data)
        except SpecError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise SpecError(f"malformed job spec: {e}") from e

    def canonical_json(self) -> str:
        """Sorted, compact JSON of the spec. Encoded on each call (100k specs in an import
        must not each keep a kilobyte of text alive); the hash of it is kept."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        if "_hash" not in self.__dict__:
            object.__setattr__(self, "_hash", _digest(text))
        return text

    def spec_hash(self) -> str:
        """The hash of :meth:`canonical_json`, computed once per (immutable) instance."""
        cached: str | None = self.__dict__.get("_hash")
        if cached is None:
            self.canonical_json()
            cached = self.__dict__["_hash"]
        return cached

    def with_(self, **changes: Any) -> JobSpec:
        return replace(self, **changes)


# --- encoding ---------------------------------------------------------------------------------


def _digest(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# Fields added after SPEC_VERSION 1 was published: left out of the document while unset, so a
# spec that does not use them keeps its canonical JSON, and therefore its stored spec_hash.
_OMITTED_WHEN_NONE: dict[type, frozenset[str]] = {Policies: frozenset({"max_concurrency"}),
                                                  SourceLocation: frozenset({"host"})}
# Likewise left out while they hold their default (so existing specs keep their hash).
_OMITTED_WHEN_DEFAULT: dict[type, dict[str, Any]] = {
    Policies: {"on_lost": LostPolicy.SKIP, "repair": RepairPolicy.AUTO,
               "placement": Placement.HOST}
}


_Encoder = Callable[[Any], dict[str, Any]]
_CLASS_ENCODERS: dict[type, _Encoder] = {}
_PLAIN = frozenset({str, int, float, bool, type(None)})
# Value objects many jobs share (the crontab parser hands out one instance per distinct value):
# encoded once per instance, the encoding shared read-only. Keyed by id, holding the object.
_SHARED_TYPES = frozenset({ScheduleSpec, Policies, RetryPolicy, ComparePolicy})
_SHARED: dict[int, tuple[Any, dict[str, Any]]] = {}
_SHARED_MAX = 4096


def _class_encoder(cls: type) -> _Encoder:
    """An encoder for one dataclass: its fields in order, less those omitted while unset."""
    omit = _OMITTED_WHEN_NONE.get(cls, frozenset())
    defaults = _OMITTED_WHEN_DEFAULT.get(cls, {})
    names = tuple(f.name for f in fields(cls))

    def encode(obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in names:
            value = getattr(obj, name)
            if value is None and name in omit:
                continue
            if name in defaults and value == defaults[name]:
                continue
            out[name] = value if type(value) in _PLAIN else _encode(value)
        return out

    if cls not in _SHARED_TYPES:
        return encode

    def shared(obj: Any) -> dict[str, Any]:
        hit = _SHARED.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        doc = encode(obj)
        _SHARED[id(obj)] = (obj, doc)
        return doc

    return shared


def _encode(obj: Any) -> Any:
    kind = type(obj)
    if kind in _PLAIN:
        return obj
    encoder = _CLASS_ENCODERS.get(kind)
    if encoder is not None:
        return encoder(obj)
    if isinstance(obj, StrEnum):
        return obj.value
    if isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, datetime):
        return obj.isoformat()
    if hasattr(obj, "__dataclass_fields__"):
        encoder = _CLASS_ENCODERS[kind] = _class_encoder(kind)
        return encoder(obj)
    if isinstance(obj, tuple | list):
        return [_encode(x) for x in obj]
    return obj


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _pairs(value: Any) -> tuple[tuple[str, Any], ...]:
    if isinstance(value, Mapping):
        return tuple(value.items())
    return tuple((k, v) for k, v in value)


def _decode_handler(data: Mapping[str, Any]) -> Handler:
    kind = data.get("kind")
    body = {k: v for k, v in data.items() if k != "kind"}
    if kind == "command":
        body["env"] = _pairs(body.get("env", ()))
        return CommandHandler(**body)
    if kind == "callable":
        body["args"] = tuple(body.get("args", ()))
        body["kwargs"] = _pairs(body.get("kwargs", ()))
        return CallableHandler(**body)
    if kind == "unmapped":
        body["job_data"] = _pairs(body.get("job_data", ()))
        return UnmappedHandler(**body)
    raise SpecError(f"unknown handler kind {kind!r}")


def _decode_job(data: Mapping[str, Any]) -> JobSpec:
    s = dict(data["schedule"])
    s["start"], s["end"] = _dt(s.get("start")), _dt(s.get("end"))
    p = dict(data.get("policies", {}))
    if "retry" in p:
        p["retry"] = RetryPolicy(**p["retry"])
    src = dict(data.get("source", {"file": "<manual>"}))
    cmp_: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in data.get("compare", {}).items()
    }
    return JobSpec(
        id=data["id"],
        schedule=ScheduleSpec(**s),
        handler=_decode_handler(data["handler"]),
        source=SourceLocation(**{**src, "kind": SourceKind(src.get("kind", "manual"))}),
        policies=Policies(**p),
        compare=ComparePolicy(**cmp_),
        description=data.get("description"),
        tags=tuple(data.get("tags", ())),
    )


def describe_schedule(s: ScheduleSpec) -> str:
    """A short human description: the expression, or the interval for trigger dialects."""
    if s.expression:
        return s.expression
    if s.dialect is Dialect.CALENDAR_INTERVAL:
        start = s.start.isoformat() if s.start else "?"
        return f"every {s.interval} {s.interval_unit}(s) from {start}"
    seconds = (s.interval_ms or 0) / 1000
    text = f"every {seconds:g}s"
    if s.start is not None:
        text += f" from {s.start.isoformat()}"
    if s.repeat_count is not None:
        text += f", {s.repeat_count + 1} fire(s)"
    return text
