"""Job specs: frozen, typed value objects with validation and a versioned JSON round trip.

A :class:`JobSpec` is everything the bridge knows about one legacy job: where it came from, when
it fires (in its own legacy dialect), what it runs, and the policies that govern running it. The
registry stores ``JobSpec.to_json()``; ``JobSpec.from_json`` reads every version this code knows.
Expression *syntax* is checked by :mod:`bridge.core.schedules` (``compile_schedule``); this module
checks structure.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from bridge.core import encoding
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
from bridge.core.schedule_spec import (
    CRON_DIALECTS,
    EXPRESSION_DIALECTS,
    Dialect,
    IntervalUnit,
    ScheduleSpec,
    describe_schedule,
)

# The policies (bridge.core.policies) and the schedule (bridge.core.schedule_spec) live in their
# own modules; a spec's users import them from here too.
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


class SourceKind(StrEnum):
    USER_CRONTAB = "user-crontab"
    SYSTEM_CRONTAB = "system-crontab"  # /etc/crontab
    CRON_D = "cron.d"
    QUARTZ_XML = "quartz-xml"
    QUARTZ_STORE = "quartz-store"  # a Quartz JobStore: JDBC tables or the plugin's export
    MANUAL = "manual"


@dataclass(frozen=True)
class SourceLocation:
    file: str
    line: int | None = None
    raw: str | None = None
    kind: SourceKind = SourceKind.MANUAL
    host: str | None = None  # the machine (bridge.core.hosts); None: bound to none (Quartz)


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
        return {"version": SPEC_VERSION, **encoding.document(self)}

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
        text = _job_text(self)
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


# How specs are encoded (bridge.core.encoding). Policy fields added after SPEC_VERSION 1 was
# published are left out of the document while unset, so a spec that does not use them keeps its
# canonical JSON, and therefore its stored spec_hash. Schedules and policies are value objects
# jobs share.
encoding.configure(
    Policies,
    shared=True,
    omit={
        "max_concurrency": None,
        "on_lost": LostPolicy.SKIP,
        "repair": RepairPolicy.AUTO,
        "placement": Placement.HOST,
    },
)
encoding.configure(SourceLocation, omit={"host": None})  # added with fleets (migration 0005)
for _shared in (ScheduleSpec, RetryPolicy, ComparePolicy):
    encoding.configure(_shared, shared=True)
_job_text = encoding.text_writer(JobSpec, (("version", int.__repr__(SPEC_VERSION)),))


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
