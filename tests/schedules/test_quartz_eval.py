"""Behaviour of the quartz dialect, one Quartz 2.3.2 rule per test (expected values from Quartz).

Times are written in the schedule's own zone: ``"2026-11-01 01:00:00-05:00"`` is 01:00 EST.
"""

from __future__ import annotations

import itertools
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.core.errors import ScheduleError
from bridge.core.schedules import Evaluator, compile_schedule
from bridge.core.schedules.quartz import validate
from bridge.core.spec import Dialect, ScheduleSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "oracle"))

import gen_quartz_vectors as gen

NY = "America/New_York"


def at(text: str) -> datetime:
    """An aware instant from ``YYYY-MM-DD HH:MM[:SS]+HH:MM``."""
    return datetime.fromisoformat(text)


def evaluator(
    expr: str, tz: str = "UTC", start: str | None = None, end: str | None = None
) -> Evaluator:
    spec = ScheduleSpec(
        dialect=Dialect.QUARTZ,
        timezone=tz,
        expression=expr,
        start=None if start is None else at(start),
        end=None if end is None else at(end),
    )
    return compile_schedule(spec)


def fires(expr: str, after: str, n: int = 5, tz: str = "UTC", **bounds: str) -> list[str]:
    """The next ``n`` fire times after ``after``, as local times of ``tz`` (fewer if it ends)."""
    ev = evaluator(expr, tz, **bounds)
    out: list[str] = []
    t: datetime | None = at(after)
    while len(out) < n and t is not None:
        t = ev.next_after(t)
        if t is not None:
            assert t.tzinfo is UTC and t.microsecond == 0
            out.append(t.astimezone(ZoneInfo(tz)).isoformat(sep=" "))
    return out


def days(expr: str, after: str = "2026-01-01 00:00+00:00", n: int = 5) -> list[str]:
    return [s[:10] for s in fires(expr, after, n)]


# ----------------------------------------------------------------------------------------------
# Days
# ----------------------------------------------------------------------------------------------


def test_last_friday_of_month() -> None:
    assert days("0 15 10 ? * 6L") == [
        "2026-01-30",
        "2026-02-27",
        "2026-03-27",
        "2026-04-24",
        "2026-05-29",
    ]


def test_third_friday_of_month() -> None:
    assert days("0 0 9 ? * FRI#3", n=3) == ["2026-01-16", "2026-02-20", "2026-03-20"]


def test_fifth_monday_skips_months_without_one() -> None:
    assert days("0 0 0 ? * 2#5", n=4) == ["2026-03-30", "2026-06-29", "2026-08-31", "2026-11-30"]


def test_nearest_weekday_to_a_saturday_is_the_friday_before() -> None:
    assert days("0 0 9 15W AUG ?", n=1) == ["2026-08-14"]  # 2026-08-15 is a Saturday


def test_nearest_weekday_to_a_sunday_is_the_monday_after() -> None:
    assert days("0 0 9 15W NOV ?", n=1) == ["2026-11-16"]  # 2026-11-15 is a Sunday


def test_nearest_weekday_never_crosses_month() -> None:
    assert days("0 0 0 1W AUG ?", n=1) == ["2026-08-03"]  # Sat 1st: Monday 3rd, not Fri 31st
    assert days("0 0 0 31W MAY ?", n=1) == ["2026-05-29"]  # Sun 31st: Friday 29th, not Mon 1st
    assert days("0 0 0 31W JAN ?", n=1) == ["2026-01-30"]  # Sat 31st: Friday 30th


def test_31w_in_a_30_day_month_fires_only_when_the_30th_is_a_friday() -> None:
    # Quartz reads "April 31" as May 1st: a Saturday there pulls it back to Friday April 30.
    assert days("0 0 0 31W APR ?", n=3) == ["2027-04-30", "2032-04-30", "2038-04-30"]


def test_29w_after_january_skips_a_28_day_february() -> None:
    # Quartz moves from January's 29W to "February 29", which rolls over into March.
    assert days("0 0 0 29W * ?", after="2031-01-01 00:00+00:00", n=2) == [
        "2031-01-29",
        "2031-03-28",
    ]
    assert days("0 0 0 29W * ?", after="2031-02-01 00:00+00:00", n=1) == ["2031-02-28"]


def test_last_weekday_of_month() -> None:
    assert days("0 0 18 LW * ?", n=5) == [
        "2026-01-30",
        "2026-02-27",
        "2026-03-31",
        "2026-04-30",
        "2026-05-29",
    ]


