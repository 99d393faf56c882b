"""Debian cron 3.0pl1 fire times for the ``vixie`` and ``cronie`` dialects (pure: no clock, no I/O).

What a slot is
    A job fires at whole minutes of the local wall clock of ``spec.timezone`` whose minute, hour,
    month and day match the five fields (parsed by :mod:`bridge.core.schedules.cronfields`). Days
    follow
    Debian's star rule: if the day-of-month or the day-of-week text starts with ``*`` a day must
    match both fields, otherwise either. Ranges whose start is past their end (``fri-mon``) match
    nothing, as in Debian, so a line may still fire through the other day field or never fire.

Clock changes (cron(8) and ``cron.c``'s four wake-up cases, read in Debian's source)
    The zone's history is cut into *segments* of constant UTC offset. Inside a segment a wall time
    maps to exactly one instant. At a boundary where the offset changes:

    * forward by less than 3 hours (spring): a *fixed-time* job (minute and hour text not starting
      with ``*``) whose wall time falls in the skipped interval runs once, right after the jump,
      i.e. at the transition instant (02:30 on a New York spring day -> 03:00 EDT). *Wildcard*
      jobs follow the wall clock: skipped minutes do not run. (A jump of 4 minutes or less is
      Debian's "woke up late" case where every job of the skipped minutes runs; a jump of 3 hours
      or more is a clock reset where no skipped job runs.)
    * backward by up to 3 hours (autumn): wildcard jobs run in both copies of the repeated wall
      times (an hourly job fires at 01:00 EDT and at 01:00 EST); fixed-time jobs do not run again
      in the second copy. A larger backward jump is a clock reset: everything runs again.

    Two wall times that land on one instant (``0,30 2 * * *`` on a spring day: both run at 03:00)
    are one slot: a slot is an instant, so the bridge fires once where Debian forks twice.
    Debian only re-reads its UTC offset when ``tm_isdst`` flips, so a change of *standard* offset
    (a zone moving permanently) is seen only after cron restarts; the bridge applies it at once.

cronsim (the test oracle) agrees with this model on every vector, with two exceptions where
Debian, not cronsim, is followed: cronsim refuses lines Debian accepts (``0 0 31 2 *``,
``fri-mon``), and after a 30-minute clock change (Lord Howe) cronsim's hour stepping lands on :30
and skips wall times such as 02:00 LHST that Debian's minute-by-minute wall-clock match runs.

Searching
    Each query walks segments from the one holding the query instant and asks a naive wall-clock
    calendar for the first (last) matching wall time in the segment's wall range, remembering the
    last answer so sparse schedules cost one calendar search, not one per segment. A schedule
    that can never match (``0 0 31 2 *``) is decided analytically at compile time; one that only
    matches inside skipped hours is given up after a bounded search of 400 years (the Gregorian
    calendar repeats every 400 years and zone rules are periodic after 2037).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from bridge.core.errors import ScheduleError
from bridge.core.schedules.base import require_aware
from bridge.core.schedules.cronfields import CronFields, parse_fields
from bridge.core.schedules.zone_segments import (
    DAY,
    MAX_YEAR,
    MIN_YEAR,
    SECOND,
    Segment,
    segments_backward,
    segments_forward,
)
from bridge.core.spec import CRON_DIALECTS, ScheduleSpec

__all__ = ["CronEvaluator", "WallCalendar", "compile", "never_fires"]

MINUTE = timedelta(minutes=1)
CATCH_UP_BELOW = timedelta(hours=3)  # forward jumps shorter than this: fixed-time jobs catch up
WOKE_UP_LATE = timedelta(minutes=4)  # forward jumps up to this: every skipped job runs (case 1)
NO_REPEAT_UP_TO = timedelta(hours=3)  # backward jumps up to this: fixed-time jobs don't repeat
SEARCH_YEARS = 400
PERIODIC_RULES_FROM = 2038  # zoneinfo rules repeat yearly after the last explicit transition
MAX_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


# --- the naive wall-clock calendar -------------------------------------------------------------


@dataclass(frozen=True)
class WallCalendar:
    """Which naive local wall times match: sorted minutes/hours, month/day sets, the day rule."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: frozenset[int]
    doms: frozenset[int]
    dows: frozenset[int]  # cron numbering: Sunday = 0
    days_and: bool

    @classmethod
    def from_fields(cls, f: CronFields) -> WallCalendar:
        return cls(
            minutes=tuple(sorted(f.minute)),
            hours=tuple(sorted(f.hour)),
            months=f.month,
            doms=f.dom,
            dows=f.dow,
            days_and=f.dom_star or f.dow_star,
        )

    def can_fire(self) -> bool:
        """Whether any wall time ever matches (the calendar repeats every 400 years)."""
        if not (self.minutes and self.hours and self.months):
            return False
        valid_doms = {d for d in self.doms if any(d <= MAX_DAYS[m] for m in self.months)}
        if self.days_and:
            return bool(valid_doms) and bool(self.dows)
        return bool(valid_doms) or bool(self.dows)

    def day_matches(self, d: date) -> bool:
        if d.month not in self.months:
            return False
        dom_ok = d.day in self.doms
        dow_ok = d.toordinal() % 7 in self.dows  # ordinal 7 is a Sunday
        return (dom_ok and dow_ok) if self.days_and else (dom_ok or dow_ok)

    def next_wall(self, w: datetime) -> datetime | None:
        """The first matching wall time at or after ``w`` (naive), or None within 400 years."""
        if w.second or w.microsecond:
            w = w.replace(second=0, microsecond=0) + MINUTE
        d = w.date()
        if self.day_matches(d):
            hm = self._time_at_or_after(w.hour, w.minute)
            if hm is not None:
                return datetime(d.year, d.month, d.day, hm[0], hm[1])
        nd = self._next_day(d + DAY, d.year + SEARCH_YEARS)
        if nd is None:
            return None
        return datetime(nd.year, nd.month, nd.day, self.hours[0], self.minutes[0])

    def prev_wall(self, w: datetime) -> datetime | None:
        """The last matching wall time at or before ``w`` (naive), or None within 400 years."""
        d = w.date()
        if self.day_matches(d):
            hm = self._time_at_or_before(w.hour, w.minute)
            if hm is not None:
                return datetime(d.year, d.month, d.day, hm[0], hm[1])
        pd = self._prev_day(d - DAY, d.year - SEARCH_YEARS)
        if pd is None:
            return None
        return datetime(pd.year, pd.month, pd.day, self.hours[-1], self.minutes[-1])

    def _time_at_or_after(self, hour: int, minute: int) -> tuple[int, int] | None:
        hours, minutes = self.hours, self.minutes
        i = bisect.bisect_left(hours, hour)
        if i < len(hours) and hours[i] == hour:
            j = bisect.bisect_left(minutes, minute)
            if j < len(minutes):
                return hour, minutes[j]
            i += 1
        return (hours[i], minutes[0]) if i < len(hours) else None

    def _time_at_or_before(self, hour: int, minute: int) -> tuple[int, int] | None:
        hours, minutes = self.hours, self.minutes
        i = bisect.bisect_right(hours, hour) - 1
        if i >= 0 and hours[i] == hour:
            j = bisect.bisect_right(minutes, minute) - 1
            if j >= 0:
                return hour, minutes[j]
            i -= 1
        return (hours[i], minutes[-1]) if i >= 0 else None

    def _next_day(self, d: date, last_year: int) -> date | None:
        last_year = min(last_year, MAX_YEAR)
        while d.year <= last_year:
            if d.month not in self.months:
                d = _first_of_next_month(d)
                continue
            if self.day_matches(d):
                return d
            d += DAY
        return None

    def _prev_day(self, d: date, first_year: int) -> date | None:
        first_year = max(first_year, MIN_YEAR)
        while d.year >= first_year:
            if d.month not in self.months:
                d = d.replace(day=1) - DAY
                continue
            if self.day_matches(d):
                return d
            d -= DAY
        return None


