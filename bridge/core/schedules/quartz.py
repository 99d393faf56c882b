"""Quartz 2.3.2 ``CronExpression`` fire times, DST days included (pure: no clock, no I/O).

Expressions are parsed by ``bridge.core.schedules.quartz_syntax``, whose docstring says what Quartz
accepts and what the bridge refuses; ``parse`` and ``validate`` are re-exported here.

Evaluation: a walk over wall-clock fields
-----------------------------------------
Quartz searches forward over the *wall clock* of the zone, field by field (second, minute, hour,
day, month, year): when a field has no match left it carries into the next field and resets the
lower ones to their first candidate ("lower bound"), and every lower bound is turned into an
instant by ``java.util.GregorianCalendar`` (lenient), then read back as wall fields.  Turning a
wall time into an instant follows Java's rule, which is the same in every zone verified
(America/New_York, America/Sao_Paulo, Europe/Berlin, Europe/London, Australia/Sydney,
Australia/Lord_Howe, Pacific/Auckland, America/Santiago, Asia/Kolkata, Asia/Tokyo, UTC): *use the
smaller of the two offsets in force around the transition*.  Hence:

* an ambiguous autumn wall time is the later (standard-time) instant, so it fires once, and the
  whole first (daylight) copy of a repeated hour never fires: ``0 0 * * * ?`` in New York on
  2026-11-01 fires 00:00 EDT, 01:00 EST, 02:00 EST; every-minute jumps from 00:59 EDT to
  01:00 EST.  A search that *starts* inside the first copy continues in the second copy at the
  same wall time (every-minute after 01:10 EDT gives 01:11 EST, not 01:11 EDT);
* a lower bound inside the spring gap is pushed forward by the gap's length (02:30 becomes
  03:30 in New York).  The walk then goes on from the pushed time, so a wall time inside the gap
  never fires that day (no catch-up: ``0 30 2 * * ?`` skips 2026-03-08) and, where the gap is
  not a whole hour, matches just after it can be jumped over: in Australia/Lord_Howe
  (02:00 -> 02:30) ``0 15,35 * * * ?`` fires 01:35 then 03:15 (02:15 is pushed to 02:45, so
  02:35 is skipped), while ``0 15,35 2 * * ?`` fires 02:35 (its lower bound 02:00 is pushed to
  02:30 only).

The W rules add one more jump: once this month's ``nW`` day has passed, Quartz moves to day
``n`` of the next month, which a lenient calendar rolls into the month after when that month is
shorter.  So ``0 0 0 29W * ?`` fires 2031-01-29 and then 2031-03-28: the 28-day February 2031
(whose nearest weekday to "the 29th" would be Friday the 28th) is skipped, although a search that
*starts* in February 2031 fires on the 28th.

``next_after`` reproduces that walk (own code, same lower bounds), so results equal
``CronExpression.getNextValidTimeAfter`` on the golden vectors (tests/vectors) and on a live
sample.  Quartz stops searching after "the JVM's start year + 100" (``MAX_YEAR``); the bridge
fixes that horizon at 2126 (a JVM started in 2026), so only fire times after 2125 could differ.

Trigger bounds follow ``CronTriggerImpl.getFireTimeAfter``: the search starts at
``max(t, start - 1 s)``, so the first fire is the first cron time at or after ``start`` truncated
to the second (a start of 12:00:00.500 still fires at 12:00:00, as Quartz does); nothing is
returned for ``t >= end`` and no slot later than ``end``.

``prev_at_or_before(t)`` (Quartz has none) returns the slot Quartz's own chain of fire times
would have produced last at or before ``t``: the latest matching, existing wall time whose
instant is ``<= t``, unless the forward walk jumps over it (the Lord_Howe gap, the short month
after ``29W``), in which case the slot the chain really produced before it.  So it is *not*
simply "the latest ``s <= t`` with ``next_after(s - 1 s) == s``": in Lord_Howe 02:35 passes that
test for ``0 15,35 * * * ?`` (a search starting at 02:30 finds it) but Quartz, coming from 01:35,
never fires it, so ``prev_at_or_before(02:40)`` is 01:35.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bridge.core.errors import ScheduleError
from bridge.core.schedules.base import require_aware
from bridge.core.schedules.quartz_calendar import (
    ever_fires,
    lenient,
    month_days,
    nearest_weekday,
    normalize,
    offsets,
    repeat_start,
    wall_of,
    wall_to_instant,
)
from bridge.core.schedules.quartz_syntax import (
    DAYS,
    HORIZON_YEAR,
    MONTHS,
    YEAR_MAX,
    YEAR_MIN,
    DayRule,
    QuartzCron,
    parse,
    validate,
)
from bridge.core.spec import ScheduleSpec

__all__ = [
    "DAYS",
    "HORIZON_YEAR",
    "MONTHS",
    "YEAR_MAX",
    "YEAR_MIN",
    "DayRule",
    "QuartzCron",
    "QuartzEvaluator",
    "compile",
    "ever_fires",
    "month_days",
    "next_wall",
    "normalize",
    "parse",
    "prev_wall",
    "validate",
    "wall_of",
    "wall_to_instant",
]

_ONE_SECOND = timedelta(seconds=1)
_GAP_WINDOW = timedelta(hours=3)
_MAX_STEPS = 5000
_EXHAUSTED = datetime.max  # a "lower bound" past the horizon: the year field ran out

# ----------------------------------------------------------------------------------------------
# The forward walk
# ----------------------------------------------------------------------------------------------


def _ceil(values: tuple[int, ...], v: int) -> int | None:
    i = bisect_left(values, v)
    return values[i] if i < len(values) else None


def _floor(values: tuple[int, ...], v: int) -> int | None:
    i = bisect_right(values, v)
    return values[i - 1] if i else None


def _midnight(w: datetime) -> datetime:
    return w.replace(hour=0, minute=0, second=0)


def _at_hour(zone: ZoneInfo, day: datetime, hour: int, minute: int) -> datetime:
    """Set the hour (lenient, may be 24) like Quartz: if a gap moved it, ask for hour + 1."""
    w = normalize(zone, day + timedelta(hours=hour, minutes=minute))
    if w.hour != hour and hour != 24:
        day = _midnight(w)
        w = normalize(zone, day + timedelta(hours=hour + 1, minutes=w.minute, seconds=w.second))
    return w


def _time_step(cron: QuartzCron, zone: ZoneInfo, w: datetime) -> tuple[datetime, bool]:
    """Settle second, minute and hour of ``w``; (new lower bound, True) when it moved on."""
    s = _ceil(cron.seconds, w.second)
    if s is None:
        w = normalize(zone, w.replace(second=cron.seconds[0]) + timedelta(minutes=1))
    elif s != w.second:
        w = normalize(zone, w.replace(second=s))
    m = _ceil(cron.minutes, w.minute)
    if m is None:
        return _at_hour(zone, _midnight(w), w.hour + 1, cron.minutes[0]), True
    if m != w.minute:
        return _at_hour(zone, _midnight(w), w.hour, m), True
    h = _ceil(cron.hours, w.hour)
    if h is None:
        return _at_hour(zone, _midnight(w) + timedelta(days=1), cron.hours[0], 0), True
    if h != w.hour:
        return _at_hour(zone, _midnight(w), h, 0), True
    return w, False


def _weekday_bound(rule: DayRule, zone: ZoneInfo, w: datetime, after: datetime) -> datetime | None:
    """Quartz's W rules: the lower bound the search moves to, or None when today is the day.

    Once this month's weekday (at the current time of day) is before the search start, Quartz
    moves to day ``n`` of the next month for ``nW`` and to its 1st for ``LW``/``L-nW``; a
    lenient ``n`` past that month's end rolls into the month after, skipping it (``29W``
    from January 29 never fires in a 28-day February).
    """
    last = monthrange(w.year, w.month)[1]
    base = rule.value if rule.kind == "nearest" else last - rule.offset
    target = nearest_weekday(w.year, w.month, base)
    fire = wall_to_instant(zone, lenient(w.year, w.month, target, w.hour, w.minute, w.second))
    if fire < after:
        return lenient(w.year, w.month + 1, rule.value if rule.kind == "nearest" else 1)
    return lenient(w.year, w.month, target) if target != w.day else None


def _day_bound(cron: QuartzCron, zone: ZoneInfo, w: datetime, after: datetime) -> datetime | None:
    """The next lower bound (midnight of a later day), or None when the day of ``w`` fires."""
    if cron.day.kind in ("nearest", "last_weekday"):
        return _weekday_bound(cron.day, zone, w, after)
    d = _ceil(month_days(cron.day, w.year, w.month), w.day)
    if d is None:
        return lenient(w.year, w.month + 1)
    return datetime(w.year, w.month, d) if d != w.day else None


def _date_step(cron: QuartzCron, zone: ZoneInfo, w: datetime, after: datetime) -> datetime | None:
    """Settle day, month and year; the next lower bound, or None when ``w`` matches."""
    bound = _day_bound(cron, zone, w, after)
    if bound is not None:
        return normalize(zone, bound)
    mo = _ceil(cron.months, w.month)
    if mo is None:
        return normalize(zone, datetime(w.year + 1, cron.months[0], 1))
    if mo != w.month:
        return normalize(zone, datetime(w.year, mo, 1))
    y = _ceil(cron.years, w.year)
    if y is None:
        return _EXHAUSTED
    if y != w.year:
        return normalize(zone, datetime(y, 1, 1))
    return None


def next_wall(cron: QuartzCron, zone: ZoneInfo, after: datetime) -> datetime | None:
    """The wall time Quartz's search settles on for the first fire at or after ``after``."""
    w = wall_of(zone, after.replace(microsecond=0))
    for _ in range(_MAX_STEPS):
        if w.year > HORIZON_YEAR:
            return None
        w, moved = _time_step(cron, zone, w)
        if moved:
            continue
        bound = _date_step(cron, zone, w, after)
        if bound is None:
            return w
        w = bound
    raise ScheduleError(f"no fire time found for '{cron.text}' (search did not settle)")


