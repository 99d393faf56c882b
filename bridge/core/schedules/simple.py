"""Quartz SimpleTrigger / CalendarIntervalTrigger fire times and plain intervals (pure).

``quartz-simple`` (Quartz 2.3.2 ``SimpleTriggerImpl.getFireTimeAfter``)
    Fires at ``start + k * interval_ms`` for ``k = 0 .. repeat_count`` (``repeat_count`` None =
    forever; ``0`` = once, the only case where ``interval_ms`` may be 0). A fire time must be
    strictly before ``end``, except the first one: Quartz fires at ``start`` even when
    ``end == start``.

``calendar-interval`` (Quartz 2.3.2 ``CalendarIntervalTriggerImpl.getFireTimeAfter``, read in its
source and checked against Debian's ``libquartz2-java`` 2.3.2)
    * second / minute / hour units: elapsed time, ``start + k * interval`` (DST does not matter).
    * month / year units: Quartz steps a ``java.util.Calendar`` from ``start`` one interval at a
      time, every call. ``Calendar.add(MONTH)`` pins the day to the new month's length and the
      pin sticks: from January 31st a monthly trigger fires on Feb 28th, Mar 28th, Apr 28th ...
      The wall time is then resolved the ``GregorianCalendar`` way, "assume standard time": a
      wall time in a spring gap moves forward by the gap (02:30 -> 03:30 EDT) and, since the
      calendar's fields are normalised, every later fire keeps the moved time; a repeated wall
      time takes its second (standard-time) instant. The bridge replays exactly that walk.
    * day / week units: ``start``'s wall time on every ``interval``-th day (week), each fire
      resolved as ``Calendar.add(DAY_OF_YEAR)`` resolves it from the previous fire: a repeated
      wall time takes the copy with the previous fire's offset (the first, daylight, copy when
      coming from summer) and a wall time inside a spring gap fires one gap *earlier* (02:30 ->
      01:30 EST; one gap later when earlier would fall on the previous date, as with Santiago's
      midnight gap). Known difference: a running Quartz trigger computes each next fire by leaping
      80-95% of the way from ``start`` and stepping the rest, so after such a gap day it keeps
      the earlier wall time for a while (days to months, growing with the trigger's age) and
      fires twice on the day it recovers. The bridge shifts the gap day only. This concerns
      day/week triggers whose start wall time lies in an hour that some day skips.
    * Quartz stops stepping at "the current year + 100" (a clock-dependent give-up); the bridge
      has no such horizon.

``interval`` (bridge-native)
    Every ``interval_ms`` from ``start`` (or from the Unix epoch when there is no start), with
    slots at or after ``start`` and at or before ``end`` (the bounds of the cron dialects).

Checked against Quartz 2.3.2 on 3,000 random simple triggers (identical) and 1,500 random
calendar-interval triggers (identical but for the two differences above).

Slots are whole seconds: an ``interval_ms`` that is not a multiple of 1000 is refused (the bridge
cannot reproduce sub-second intervals) and a start's fraction of a second is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from bridge.core.errors import ScheduleError
from bridge.core.schedules.base import require_aware
from bridge.core.schedules.zone_segments import gap_days
from bridge.core.spec import Dialect, IntervalUnit, ScheduleSpec

__all__ = ["CalendarStepEvaluator", "ElapsedEvaluator", "compile"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ELAPSED_UNITS = {
    IntervalUnit.SECOND: 1,
    IntervalUnit.MINUTE: 60,
    IntervalUnit.HOUR: 3600,
}
DAY_UNITS = {IntervalUnit.DAY: 1, IntervalUnit.WEEK: 7}
MAX_WALK = 200_000  # month/year steps a single query may take (16,000 years of months)


def _utc(t: datetime) -> datetime:
    return require_aware(t).astimezone(UTC)


def _seconds(t: datetime) -> int:
    """Whole seconds since the epoch, rounded down (Quartz compares milliseconds)."""
    return (_utc(t) - EPOCH) // timedelta(seconds=1)


def _at(seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


# --- fixed steps: quartz-simple, interval, calendar-interval in seconds/minutes/hours ------------


@dataclass(frozen=True)
class ElapsedEvaluator:
    """Slots ``anchor + k * step`` seconds for ``first <= k <= last``, bounded by ``end``.

    ``end_exclusive`` is Quartz's rule (a fire time must be before the end time); the bridge's
    own ``interval`` dialect keeps the cron rule (at or before the end).
    """

    anchor: int  # epoch seconds
    step: int  # seconds, > 0 unless last == first == 0
    first: int | None = 0  # None: unbounded below (interval without a start)
    last: int | None = None  # None: forever
    end: int | None = None  # epoch seconds, rounded down
    end_exclusive: bool = True

    def next_after(self, t: datetime) -> datetime | None:
        k = self._index_at_or_before(_seconds(t)) + 1
        if self.first is not None:
            k = max(k, self.first)
        if self.last is not None and k > self.last:
            return None
        return None if self._ended(k) else _at(self._time(k))

    def prev_at_or_before(self, t: datetime) -> datetime | None:
        s = _seconds(t)
        k = self._index_at_or_before(s)
        if self.end is not None:
            last_allowed = self.end - 1 if self.end_exclusive else self.end
            k = min(k, self._index_at_or_before(last_allowed))
            if self.first == 0 and s >= self.anchor:
                k = max(k, 0)  # Quartz fires at start even when end == start
        if self.last is not None:
            k = min(k, self.last)
        if self.first is not None and k < self.first:
            return None
        return _at(self._time(k))

    def _index_at_or_before(self, s: int) -> int:
        if self.step == 0:
            return 0 if s >= self.anchor else -1
        return (s - self.anchor) // self.step

    def _time(self, k: int) -> int:
        return self.anchor + k * self.step

    def _ended(self, k: int) -> bool:
        if self.end is None or (self.first == 0 and k == 0):
            return False  # Quartz fires at start even when end == start
        at = self._time(k)
        return at > self.end or (self.end_exclusive and at == self.end)


# --- calendar steps: calendar-interval in days, weeks, months, years ---------------------------


def _java_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """``GregorianCalendar``'s wall -> instant: "assume standard time" (the later instant)."""
    a = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    b = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return max(a, b)