def _first_of_next_month(d: date) -> date:
    return date(d.year + 1, 1, 1) if d.month == 12 else date(d.year, d.month + 1, 1)


class _Memo:
    """Remembers one calendar answer: nothing matches strictly between ``probe`` and ``answer``."""

    __slots__ = ("answer", "calendar", "probe")

    def __init__(self, calendar: WallCalendar) -> None:
        self.calendar = calendar
        self.probe: datetime | None = None
        self.answer: datetime | None = None

    def next_wall(self, w: datetime) -> datetime | None:
        p, a = self.probe, self.answer
        if p is not None and p <= w and (a is None or w <= a):
            return a
        self.probe, self.answer = w, self.calendar.next_wall(w)
        return self.answer

    def prev_wall(self, w: datetime) -> datetime | None:
        p, a = self.probe, self.answer
        if p is not None and w <= p and (a is None or a <= w):
            return a
        self.probe, self.answer = w, self.calendar.prev_wall(w)
        return self.answer


# --- Debian's treatment of one offset change ------------------------------------------------------


def _catches_up(fixed_time: bool, jump: timedelta) -> bool:
    """Forward jump: do matching wall times in the skipped interval run at the transition?"""
    if jump <= timedelta(0):
        return False
    return jump <= WOKE_UP_LATE or (fixed_time and jump < CATCH_UP_BELOW)


def _lowest_wall(seg: Segment, fixed_time: bool) -> datetime:
    """The first wall time this segment serves: after a fall-back, fixed-time jobs skip the
    repeated walls (already served by the previous segment)."""
    back = seg.prev_offset - seg.offset
    if fixed_time and timedelta(0) < back <= NO_REPEAT_UP_TO:
        return seg.start + seg.prev_offset
    return seg.start + seg.offset


# --- the evaluator -----------------------------------------------------------------------------