def test_last_day_and_offset_from_last_day() -> None:
    assert days("0 0 0 L * ?", n=3) == ["2026-01-31", "2026-02-28", "2026-03-31"]
    assert days("0 0 0 L-3 * ?", n=3) == ["2026-01-28", "2026-02-25", "2026-03-28"]
    assert days("0 0 0 L-29 * ?", n=3) == ["2026-01-02", "2026-03-02", "2026-04-01"]


def test_day_of_week_l_alone_is_saturday() -> None:
    assert days("0 0 12 ? * L", n=3) == ["2026-01-03", "2026-01-10", "2026-01-17"]


def test_step_after_name_range_is_ignored() -> None:
    assert days("0 0 12 ? * MON-FRI/2") == [
        "2026-01-01",
        "2026-01-02",
        "2026-01-05",
        "2026-01-06",
        "2026-01-07",
    ]


def test_numeric_range_step_applies() -> None:
    assert days("0 0 12 ? * 2-6/2") == [
        "2026-01-02",
        "2026-01-05",
        "2026-01-07",
        "2026-01-09",
        "2026-01-12",
    ]


def test_star_step_starts_at_field_minimum_and_value_step_at_the_value() -> None:
    assert days("0 0 12 */10 * ?", n=4) == ["2026-01-01", "2026-01-11", "2026-01-21", "2026-01-31"]
    assert days("0 0 12 5/10 * ?", n=4) == ["2026-01-05", "2026-01-15", "2026-01-25", "2026-02-05"]
    assert days("0 0 12 1 7/6 ?", n=2) == ["2026-07-01", "2027-07-01"]  # not every 6th month


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("0 0 22-2 * * ?", ["01:00", "02:00", "22:00", "23:00", "00:00"]),
        ("0 50-10/10 5 * * ?", ["05:00", "05:10", "05:50", "05:00", "05:10"]),
    ],
)
def test_ranges_wrap_past_the_field_maximum(expr: str, expected: list[str]) -> None:
    assert [s[11:16] for s in fires(expr, "2026-01-01 00:00+00:00")] == expected


def test_month_and_day_name_ranges_wrap() -> None:
    assert days("0 0 8 1 NOV-FEB ?") == [
        "2026-01-01",
        "2026-02-01",
        "2026-11-01",
        "2026-12-01",
        "2027-01-01",
    ]
    assert days("0 0 12 ? * FRI-MON") == [
        "2026-01-02",
        "2026-01-03",
        "2026-01-04",
        "2026-01-05",
        "2026-01-09",
    ]


def test_names_and_letters_are_case_insensitive() -> None:
    assert days("0 0 12 ? jan mon-fri") == days("0 0 12 ? JAN MON-FRI")
    assert days("0 0 0 lw * ?", n=2) == days("0 0 0 LW * ?", n=2)


def test_tabs_and_repeated_blanks_separate_fields() -> None:
    assert days("  0\t0  12\t\t* * ?  ") == days("0 0 12 * * ?")


def test_seconds_field_fires_every_second_and_every_five() -> None:
    assert [s[17:19] for s in fires("* * * * * ?", "2026-01-01 00:00:58+00:00", n=3)] == [
        "59",
        "00",
        "01",
    ]
    assert [s[14:19] for s in fires("0/5 * * * * ?", "2026-01-01 00:00:52+00:00", n=3)] == [
        "00:55",
        "01:00",
        "01:05",
    ]


def test_year_field_exhausts() -> None:
    assert fires("0 0 12 L 12 ? 2026", "2026-06-01 00:00+00:00") == ["2026-12-31 12:00:00+00:00"]
    assert fires("0 0 12 1 1 ? 2027,2029", "2026-01-01 00:00+00:00") == [
        "2027-01-01 12:00:00+00:00",
        "2029-01-01 12:00:00+00:00",
    ]


def test_an_expression_that_never_fires_returns_none() -> None:
    ev = evaluator("0 0 0 30 2 ?")
    assert ev.next_after(at("2026-01-01 00:00+00:00")) is None
    assert ev.prev_at_or_before(at("2026-01-01 00:00+00:00")) is None


def test_half_hour_offset_zone() -> None:
    assert fires("0 0 12 * * ?", "2026-01-01 00:00+00:00", n=1, tz="Asia/Kolkata") == [
        "2026-01-01 12:00:00+05:30"
    ]


# ----------------------------------------------------------------------------------------------
# DST (semantics.md's verified table, and the zones checked against the oracle)
# ----------------------------------------------------------------------------------------------


