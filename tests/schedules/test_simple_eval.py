"""quartz-simple, calendar-interval and interval schedules.

Every expected fire time marked "Quartz" was produced by Debian's libquartz2-java 2.3.2
(``SimpleTriggerImpl`` / ``CalendarIntervalTriggerImpl.getFireTimeAfter`` chained from the
start, trigger time zone set, JVM in UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.errors import ScheduleError
from bridge.core.schedules import Evaluator, compile_schedule, take
from bridge.core.spec import Dialect, IntervalUnit, ScheduleSpec

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def simple(
    interval_ms: int,
    repeat_count: int | None = None,
    start: datetime = T0,
    end: datetime | None = None,
) -> Evaluator:
    return compile_schedule(ScheduleSpec(dialect=Dialect.QUARTZ_SIMPLE, start=start, end=end,
                                         interval_ms=interval_ms, repeat_count=repeat_count))


def calendar(tz: str, start: datetime, interval: int, unit: str,
             end: datetime | None = None) -> Evaluator:
    return compile_schedule(ScheduleSpec(dialect=Dialect.CALENDAR_INTERVAL, timezone=tz,
                                         start=start, end=end, interval=interval,
                                         interval_unit=IntervalUnit(unit)))


def fires(ev: Evaluator, start: datetime, n: int, tz: str) -> list[str]:
    zone = ZoneInfo(tz)
    return [s.astimezone(zone).isoformat() for s in take(ev, start - SECOND, n)]


# --- quartz-simple -------------------------------------------------------------------------------


def test_simple_trigger_fires_repeat_count_plus_one_times() -> None:
    ev = simple(60_000, repeat_count=2)
    assert take(ev, T0 - SECOND, 10) == [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]


def test_simple_trigger_without_repeat_count_repeats_forever() -> None:
    ev = simple(3_600_000, repeat_count=None)
    assert ev.next_after(T0 + timedelta(days=3650, seconds=5)) == T0 + timedelta(days=3650, hours=1)


def test_repeat_count_minus_one_means_forever() -> None:
    ev = simple(1000, repeat_count=-1)
    assert len(take(ev, T0, 50)) == 50


def test_zero_interval_with_zero_repeats_fires_once() -> None:
    ev = simple(0, repeat_count=0)
    assert take(ev, T0 - timedelta(days=1), 5) == [T0]
    assert ev.prev_at_or_before(T0 + timedelta(days=1)) == T0
    assert ev.prev_at_or_before(T0 - SECOND) is None


def test_zero_interval_that_repeats_is_refused() -> None:
    with pytest.raises(ScheduleError, match="repeat-interval > 0"):
        simple(0, repeat_count=3)


@pytest.mark.parametrize("interval_ms", [1, 500, 1500, 60_001])
def test_sub_second_interval_is_refused(interval_ms: int) -> None:
    with pytest.raises(ScheduleError, match="sub-second"):
        simple(interval_ms)


def test_simple_fire_must_be_strictly_before_end() -> None:
    # Quartz: a fire time equal to the end time does not happen
    ev = simple(60_000, end=T0 + timedelta(minutes=3))
    assert take(ev, T0 - SECOND, 10) == [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]
    assert ev.prev_at_or_before(T0 + timedelta(days=1)) == T0 + timedelta(minutes=2)


def test_simple_trigger_fires_at_start_even_when_end_equals_start() -> None:
    ev = simple(60_000, end=T0)
    assert take(ev, T0 - SECOND, 3) == [T0]
    assert ev.prev_at_or_before(T0 + timedelta(hours=1)) == T0


def test_simple_start_fraction_of_second_is_dropped() -> None:
    ev = simple(10_000, start=T0 + timedelta(milliseconds=400))
    assert take(ev, T0 - SECOND, 2) == [T0, T0 + timedelta(seconds=10)]


def test_simple_ignores_dst_entirely() -> None:
    start = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 EST on New York's spring day
    ev = simple(3_600_000)
    assert [s.hour for s in take(simple(3_600_000, start=start), start - SECOND, 4)] == [5, 6, 7, 8]
    assert ev.next_after(T0) == T0 + timedelta(hours=1)


# --- calendar-interval ---------------------------------------------------------------------------


def test_month_stepping_from_the_31st_sticks_to_the_28th() -> None:  # Quartz
    ny = ZoneInfo("America/New_York")
    ev = calendar("America/New_York", datetime(2026, 1, 31, 9, tzinfo=ny), 1, "month")
    assert fires(ev, datetime(2026, 1, 31, 9, tzinfo=ny), 5, "America/New_York") == [
        "2026-01-31T09:00:00-05:00",
        "2026-02-28T09:00:00-05:00",
        "2026-03-28T09:00:00-04:00",
        "2026-04-28T09:00:00-04:00",
        "2026-05-28T09:00:00-04:00",
    ]


def test_month_step_into_a_spring_gap_moves_later_and_stays_moved() -> None:  # Quartz
    ny = ZoneInfo("America/New_York")
    start = datetime(2026, 2, 8, 2, 30, tzinfo=ny)
    assert fires(calendar("America/New_York", start, 1, "month"), start, 4, "America/New_York") == [
        "2026-02-08T02:30:00-05:00",
        "2026-03-08T03:30:00-04:00",
        "2026-04-08T03:30:00-04:00",
        "2026-05-08T03:30:00-04:00",
    ]


def test_month_step_onto_a_repeated_wall_time_takes_standard_time() -> None:  # Quartz
    ny = ZoneInfo("America/New_York")
    start = datetime(2026, 10, 1, 1, 30, tzinfo=ny)
    assert fires(calendar("America/New_York", start, 1, "month"), start, 3, "America/New_York") == [
        "2026-10-01T01:30:00-04:00",
        "2026-11-01T01:30:00-05:00",
        "2026-12-01T01:30:00-05:00",
    ]


def test_year_stepping_from_february_29th() -> None:  # Quartz
    ny = ZoneInfo("America/New_York")
    start = datetime(2024, 2, 29, 12, tzinfo=ny)
    assert [s[:10] for s in fires(calendar("America/New_York", start, 1, "year"), start, 5,
                                  "America/New_York")] == [
        "2024-02-29", "2025-02-28", "2026-02-28", "2027-02-28", "2028-02-28",
    ]


def test_daily_keeps_the_wall_time_across_dst() -> None:  # Quartz
    ny = ZoneInfo("America/New_York")
    start = datetime(2026, 3, 7, 12, tzinfo=ny)
    assert fires(calendar("America/New_York", start, 1, "day"), start, 3, "America/New_York") == [
        "2026-03-07T12:00:00-05:00",
        "2026-03-08T12:00:00-04:00",
        "2026-03-09T12:00:00-04:00",
    ]


@pytest.mark.parametrize(
    ("tz", "start", "unit", "expected"),
    [
        ("America/New_York", (2026, 3, 6, 2, 30), "day",
         ["2026-03-06T02:30:00-05:00", "2026-03-07T02:30:00-05:00", "2026-03-08T01:30:00-05:00"]),
        ("Australia/Sydney", (2026, 9, 27, 2, 30), "week",
         ["2026-09-27T02:30:00+10:00", "2026-10-04T01:30:00+10:00"]),
        ("Australia/Lord_Howe", (2026, 10, 3, 2, 15), "day",
         ["2026-10-03T02:15:00+10:30", "2026-10-04T01:45:00+10:30"]),
    ],
)
def test_day_step_into_a_spring_gap_fires_one_gap_earlier(  # Quartz
    tz: str, start: tuple[int, ...], unit: str, expected: list[str]
) -> None:
    year, month, day, hour, minute = start
    begin = datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz))
    assert fires(calendar(tz, begin, 1, unit), begin, len(expected), tz) == expected


def test_day_after_the_gap_day_returns_to_the_start_wall_time() -> None:
    # Documented difference: a running Quartz keeps 01:30 for some days after the gap day (its
    # 80-95% leap from the start); the bridge shifts the gap day only.
    ny = ZoneInfo("America/New_York")
    start = datetime(2026, 3, 6, 2, 30, tzinfo=ny)
    got = fires(calendar("America/New_York", start, 1, "day"), start, 4, "America/New_York")
    assert got[3] == "2026-03-09T02:30:00-04:00"


def test_weekly_on_a_repeated_wall_time_takes_the_first_copy() -> None:  # Quartz
    ny = ZoneInfo("America/New_York")
    start = datetime(2026, 10, 25, 1, 30, tzinfo=ny)
    assert fires(calendar("America/New_York", start, 1, "week"), start, 3, "America/New_York") == [
        "2026-10-25T01:30:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-08T01:30:00-05:00",
    ]


def test_hour_unit_is_elapsed_time_across_the_gap() -> None:  # Quartz
    ny = ZoneInfo("America/New_York")
    start = datetime(2026, 3, 8, 0, tzinfo=ny)
    assert fires(calendar("America/New_York", start, 1, "hour"), start, 4, "America/New_York") == [
        "2026-03-08T00:00:00-05:00",
        "2026-03-08T01:00:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T04:00:00-04:00",
    ]


def test_calendar_interval_end_is_exclusive() -> None:  # Quartz
    ny = ZoneInfo("America/New_York")
    start = datetime(2026, 1, 1, 9, tzinfo=ny)
    ev = calendar("America/New_York", start, 1, "day", end=datetime(2026, 1, 4, 9, tzinfo=ny))
    assert [s[:10] for s in fires(ev, start, 5, "America/New_York")] == [
        "2026-01-01", "2026-01-02", "2026-01-03",
    ]
    assert ev.prev_at_or_before(datetime(2027, 1, 1, tzinfo=UTC)) == datetime(2026, 1, 3, 14,
                                                                             tzinfo=UTC)


def test_calendar_interval_next_after_far_from_start() -> None:  # Quartz
    ny = ZoneInfo("America/New_York")
    ev = calendar("America/New_York", datetime(2026, 1, 1, 9, tzinfo=ny), 1, "month")
    assert ev.next_after(datetime(2026, 5, 1, 13, tzinfo=UTC)) == datetime(2026, 6, 1, 13,
                                                                          tzinfo=UTC)


@settings(max_examples=120, deadline=None)
@given(
    st.sampled_from(["America/New_York", "Australia/Lord_Howe", "Europe/London", "UTC"]),
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 1, 1)),
    st.sampled_from(["minute", "hour", "day", "week", "month", "year"]),
    st.integers(1, 5),
    st.integers(0, 3 * 365 * 24),
)
def test_calendar_interval_prev_and_next_agree(
    tz: str, start: datetime, unit: str, interval: int, hours_later: int
) -> None:
    begin = start.replace(second=0, microsecond=0, tzinfo=ZoneInfo(tz))
    ev = calendar(tz, begin, interval, unit)
    t = begin.astimezone(UTC) + timedelta(hours=hours_later, seconds=17)
    nxt = ev.next_after(t)
    assert nxt is not None and nxt > t
    assert ev.prev_at_or_before(nxt) == nxt
    prv = ev.prev_at_or_before(t)
    assert prv is not None and prv <= t and ev.next_after(prv) == nxt


# --- interval ----------------------------------------------------------------------------------


def test_interval_without_start_counts_from_the_epoch() -> None:
    ev = compile_schedule(ScheduleSpec(dialect=Dialect.INTERVAL, interval_ms=7 * 60_000))
    after = datetime(2026, 1, 1, tzinfo=UTC)
    slot = ev.next_after(after)
    assert slot is not None
    assert (slot - datetime(1970, 1, 1, tzinfo=UTC)) % timedelta(minutes=7) == timedelta(0)
    assert timedelta(0) < slot - after <= timedelta(minutes=7)
    assert ev.prev_at_or_before(slot) == slot


def test_interval_with_start_and_inclusive_end() -> None:
    ev = compile_schedule(ScheduleSpec(dialect=Dialect.INTERVAL, interval_ms=30_000, start=T0,
                                       end=T0 + timedelta(minutes=1)))
    assert take(ev, T0 - timedelta(days=1), 5) == [T0, T0 + timedelta(seconds=30),
                                                   T0 + timedelta(minutes=1)]
    assert ev.prev_at_or_before(T0 - SECOND) is None


@pytest.mark.parametrize("interval_ms", [0, 250])
def test_interval_needs_whole_positive_seconds(interval_ms: int) -> None:
    with pytest.raises(ScheduleError):
        compile_schedule(ScheduleSpec(dialect=Dialect.INTERVAL, interval_ms=interval_ms))


def test_daily_calendar_interval_inside_a_spring_gap_hour_is_refused_with_a_reason() -> None:
    from bridge.core.schedules.simple import unsupported_reason

    start = datetime(2026, 1, 5, 2, 30, tzinfo=ZoneInfo("America/New_York"))
    spec = ScheduleSpec(dialect="calendar-interval", timezone="America/New_York", start=start,
                        interval=1, interval_unit="day")
    reason = unsupported_reason(spec)
    assert reason is not None and "skipped on 2026-03-08" in reason


def test_calendar_interval_outside_gaps_or_by_month_is_reproducible() -> None:
    from bridge.core.schedules.simple import unsupported_reason

    tz = ZoneInfo("America/New_York")
    ok_daily = ScheduleSpec(dialect="calendar-interval", timezone="America/New_York",
                            start=datetime(2026, 1, 5, 6, 0, tzinfo=tz), interval=1,
                            interval_unit="day")
    monthly = ScheduleSpec(dialect="calendar-interval", timezone="America/New_York",
                           start=datetime(2026, 1, 8, 2, 30, tzinfo=tz), interval=1,
                           interval_unit="month")
    assert unsupported_reason(ok_daily) is None
    assert unsupported_reason(monthly) is None