def _naive_utc(t: datetime) -> datetime:
    return require_aware(t).astimezone(UTC).replace(tzinfo=None)


def _floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def _ceil_minute(t: datetime) -> datetime:
    floor = _floor_minute(t)
    return floor if floor == t else floor + MINUTE


@dataclass(frozen=True)
class CronEvaluator:
    """Debian cron fire times of one five-field expression in one zone, within start/end."""

    calendar: WallCalendar
    zone_key: str
    fixed_time: bool
    start: datetime | None = None  # naive UTC, whole minute: no slot before
    end: datetime | None = None  # naive UTC, whole minute: no slot after
    fires: bool = True  # False: the calendar can never match

    def next_after(self, t: datetime) -> datetime | None:
        lower = _floor_minute(_naive_utc(t)) + MINUTE
        if self.start is not None and lower < self.start:
            lower = self.start
        if not self.fires or (self.end is not None and lower > self.end):
            return None
        slot = self._first_slot_from(lower)
        if slot is None or (self.end is not None and slot > self.end):
            return None
        return slot.replace(tzinfo=UTC)

    def prev_at_or_before(self, t: datetime) -> datetime | None:
        upper = _floor_minute(_naive_utc(t))
        if self.end is not None and upper > self.end:
            upper = self.end
        if not self.fires or (self.start is not None and upper < self.start):
            return None
        slot = self._last_slot_until(upper)
        if slot is None or (self.start is not None and slot < self.start):
            return None
        return slot.replace(tzinfo=UTC)

    def _first_slot_from(self, lower: datetime) -> datetime | None:
        if not MIN_YEAR <= lower.year <= MAX_YEAR:
            return None
        memo = _Memo(self.calendar)
        horizon = max(lower.year, PERIODIC_RULES_FROM) + SEARCH_YEARS
        for seg in segments_forward(self.zone_key, lower):
            if seg.start.year > horizon:
                return None
            o, p = seg.offset, seg.prev_offset
            if lower <= seg.start and _catches_up(self.fixed_time, o - p):
                w = memo.next_wall(seg.start + p)
                if w is None:
                    return None
                if w < seg.start + o:
                    return seg.start
            w = memo.next_wall(max(lower + o, _lowest_wall(seg, self.fixed_time)))
            if w is None:
                return None
            if w < seg.end + o:
                return w - o
        return None

    def _last_slot_until(self, upper: datetime) -> datetime | None:
        if not MIN_YEAR <= upper.year <= MAX_YEAR:
            return None
        memo = _Memo(self.calendar)
        horizon = min(upper.year, PERIODIC_RULES_FROM) - SEARCH_YEARS
        for seg in segments_backward(self.zone_key, upper):
            if seg.end.year < horizon:
                return None
            o, p = seg.offset, seg.prev_offset
            w = memo.prev_wall(min(upper, seg.end - SECOND) + o)
            if w is None:
                return None
            if w >= _lowest_wall(seg, self.fixed_time):
                return w - o
            if seg.start <= upper and _catches_up(self.fixed_time, o - p):
                w = memo.prev_wall(seg.start + o - SECOND)
                if w is None:
                    return None
                if w >= seg.start + p:
                    return seg.start
        return None


def _bound(t: datetime | None, rounding: str) -> datetime | None:
    if t is None:
        return None
    u = _naive_utc(t)
    return _ceil_minute(u) if rounding == "ceil" else _floor_minute(u)


def compile(spec: ScheduleSpec) -> CronEvaluator:
    """Validate a vixie/cronie schedule and return its evaluator (ScheduleError if invalid)."""
    if spec.dialect not in CRON_DIALECTS:
        raise ScheduleError(f"cron evaluator got a {spec.dialect} schedule")
    if spec.expression is None:
        raise ScheduleError(f"a {spec.dialect} schedule needs an expression")
    fields = parse_fields(spec.expression)
    calendar = WallCalendar.from_fields(fields)
    return CronEvaluator(
        calendar=calendar,
        zone_key=spec.timezone,
        fixed_time=fields.fixed_time,
        start=_bound(spec.start, "ceil"),
        end=_bound(spec.end, "floor"),
        fires=calendar.can_fire(),
    )


@lru_cache(maxsize=4096)
def never_fires(spec: ScheduleSpec) -> bool:
    """True when the line is valid for cron but can never run.

    Either its calendar never matches (``0 0 31 2 *``, ``0 0 * * fri-mon``: decided exactly), or
    it has no slot within its start/end bounds, or every match falls in skipped DST hours. Without
    a start the DST question is asked of the zone's perpetual rules (from 2038 on), so the answer
    does not depend on today's date.
    """
    ev = compile(spec)
    if not ev.fires:
        return True
    if spec.start is not None:
        return ev.next_after(spec.start - SECOND) is None
    if spec.end is not None:
        return ev.prev_at_or_before(spec.end) is None
    return ev.next_after(datetime(PERIODIC_RULES_FROM, 1, 1, tzinfo=UTC)) is None