def test_spring_gap_time_is_skipped_that_day() -> None:
    assert fires("0 30 2 * * ?", "2026-03-07 00:00-05:00", n=2, tz=NY) == [
        "2026-03-07 02:30:00-05:00",
        "2026-03-09 02:30:00-04:00",
    ]
    assert fires("0 30 2 * * ?", "2026-03-28 00:00+01:00", n=2, tz="Europe/Berlin") == [
        "2026-03-28 02:30:00+01:00",
        "2026-03-30 02:30:00+02:00",
    ]


def test_ambiguous_autumn_time_fires_once_at_standard_time() -> None:
    assert fires("0 30 1 * * ?", "2026-10-31 00:00-04:00", n=3, tz=NY) == [
        "2026-10-31 01:30:00-04:00",
        "2026-11-01 01:30:00-05:00",
        "2026-11-02 01:30:00-05:00",
    ]
    assert fires("0 30 2 * * ?", "2026-04-04 00:00+11:00", n=3, tz="Australia/Sydney") == [
        "2026-04-04 02:30:00+11:00",
        "2026-04-05 02:30:00+10:00",
        "2026-04-06 02:30:00+10:00",
    ]


def test_hourly_does_not_fire_in_the_daylight_copy_of_the_repeated_hour() -> None:
    assert fires("0 0 * * * ?", "2026-11-01 00:30-04:00", n=3, tz=NY) == [
        "2026-11-01 01:00:00-05:00",
        "2026-11-01 02:00:00-05:00",
        "2026-11-01 03:00:00-05:00",
    ]
    assert fires("0 0/15 * * * ?", "2026-11-01 00:40-04:00", n=3, tz=NY) == [
        "2026-11-01 00:45:00-04:00",
        "2026-11-01 01:00:00-05:00",
        "2026-11-01 01:15:00-05:00",
    ]


def test_new_york_2026_table_from_semantics_md() -> None:
    daily_0230 = fires("0 30 2 * * ?", "2026-03-08 00:00-05:00", n=1, tz=NY)
    daily_0130 = fires("0 30 1 * * ?", "2026-11-01 00:00-04:00", n=2, tz=NY)
    hourly = fires("0 0 * * * ?", "2026-11-01 00:00-04:00", n=2, tz=NY)
    assert daily_0230 == ["2026-03-09 02:30:00-04:00"]  # no fire on the spring day
    assert daily_0130 == ["2026-11-01 01:30:00-05:00", "2026-11-02 01:30:00-05:00"]  # once, EST
    assert hourly == ["2026-11-01 01:00:00-05:00", "2026-11-01 02:00:00-05:00"]  # 01:00 EST only


def test_search_starting_in_the_daylight_copy_continues_in_the_standard_copy() -> None:
    assert fires("0 * * * * ?", "2026-11-01 01:10-04:00", n=2, tz=NY) == [
        "2026-11-01 01:11:00-05:00",
        "2026-11-01 01:12:00-05:00",
    ]


def test_lord_howe_half_hour_gap_jumps_over_matches_just_after_it() -> None:
    # 02:00 -> 02:30 on 2026-10-04: 02:15 is pushed to 02:45, and 02:35 is never tried.
    assert fires("0 15,35 * * * ?", "2026-10-04 01:00+10:30", n=3, tz="Australia/Lord_Howe") == [
        "2026-10-04 01:15:00+10:30",
        "2026-10-04 01:35:00+10:30",
        "2026-10-04 03:15:00+11:00",
    ]


def test_lord_howe_gap_hour_fires_after_the_gap_when_the_hour_is_fixed() -> None:
    assert fires("0 15,35 2 * * ?", "2026-10-04 01:00+10:30", n=2, tz="Australia/Lord_Howe") == [
        "2026-10-04 02:35:00+11:00",
        "2026-10-05 02:15:00+11:00",
    ]


def test_lord_howe_half_hour_overlap_fires_once_at_the_later_instant() -> None:
    assert fires("0 45 1 * * ?", "2026-04-04 12:00+11:00", n=2, tz="Australia/Lord_Howe") == [
        "2026-04-05 01:45:00+10:30",
        "2026-04-06 01:45:00+10:30",
    ]


def test_midnight_gap_skips_a_midnight_job_that_day() -> None:
    assert fires("0 0 0 * * ?", "2026-09-04 12:00-04:00", n=2, tz="America/Santiago") == [
        "2026-09-05 00:00:00-04:00",
        "2026-09-07 00:00:00-03:00",
    ]


# ----------------------------------------------------------------------------------------------
# Trigger start / end time
# ----------------------------------------------------------------------------------------------

NOON = "0 0 12 * * ?"