def _offset(u: datetime, zone: ZoneInfo) -> timedelta:
    off = u.astimezone(zone).utcoffset()
    assert off is not None
    return off


def _add_days_resolve(wall: datetime, prev_offset: timedelta, zone: ZoneInfo) -> datetime:
    """``Calendar.add(DAY_OF_YEAR)``: the wall time with the previous offset, then corrected by
    the change of offset unless the correction changes the date."""
    t1 = (wall - prev_offset).replace(tzinfo=UTC)
    new_offset = _offset(t1, zone)
    if new_offset == prev_offset:
        return t1
    t2 = t1 + (prev_offset - new_offset)
    return t2 if t2.astimezone(zone).date() == wall.date() else t1


def _days_in_month(year: int, month: int) -> int:
    nxt = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return (nxt - date(year, month, 1)).days


@dataclass(frozen=True)
class CalendarStepEvaluator:
    """Quartz CalendarIntervalTrigger with a day, week, month or year unit (see module doc)."""

    start: datetime  # UTC, whole seconds
    zone_key: str
    interval: int
    unit: IntervalUnit
    end: datetime | None = None  # UTC; a fire after the first must be before it

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.zone_key)

    def next_after(self, t: datetime) -> datetime | None:
        t = _utc(t)
        if t < self.start:
            return self.start
        slot = None
        for s in self._slots_around(t):
            if s > t:
                slot = s
                break
        if slot is None or (self.end is not None and slot >= self.end):
            return None
        return slot

    def prev_at_or_before(self, t: datetime) -> datetime | None:
        t = _utc(t)
        if self.end is not None and t >= self.end:
            t = self.end - timedelta(microseconds=1)
        if t < self.start:
            return None
        best = self.start
        for s in self._slots_around(t):
            if s > t:
                break
            best = s
        return best

    def _slots_around(self, t: datetime) -> list[datetime]:
        """Consecutive slots (after ``start``) from a little before ``t`` to just after it."""
        if self.unit in DAY_UNITS:
            return self._day_slots_around(t)
        return self._walk_until(t)

    # day / week: the wall time of start on every interval-th day, resolved from the previous fire

    def _day_slots_around(self, t: datetime) -> list[datetime]:
        days = self.interval * DAY_UNITS[self.unit]
        k = max(1, (t - self.start) // timedelta(days=days) - 1)
        return [self._day_slot(i, days) for i in range(k, k + 4)]

    def _day_slot(self, k: int, days: int, depth: int = 0) -> datetime:
        if k == 0:
            return self.start
        zone = self.zone
        wall = self.start.astimezone(zone).replace(tzinfo=None) + timedelta(days=k * days)
        prev_wall = wall - timedelta(days=days)
        before = prev_wall.replace(tzinfo=zone, fold=0).utcoffset()
        after = prev_wall.replace(tzinfo=zone, fold=1).utcoffset()
        if k == 1:
            prev_offset = _offset(self.start, zone)
        elif before == after or depth >= 2:  # a plain wall time: one offset
            assert before is not None
            prev_offset = before
        else:  # the previous fire was itself on a clock-change day: resolve it
            prev_offset = _offset(self._day_slot(k - 1, days, depth + 1), zone)
        return _add_days_resolve(wall, prev_offset, zone).replace(microsecond=0)

    # month / year: Quartz's walk from start, the pinned day and moved wall time included

    def _walk_until(self, t: datetime) -> list[datetime]:
        """The walk's last fires up to the first one after ``t``. Days are pinned with plain
        arithmetic; the zone is consulted only on days with a spring gap and for the result."""
        zone = self.zone
        local = self.start.astimezone(zone)
        months = self.interval * (12 if self.unit is IntervalUnit.YEAR else 1)
        stop = t.astimezone(zone).replace(tzinfo=None) + timedelta(days=2)
        year, month, day = local.year, local.month, local.day
        tod = (local.hour, local.minute, local.second)
        walls: list[datetime] = []
        for _ in range(MAX_WALK):
            year, month = divmod(year * 12 + month - 1 + months, 12)
            month += 1
            if year > 9998:
                break
            day = min(day, _days_in_month(year, month))
            if (month, day) in gap_days(self.zone_key, year):
                moved = _java_instant(datetime(year, month, day, *tod), zone).astimezone(zone)
                year, month, day = moved.year, moved.month, moved.day
                tod = (moved.hour, moved.minute, moved.second)
            walls.append(datetime(year, month, day, *tod))
            if walls[-1] > stop:
                break
        instants = [self.start] + [_java_instant(w, zone) for w in walls[-4:]]
        return [i for i in instants if i >= self.start][-4:]


# --- compile -----------------------------------------------------------------------------------


def _whole_seconds(interval_ms: int) -> int:
    if interval_ms % 1000:
        raise ScheduleError(
            f"interval of {interval_ms} ms is not a whole number of seconds: the bridge's slots"
            " are whole seconds and it cannot reproduce sub-second intervals"
        )
    return interval_ms // 1000


def _start(spec: ScheduleSpec) -> datetime:
    if spec.start is None:
        raise ScheduleError(f"a {spec.dialect} schedule needs a start time")
    return _utc(spec.start).replace(microsecond=0)


def _quartz_simple(spec: ScheduleSpec) -> ElapsedEvaluator:
    assert spec.interval_ms is not None
    step = _whole_seconds(spec.interval_ms)
    if step == 0 and spec.repeat_count != 0:
        raise ScheduleError("a repeating quartz-simple trigger needs repeat-interval > 0")
    end = None if spec.end is None else _seconds(spec.end) + (1 if spec.end.microsecond else 0)
    return ElapsedEvaluator(
        anchor=_seconds(_start(spec)),
        step=step,
        first=0,
        last=spec.repeat_count,
        end=end,
        end_exclusive=True,
    )


def _interval(spec: ScheduleSpec) -> ElapsedEvaluator:
    assert spec.interval_ms is not None
    step = _whole_seconds(spec.interval_ms)
    if step == 0:
        raise ScheduleError("an interval schedule needs interval_ms > 0")
    anchor = EPOCH if spec.start is None else _start(spec)
    return ElapsedEvaluator(
        anchor=_seconds(anchor),
        step=step,
        first=None if spec.start is None else 0,
        last=None,
        end=None if spec.end is None else _seconds(spec.end),
        end_exclusive=False,
    )


def _calendar_interval(spec: ScheduleSpec) -> ElapsedEvaluator | CalendarStepEvaluator:
    assert spec.interval is not None and spec.interval_unit is not None
    start = _start(spec)
    unit = IntervalUnit(spec.interval_unit)
    if unit in ELAPSED_UNITS:
        end = None if spec.end is None else _seconds(spec.end) + (1 if spec.end.microsecond else 0)
        return ElapsedEvaluator(
            anchor=_seconds(start),
            step=spec.interval * ELAPSED_UNITS[unit],
            end=end,
            end_exclusive=True,
        )
    return CalendarStepEvaluator(
        start=start,
        zone_key=spec.timezone,
        interval=spec.interval,
        unit=unit,
        end=None if spec.end is None else _utc(spec.end),
    )


GAP_HORIZON_YEARS = 50


def unsupported_reason(spec: ScheduleSpec) -> str | None:
    """Why the bridge cannot reproduce a schedule it can evaluate, or None.

    A day/week calendar-interval trigger whose wall time falls in an hour that a spring-forward
    day skips: after that day a *running* Quartz trigger drifts by the gap for days to months
    and fires twice when it recovers (see the module docstring). The importer refuses such a
    trigger (UNSUPPORTED) rather than promising fire times it would not keep.
    """
    if spec.dialect is not Dialect.CALENDAR_INTERVAL or spec.interval_unit not in (
        IntervalUnit.DAY,
        IntervalUnit.WEEK,
    ):
        return None
    assert spec.interval is not None
    zone = ZoneInfo(spec.timezone)
    first = _start(spec).astimezone(zone)
    step = spec.interval * (7 if spec.interval_unit is IntervalUnit.WEEK else 1)
    last_year = first.year + GAP_HORIZON_YEARS
    if spec.end is not None:
        last_year = min(last_year, spec.end.astimezone(zone).year)
    for year in range(first.year, last_year + 1):
        for month, day in sorted(gap_days(spec.timezone, year)):
            wall = first.replace(year=year, month=month, day=day, fold=0)
            on_cadence = (wall.date() - first.date()).days % step == 0
            if wall > first and on_cadence and _skipped(wall, zone):
                return (
                    f"every {spec.interval} {spec.interval_unit.value}(s) at {first:%H:%M:%S} "
                    f"{spec.timezone}: that wall time is skipped on {wall:%Y-%m-%d}, after which "
                    "a running Quartz trigger drifts by the gap for days to months and fires "
                    "twice when it recovers; the bridge cannot reproduce that"
                )
    return None


def _skipped(wall: datetime, zone: ZoneInfo) -> bool:
    naive = wall.replace(tzinfo=None)
    return wall.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive


def compile(spec: ScheduleSpec) -> ElapsedEvaluator | CalendarStepEvaluator:
    """Validate a quartz-simple / calendar-interval / interval schedule; return its evaluator."""
    if spec.dialect is Dialect.QUARTZ_SIMPLE:
        return _quartz_simple(spec)
    if spec.dialect is Dialect.CALENDAR_INTERVAL:
        return _calendar_interval(spec)
    if spec.dialect is Dialect.INTERVAL:
        return _interval(spec)
    raise ScheduleError(f"simple evaluator got a {spec.dialect} schedule")
