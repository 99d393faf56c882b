"""When a job fires: its :class:`ScheduleSpec` (the legacy dialect, the expression or the
interval, the zone and the bounds), validated for structure on construction; the expression's
*syntax* and the fire times are :mod:`bridge.core.schedules`'. Part of every
:class:`bridge.core.spec.JobSpec`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.core.errors import SpecError


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


def _check_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as e:
        raise SpecError(f"unknown timezone '{name}'") from e


def _aware(value: datetime | None, what: str) -> None:
    if value is not None and value.tzinfo is None:
        raise SpecError(f"{what} must carry a timezone offset")


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