def test_first_fire_is_the_first_cron_time_at_or_after_start() -> None:
    on_slot = fires(NOON, "2026-01-01 00:00+00:00", n=1, start="2026-01-05 12:00+00:00")
    after_slot = fires(NOON, "2026-01-01 00:00+00:00", n=1, start="2026-01-05 12:00:01+00:00")
    assert on_slot == ["2026-01-05 12:00:00+00:00"]
    assert after_slot == ["2026-01-06 12:00:00+00:00"]


def test_start_with_milliseconds_still_fires_in_its_own_second() -> None:
    assert fires(NOON, "2026-01-01 00:00+00:00", n=1, start="2026-01-05 12:00:00.500+00:00") == [
        "2026-01-05 12:00:00+00:00"
    ]


def test_no_fire_after_end_time() -> None:
    after = "2026-01-04 00:00+00:00"
    assert fires(NOON, after, end="2026-01-06 12:00+00:00") == [
        "2026-01-04 12:00:00+00:00",
        "2026-01-05 12:00:00+00:00",
        "2026-01-06 12:00:00+00:00",
    ]
    assert fires(NOON, after, end="2026-01-06 11:59:59+00:00")[-1] == "2026-01-05 12:00:00+00:00"
    ev = evaluator(NOON, end="2026-01-06 12:00+00:00")
    assert ev.next_after(at("2026-01-06 12:00+00:00")) is None


def test_prev_respects_start_and_end() -> None:
    ev = evaluator(NOON, start="2026-01-05 12:00+00:00", end="2026-01-07 12:00+00:00")
    assert ev.prev_at_or_before(at("2026-01-05 11:59:59+00:00")) is None
    assert ev.prev_at_or_before(at("2026-01-05 12:00+00:00")) == at("2026-01-05 12:00+00:00")
    assert ev.prev_at_or_before(at("2026-03-01 00:00+00:00")) == at("2026-01-07 12:00+00:00")


# ----------------------------------------------------------------------------------------------
# prev_at_or_before
# ----------------------------------------------------------------------------------------------


def test_prev_is_the_slot_at_or_before() -> None:
    ev = evaluator("0 0/15 * * * ?")
    assert ev.prev_at_or_before(at("2026-01-01 10:15+00:00")) == at("2026-01-01 10:15+00:00")
    assert ev.prev_at_or_before(at("2026-01-01 10:29:59.9+00:00")) == at("2026-01-01 10:15+00:00")


def test_prev_in_the_daylight_copy_is_the_last_slot_before_the_repeat() -> None:
    ev = evaluator("0 * * * * ?", NY)
    assert ev.prev_at_or_before(at("2026-11-01 01:30-04:00")) == at("2026-11-01 00:59-04:00")
    assert ev.prev_at_or_before(at("2026-11-01 01:30-05:00")) == at("2026-11-01 01:30-05:00")


def test_prev_follows_the_slots_quartz_really_fires_around_lord_howe_gap() -> None:
    ev = evaluator("0 15,35 * * * ?", "Australia/Lord_Howe")
    assert ev.prev_at_or_before(at("2026-10-04 02:40+11:00")) == at("2026-10-04 01:35+10:30")


def test_prev_is_the_chain_quartz_fires_not_every_self_consistent_slot() -> None:
    # A search starting at 02:34:59 finds 02:35 (so next_after(02:35 - 1 s) == 02:35), but the
    # chain Quartz really runs goes 01:35 -> 03:15; the shim must see 01:35 as the last slot.
    ev = evaluator("0 15,35 * * * ?", "Australia/Lord_Howe")
    assert ev.next_after(at("2026-10-04 02:34:59+11:00")) == at("2026-10-04 02:35+11:00")
    assert ev.next_after(at("2026-10-04 01:35+10:30")) == at("2026-10-04 03:15+11:00")
    assert ev.prev_at_or_before(at("2026-10-04 03:00+11:00")) == at("2026-10-04 01:35+10:30")


def test_prev_at_the_first_slot_after_the_repeat_is_that_slot() -> None:
    ev = evaluator("0 * * * * ?", NY)
    assert ev.next_after(at("2026-11-01 00:59-04:00")) == at("2026-11-01 01:00-05:00")
    assert ev.prev_at_or_before(at("2026-11-01 01:00:30-05:00")) == at("2026-11-01 01:00-05:00")


EXPRESSIONS = st.one_of(
    st.sampled_from(gen.COMMON),
    st.integers(0, 2**32).map(lambda seed: gen.random_expression(random.Random(seed))),
)