# ----------------------------------------------------------------------------------------------
# The reverse search (naive wall clock, no DST) used by prev_at_or_before
# ----------------------------------------------------------------------------------------------


def _prev_date(cron: QuartzCron, w: datetime) -> tuple[datetime, bool]:
    """Settle year, month, day backwards; (new upper bound, True) when it moved back."""
    y = _floor(cron.years, w.year)
    if y is None or y < YEAR_MIN:
        return datetime.min, True
    if y != w.year:
        return datetime(y, 12, 31, 23, 59, 59), True
    mo = _floor(cron.months, w.month)
    if mo is None:
        return datetime(y - 1, 12, 31, 23, 59, 59), True
    if mo != w.month:
        return datetime(y, mo, monthrange(y, mo)[1], 23, 59, 59), True
    d = _floor(month_days(cron.day, y, mo), w.day)
    if d is None:
        return datetime(y, mo, 1) - _ONE_SECOND, True
    if d != w.day:
        return datetime(y, mo, d, 23, 59, 59), True
    return w, False


def _prev_time(cron: QuartzCron, w: datetime) -> tuple[datetime, bool]:
    day = _midnight(w)
    h = _floor(cron.hours, w.hour)
    if h is None:
        return day - _ONE_SECOND, True
    if h != w.hour:
        return day.replace(hour=h, minute=59, second=59), True
    m = _floor(cron.minutes, w.minute)
    if m is None:
        return w.replace(minute=0, second=0) - _ONE_SECOND, True
    if m != w.minute:
        return w.replace(minute=m, second=59), True
    s = _floor(cron.seconds, w.second)
    if s is None:
        return w.replace(second=0) - _ONE_SECOND, True
    return w.replace(second=s), False


