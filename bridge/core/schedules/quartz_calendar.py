"""The Quartz calendar: which days a day rule fires on, and how wall-clock times become
instants the way ``java.util.GregorianCalendar`` resolves them (lenient fields, the smaller
offset around a DST transition). Used by the walk in :mod:`bridge.core.schedules.quartz`."""

from __future__ import annotations

from calendar import monthrange
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from bridge.core.schedules.quartz_syntax import DayRule

ONE_SECOND = timedelta(seconds=1)


# ----------------------------------------------------------------------------------------------
# Days
# ----------------------------------------------------------------------------------------------


def quartz_dow(d: datetime) -> int:
    """1 = Sunday .. 7 = Saturday, as java.util.Calendar.DAY_OF_WEEK."""
    return (d.weekday() + 1) % 7 + 1


def nearest_weekday(year: int, month: int, day: int) -> int:
    """Quartz's W: the day number it picks for ``day`` (may fall outside the month)."""
    last = monthrange(year, month)[1]
    dow = quartz_dow(datetime(year, month, 1) + timedelta(days=day - 1))
    if dow == 7:
        return day + 2 if day == 1 else day - 1
    if dow == 1:
        return day - 2 if day == last else day + 1
    return day


@lru_cache(maxsize=4096)
def month_days(rule: DayRule, year: int, month: int) -> tuple[int, ...]:
    """The days of ``year``-``month`` on which ``rule`` lets Quartz fire, ascending."""
    last = monthrange(year, month)[1]
    kind = rule.kind
    if kind == "dom":
        return tuple(d for d in rule.values if d <= last)
    if kind == "last":
        return (last - rule.offset,) if last - rule.offset >= 1 else ()
    if kind in ("nearest", "last_weekday"):
        base = rule.value if kind == "nearest" else last - rule.offset
        day = nearest_weekday(year, month, base)
        return (day,) if 1 <= day <= last else ()
    first = quartz_dow(datetime(year, month, 1))
    if kind == "dow":
        return tuple(d for d in range(1, last + 1) if (first + d - 2) % 7 + 1 in rule.values)
    start = 1 + (rule.value - first) % 7
    if kind == "last_dow":
        return (start + 7 * ((last - start) // 7),)
    day = start + 7 * (rule.nth - 1)
    return (day,) if day <= last else ()


@lru_cache(maxsize=1024)
def ever_fires(rule: DayRule, months: tuple[int, ...]) -> bool:
    """Whether some month of ``months`` ever has a matching day (``0 0 0 30 2 ?`` never does).

    2000-2027 hold every combination of leap year and weekday of January 1st (the Gregorian
    calendar repeats every 28 years between 1901 and 2099).
    """
    return any(month_days(rule, y, m) for y in range(2000, 2028) for m in months)


# ----------------------------------------------------------------------------------------------
# Wall clock <-> instants, the way java.util.GregorianCalendar resolves them
# ----------------------------------------------------------------------------------------------


def offsets(zone: ZoneInfo, wall: datetime) -> tuple[timedelta, timedelta]:
    a = wall.replace(tzinfo=zone).utcoffset()
    b = wall.replace(tzinfo=zone, fold=1).utcoffset()
    assert a is not None and b is not None
    return a, b


def wall_to_instant(zone: ZoneInfo, wall: datetime) -> datetime:
    """The instant Java gives a naive wall time: the smaller offset of the two around it.

    In a gap that is the offset before the jump (02:30 -> 03:30 in New York); in an overlap the
    offset after it (01:30 is 01:30 EST).
    """
    a, b = offsets(zone, wall)
    return (wall - min(a, b)).replace(tzinfo=UTC)


def normalize(zone: ZoneInfo, wall: datetime) -> datetime:
    """The wall time Java reads back after resolving ``wall``: moved forward out of a gap."""
    a, b = offsets(zone, wall)
    return wall + (b - a) if b > a else wall


def repeat_start(zone: ZoneInfo, wall: datetime, length: timedelta) -> datetime:
    """The first wall time of the repeated interval (of ``length``) that holds ``wall``."""
    lo, hi = wall - length, wall  # lo is not repeated, hi is
    while hi - lo > ONE_SECOND:
        mid = lo + timedelta(seconds=(hi - lo).total_seconds() // 2)
        a, b = offsets(zone, mid)
        lo, hi = (lo, mid) if a > b else (mid, hi)
    return hi


def wall_of(zone: ZoneInfo, instant: datetime) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def lenient(
    year: int, month: int, day: int = 1, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A naive datetime from out-of-range fields, as a lenient Calendar rolls them over."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return datetime(year, month, 1) + timedelta(
        days=day - 1, hours=hour, minutes=minute, seconds=second
    )