def _chain(ev: Evaluator, start: datetime, n: int) -> list[datetime]:
    out: list[datetime] = []
    t: datetime | None = start
    while len(out) < n and t is not None:
        t = ev.next_after(t)
        if t is not None:
            out.append(t)
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    expr=EXPRESSIONS,
    tz=st.sampled_from(gen.ZONES),
    near=st.integers(0, 40),
    before_minutes=st.sampled_from([3, 20, 70, 150, 1500, 40000]),
)
def test_prev_agrees_with_the_forward_chain(
    expr: str, tz: str, near: int, before_minutes: int
) -> None:
    try:
        validate(expr)
    except ScheduleError:
        return
    moments = gen.transitions(tz) or [datetime(2027, 3, 1, tzinfo=UTC)]
    start = moments[near % len(moments)] - timedelta(minutes=before_minutes)
    ev = evaluator(expr, tz)
    chain = _chain(ev, start, 10)
    for here, nxt in itertools.pairwise(chain[2:]):
        for t in (here, here + (nxt - here) / 2, nxt - timedelta(seconds=1)):
            assert ev.prev_at_or_before(t) == here, f"{expr!r} {tz} t={t}"


@settings(max_examples=80, deadline=None)
@given(
    expr=EXPRESSIONS,
    tz=st.sampled_from(gen.ZONES),
    seconds=st.integers(0, 5 * 365 * 86400),
)
def test_next_is_strictly_after_and_prev_at_or_before(expr: str, tz: str, seconds: int) -> None:
    try:
        validate(expr)
    except ScheduleError:
        return
    ev = evaluator(expr, tz)
    t = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=250_000)
    nxt, prev = ev.next_after(t), ev.prev_at_or_before(t)
    assert nxt is None or (nxt > t and nxt.microsecond == 0 and nxt.tzinfo is UTC)
    assert prev is None or (prev <= t and prev.microsecond == 0 and prev.tzinfo is UTC)
    if prev is not None:
        after_prev = ev.next_after(prev)
        assert after_prev is None or after_prev > t


# ----------------------------------------------------------------------------------------------
# Invalid expressions: one precise line, naming the field
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 0 12 * * *", "exactly one of day-of-month and day-of-week must be '?'"),
        ("0 0 12 ? * ?", "exactly one of day-of-month and day-of-week must be '?'"),
        ("0 0 12 5 * MON", "(got '5' and 'MON')"),
        ("0 0 12 * *", "expected 6 or 7 fields"),
        ("0 0 12 1 1 ? 2026 x", "got 8"),
        ("60 0 12 * * ?", "seconds value 60 is out of range 0-59 in '60'"),
        ("0 0 24 * * ?", "hours value 24 is out of range 0-23 in '24'"),
        ("0 0 12 ? * 0", "day-of-week value 0 is out of range 1-7 in '0'"),
        ("0 0 12 * 13 ?", "month value 13 is out of range 1-12 in '13'"),
        ("5/60 0 12 * * ?", "step 60 is larger than 59 in seconds '5/60'"),
        ("0 0 12 L,5 * ?", "'L' cannot be combined with other values in day-of-month 'L,5'"),
        ("0 0 12 ? * 6L,2", "'L' cannot be combined with other values in day-of-week '6L,2'"),
        ("0 0 12 ? * 6#6", "between 1 and 5 must follow '#' in day-of-week '6#6'"),
        ("0 0 12 ? * 1#3#4", "only one '#'"),
        ("0 0 12 L-31 * ?", "must be <= 30 in day-of-month 'L-31'"),
        ("0 0 12 5L * ?", "day-of-month '5L'"),
        ("0 0 12 ? * MONDAY", "cannot read 'MONDAY' in day-of-week 'MONDAY'"),
        ("0 0 12 * JAN-3 ?", "cannot read 'JAN-3' in month 'JAN-3'"),
        ("0 ? 12 * * ?", "'?' is only for day-of-month or day-of-week, not minutes '?'"),
        ("*/0 0 12 * * ?", "step 0 in seconds '*/0'"),
        ("0 0 12 * * ? 2030-2025", "ends before it starts in '2030-2025'"),
        ("0 0 12 L-28W * ?", "loops forever"),
        ("0 0 12 1,,2 * ?", "empty value in day-of-month '1,,2'"),
        ("0 0 12\n* * ?", "unexpected character"),
    ],
)
def test_invalid_expression_raises_a_precise_schedule_error(expr: str, message: str) -> None:
    with pytest.raises(ScheduleError) as err:
        validate(expr)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(ScheduleError):
        evaluator(expr)


def test_compile_schedule_returns_an_evaluator() -> None:
    assert isinstance(evaluator("0 0 12 * * ?", NY), Evaluator)