def prev_wall(cron: QuartzCron, end: datetime) -> datetime | None:
    """The latest wall time <= ``end`` that matches every field (calendar only, no DST)."""
    w = end
    for _ in range(_MAX_STEPS):
        if w.year < YEAR_MIN:
            return None
        w, moved = _prev_date(cron, w)
        if moved:
            continue
        w, moved = _prev_time(cron, w)
        if not moved:
            return w
    raise ScheduleError(f"no earlier fire time found for '{cron.text}' (search did not settle)")


# ----------------------------------------------------------------------------------------------
# The evaluator
# ----------------------------------------------------------------------------------------------


def _floor_second(t: datetime) -> datetime:
    return require_aware(t).astimezone(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class QuartzEvaluator:
    """Fire times of one Quartz CronTrigger: expression, zone, optional start/end time."""

    cron: QuartzCron
    zone: ZoneInfo
    start: datetime | None = None
    end: datetime | None = None
    fires: bool = True  # False when no month ever has a matching day (Quartz returns null)

    def next_after(self, t: datetime) -> datetime | None:
        after = require_aware(t).astimezone(UTC)
        if not self.fires:
            return None
        if self.start is not None and self.start - _ONE_SECOND > after:
            after = self.start - _ONE_SECOND
        if self.end is not None and after >= self.end:
            return None
        wall = next_wall(self.cron, self.zone, after + _ONE_SECOND)
        if wall is None:
            return None
        slot = wall_to_instant(self.zone, wall)
        if self.end is not None and slot > self.end:
            return None
        return slot

    def prev_at_or_before(self, t: datetime) -> datetime | None:
        limit = _floor_second(t)
        if self.end is not None and limit > self.end:
            limit = _floor_second(self.end)
        slot = self._latest_match(limit)
        if slot is None:
            return None
        # Forward search can jump over matches: just after a spring gap (Lord_Howe), or a whole
        # short month after an nW day (29W skips a 28-day February). Replay it from before.
        gap = self._gap_before(slot)
        day = wall_of(self.zone, slot).replace(hour=0, minute=0, second=0)
        midnight = wall_to_instant(self.zone, day)
        for jump in (gap, midnight):
            before = self._latest_match(jump - _ONE_SECOND) if jump is not None else None
            if before is not None:
                after = self.next_after(before)
                if after is None or after > limit:
                    slot = before
                    break
        if self.start is not None and slot < _floor_second(self.start):
            return None
        return slot

    def _latest_match(self, limit: datetime) -> datetime | None:
        """The latest instant <= limit of a matching wall time that exists in the zone."""
        if not self.fires:
            return None
        w: datetime | None = wall_of(self.zone, limit)
        for _ in range(_MAX_STEPS):
            w = prev_wall(self.cron, w) if w is not None else None
            if w is None:
                return None
            a, b = offsets(self.zone, w)
            if b > a:  # inside a spring gap: gaps start on a whole minute
                w = w.replace(second=0) - _ONE_SECOND
                continue
            slot = wall_to_instant(self.zone, w)
            if slot <= limit:
                return slot
            # a repeated wall time resolves to its later copy, after limit: go below the repeat
            w = repeat_start(self.zone, w, a - b) - _ONE_SECOND if a > b else w - _ONE_SECOND
        return None

    def _gap_before(self, slot: datetime) -> datetime | None:
        """The instant of a spring-forward jump in the three hours before ``slot``, if any."""
        lo = slot - _GAP_WINDOW
        if lo.astimezone(self.zone).utcoffset() == slot.astimezone(self.zone).utcoffset():
            return None
        if wall_of(self.zone, slot) - wall_of(self.zone, lo) <= _GAP_WINDOW:
            return None  # the offset fell: an overlap, never jumped over
        hi = slot
        while hi - lo > _ONE_SECOND:
            mid = lo + (hi - lo) / 2
            mid = mid.replace(microsecond=0)
            if mid.astimezone(self.zone).utcoffset() == lo.astimezone(self.zone).utcoffset():
                lo = mid
            else:
                hi = mid
        return hi


def compile(spec: ScheduleSpec) -> QuartzEvaluator:
    """The evaluator for a ``quartz`` ScheduleSpec (expression, timezone, start, end)."""
    if spec.expression is None:
        raise ScheduleError("a quartz schedule needs an expression")
    cron = parse(spec.expression)
    start = spec.start.astimezone(UTC) if spec.start is not None else None
    end = spec.end.astimezone(UTC) if spec.end is not None else None
    fires = ever_fires(cron.day, cron.months)
    return QuartzEvaluator(cron, ZoneInfo(spec.timezone), start, end, fires)
