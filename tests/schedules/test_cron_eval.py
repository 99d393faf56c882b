"""Behaviour of the vixie/cronie evaluator: Debian cron 3.0pl1's day rule, DST rules and edges.

Expected values come from semantics.md (verified on Debian's daemon), from cron.c's DST cases, or
from a brute-force minute-by-minute model written here independently of the evaluator.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.core.errors import ScheduleError
from bridge.core.schedules import Evaluator, compile_schedule, slots_between, take
from bridge.core.schedules.cron import never_fires
from bridge.core.schedules.cronfields import parse_fields
from bridge.core.spec import Dialect, ScheduleSpec

NY = ZoneInfo("America/New_York")
DST_ZONES = (
    "America/New_York",
    "Europe/Berlin",
    "Europe/London",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
    "America/Santiago",
)


def cron(
    expr: str,
    tz: str = "UTC",
    dialect: Dialect = Dialect.VIXIE,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Evaluator:
    spec = ScheduleSpec(dialect=dialect, timezone=tz, expression=expr, start=start, end=end)
    return compile_schedule(spec)


def local(ev: Evaluator, after: datetime, n: int, tz: str) -> list[str]:
    zone = ZoneInfo(tz)
    return [s.astimezone(zone).strftime("%Y-%m-%d %H:%M%z") for s in take(ev, after, n)]


def at(tz: str, *fields: int) -> datetime:
    year, month, day, hour, minute = (*fields, 0, 0)[:5]
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz))


# --- the verified DST table (semantics.md, America/New_York 2026) -------------------------------


def test_verified_table_daily_0230_on_spring_day_runs_at_0300_edt() -> None:
    ev = cron("30 2 * * *", "America/New_York")
    assert local(ev, at("America/New_York", 2026, 3, 7, 12), 2, "America/New_York") == [
        "2026-03-08 03:00-0400",
        "2026-03-09 02:30-0400",
    ]


def test_verified_table_daily_0130_on_fall_day_runs_once_at_0130_edt() -> None:
    ev = cron("30 1 * * *", "America/New_York")
    assert local(ev, at("America/New_York", 2026, 10, 31, 12), 3, "America/New_York") == [
        "2026-11-01 01:30-0400",
        "2026-11-02 01:30-0500",
        "2026-11-03 01:30-0500",
    ]


def test_verified_table_hourly_on_fall_day_fires_at_0100_edt_and_0100_est() -> None:
    ev = cron("0 * * * *", "America/New_York")
    assert local(ev, at("America/New_York", 2026, 11, 1, 0, 30), 3, "America/New_York") == [
        "2026-11-01 01:00-0400",
        "2026-11-01 01:00-0500",
        "2026-11-01 02:00-0500",
    ]


# --- DST behaviour -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "expr", "after", "expected"),
    [
        ("America/New_York", "30 2 * * *", (2026, 3, 8, 0), "2026-03-08 03:00-0400"),
        ("America/New_York", "0 2 * * *", (2026, 3, 8, 0), "2026-03-08 03:00-0400"),
        ("Europe/Berlin", "30 2 * * *", (2026, 3, 29, 0), "2026-03-29 03:00+0200"),
        ("Europe/London", "30 1 * * *", (2026, 3, 29, 0), "2026-03-29 02:00+0100"),
        ("Australia/Sydney", "45 2 * * *", (2026, 10, 4, 0), "2026-10-04 03:00+1100"),
        ("Australia/Lord_Howe", "15 2 * * *", (2026, 10, 4, 0), "2026-10-04 02:30+1100"),
        ("America/Santiago", "30 0 * * *", (2026, 9, 5, 12), "2026-09-06 01:00-0300"),
    ],
)
def test_fixed_time_job_in_skipped_hour_runs_after_the_jump(
    tz: str, expr: str, after: tuple[int, ...], expected: str
) -> None:
    assert local(cron(expr, tz), at(tz, *after), 1, tz) == [expected]


@pytest.mark.parametrize(
    ("tz", "expr", "after", "expected"),
    [
        ("America/New_York", "30 1 * * *", (2026, 11, 1, 0), "2026-11-01 01:30-0400"),
        ("Europe/Berlin", "30 2 * * *", (2026, 10, 25, 0), "2026-10-25 02:30+0200"),
        ("Australia/Lord_Howe", "45 1 * * *", (2026, 4, 5, 0), "2026-04-05 01:45+1100"),
        ("America/Santiago", "30 23 * * *", (2026, 4, 4, 12), "2026-04-04 23:30-0300"),
    ],
)
def test_fixed_time_job_in_repeated_hour_runs_once_in_the_first_copy(
    tz: str, expr: str, after: tuple[int, ...], expected: str
) -> None:
    first, second = local(cron(expr, tz), at(tz, *after), 2, tz)
    assert first == expected
    assert second[:10] != first[:10] or second[11:16] != first[11:16]  # not the same wall time


def test_hourly_job_fires_in_both_copies_of_repeated_hour() -> None:
    ev = cron("0 * * * *", "Europe/Berlin")
    assert local(ev, at("Europe/Berlin", 2026, 10, 25, 1, 30), 3, "Europe/Berlin") == [
        "2026-10-25 02:00+0200",
        "2026-10-25 02:00+0100",
        "2026-10-25 03:00+0100",
    ]


def test_wildcard_minutes_follow_the_wall_clock_in_both_copies() -> None:
    ev = cron("*/30 1 * * *", "America/New_York")
    assert local(ev, at("America/New_York", 2026, 11, 1, 0), 4, "America/New_York") == [
        "2026-11-01 01:00-0400",
        "2026-11-01 01:30-0400",
        "2026-11-01 01:00-0500",
        "2026-11-01 01:30-0500",
    ]


def test_wildcard_job_does_not_run_in_skipped_minutes() -> None:
    ev = cron("*/15 2 * * *", "America/New_York")
    assert local(ev, at("America/New_York", 2026, 3, 8, 0), 1, "America/New_York") == [
        "2026-03-09 02:00-0400"
    ]


def test_wildcard_hour_after_half_hour_fall_back_fires_on_the_wall_hour() -> None:
    # Lord Howe falls back 30 minutes at 02:00: the clock reads 02:00 again 30 minutes later.
    # (cronsim 2.8 steps hours by 3600 s and answers 04:00 here; Debian matches the wall clock.)
    ev = cron("0 */2 * * *", "Australia/Lord_Howe")
    assert local(ev, at("Australia/Lord_Howe", 2026, 4, 5, 1, 50), 2, "Australia/Lord_Howe") == [
        "2026-04-05 02:00+1030",
        "2026-04-05 04:00+1030",
    ]


def test_two_wall_times_in_one_gap_are_one_slot() -> None:
    ev = cron("0,30 2 * * *", "America/New_York")
    assert local(ev, at("America/New_York", 2026, 3, 8, 0), 2, "America/New_York") == [
        "2026-03-08 03:00-0400",
        "2026-03-09 02:00-0400",
    ]


def test_fixed_time_is_decided_by_the_star_prefix_not_the_set() -> None:
    # "0-59 2" is fixed-time for Debian (no field starts with *): the whole gap runs at 03:00
    ev = cron("0-59 2 * * *", "America/New_York")
    assert local(ev, at("America/New_York", 2026, 3, 8, 0), 2, "America/New_York") == [
        "2026-03-08 03:00-0400",
        "2026-03-09 02:00-0400",
    ]
    assert not parse_fields("*/1 2 * * *").fixed_time


# --- the day rule and field edges --------------------------------------------------------------


def days(ev: Evaluator, n: int) -> list[str]:
    return [s.strftime("%a %d %b") for s in take(ev, datetime(2025, 12, 31, 12, tzinfo=UTC), n)]


def test_dom_and_dow_or_when_neither_starts_with_star() -> None:
    assert days(cron("0 0 1,15 * 5"), 5) == [
        "Thu 01 Jan", "Fri 02 Jan", "Fri 09 Jan", "Thu 15 Jan", "Fri 16 Jan",
    ]


def test_dom_and_dow_and_when_either_starts_with_star() -> None:
    assert days(cron("0 0 */2 * sun"), 4) == [
        "Sun 11 Jan", "Sun 25 Jan", "Sun 01 Feb", "Sun 15 Feb",
    ]
    assert days(cron("0 0 1-7 * */7"), 2) == ["Sun 04 Jan", "Sun 01 Feb"]


def test_sunday_is_both_0_and_7() -> None:
    assert days(cron("0 0 * * 0"), 3) == days(cron("0 0 * * 7"), 3) == days(cron("@weekly"), 3)


def test_the_31st_fires_only_in_months_that_have_one() -> None:
    assert days(cron("0 0 31 * *"), 4) == ["Sat 31 Jan", "Tue 31 Mar", "Sun 31 May", "Fri 31 Jul"]


def test_february_29th_fires_in_leap_years_only() -> None:
    assert [s.year for s in take(cron("0 0 29 2 *"), datetime(2026, 1, 1, tzinfo=UTC), 3)] == [
        2028, 2032, 2036,
    ]


def test_wrapping_dow_range_still_fires_on_dom_via_or_rule() -> None:
    assert days(cron("0 0 1 * fri-mon"), 3) == ["Thu 01 Jan", "Sun 01 Feb", "Sun 01 Mar"]


def test_wrapping_range_matches_nothing_but_the_rest_of_its_list_counts() -> None:
    ev = cron("50-10,30 * * * *")
    assert [s.minute for s in take(ev, datetime(2026, 1, 1, tzinfo=UTC), 3)] == [30, 30, 30]


def test_names_are_case_insensitive_and_macros_expand() -> None:
    assert days(cron("0 0 * JAN,Mar mOn"), 2) == ["Mon 05 Jan", "Mon 12 Jan"]
    assert take(cron("@daily"), datetime(2026, 1, 1, tzinfo=UTC), 2) == take(
        cron("0 0 * * *"), datetime(2026, 1, 1, tzinfo=UTC), 2
    )
    with pytest.raises(ScheduleError, match="@reboot"):
        cron("@reboot")


@pytest.mark.parametrize(
    "expr",
    ["0 0 * * fri-mon", "0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *", "50-10 * * * *",
     "0 23-1 * * *", "0 0 * dec-jan *", "0 0 * 2 fri-mon"],
)
def test_never_firing_schedule_returns_none(expr: str) -> None:
    spec = ScheduleSpec(dialect=Dialect.VIXIE, timezone="America/New_York", expression=expr)
    ev = compile_schedule(spec)
    began = time.perf_counter()
    assert ev.next_after(datetime(2026, 1, 1, tzinfo=UTC)) is None
    assert ev.prev_at_or_before(datetime(2026, 1, 1, tzinfo=UTC)) is None
    assert never_fires(spec)
    assert time.perf_counter() - began < 0.05


def test_schedule_firing_only_in_skipped_hours_never_fires() -> None:
    # wildcard minutes at 02:xx on the second Sunday of March: New York's clock always skips them
    spec = ScheduleSpec(Dialect.VIXIE, "America/New_York", "* 2 8-14 3 */7")
    assert never_fires(spec)
    assert compile_schedule(spec).next_after(datetime(2026, 1, 1, tzinfo=UTC)) is None
    # the same at a fixed time catches up at 03:00, so it fires
    fixed = ScheduleSpec(Dialect.VIXIE, "America/New_York", "30 2 8-14 3 */7")
    assert not never_fires(fixed)


def test_never_fires_respects_the_bounds() -> None:
    start = datetime(2026, 1, 2, tzinfo=UTC)
    bounded = ScheduleSpec(dialect=Dialect.VIXIE, expression="0 0 1 1 *", start=start,
                           end=start + timedelta(days=300))
    assert never_fires(bounded)
    assert not never_fires(ScheduleSpec(dialect=Dialect.VIXIE, expression="0 0 1 1 *"))


# --- bounds, dialects, contract ----------------------------------------------------------------


def test_no_slot_before_start_or_after_end() -> None:
    start = datetime(2026, 1, 1, 10, 0, 30, tzinfo=UTC)
    end = datetime(2026, 1, 1, 10, 3, tzinfo=UTC)
    ev = cron("* * * * *", start=start, end=end)
    assert [s.minute for s in take(ev, datetime(2025, 1, 1, tzinfo=UTC), 10)] == [1, 2, 3]
    assert ev.prev_at_or_before(datetime(2026, 6, 1, tzinfo=UTC)) == end
    assert ev.prev_at_or_before(datetime(2026, 1, 1, 10, 0, 59, tzinfo=UTC)) is None
    assert ev.next_after(end) is None


def test_cronie_evaluates_in_its_cron_tz_zone() -> None:
    ev = cron("0 9 * * *", "Asia/Tokyo", Dialect.CRONIE)
    assert ev.next_after(datetime(2025, 12, 31, 12, tzinfo=UTC)) == datetime(2026, 1, 1, tzinfo=UTC)


def test_slots_are_utc_whole_minutes_strictly_after_the_query() -> None:
    ev = cron("*/5 * * * *", "Asia/Kolkata")
    t = datetime(2026, 1, 1, 10, 5, 0, 999, tzinfo=UTC)
    slot = ev.next_after(t)
    assert slot == datetime(2026, 1, 1, 10, 10, tzinfo=UTC) and slot.tzinfo is UTC
    assert ev.next_after(datetime(2026, 1, 1, 10, 4, 59, tzinfo=UTC)) == datetime(
        2026, 1, 1, 10, 5, tzinfo=UTC
    )
    assert ev.prev_at_or_before(datetime(2026, 1, 1, 10, 9, 59, tzinfo=UTC)) == datetime(
        2026, 1, 1, 10, 5, tzinfo=UTC
    )


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        cron("* * * * *").next_after(datetime(2026, 1, 1))


def test_typical_next_after_costs_well_under_a_millisecond() -> None:
    evs = [cron(e, "America/New_York") for e in ("*/15 * * * *", "30 2 * * *", "0 9 * * mon-fri")]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    times = [t0 + timedelta(minutes=97 * i) for i in range(600)]
    for ev in evs:
        ev.next_after(t0)  # warm the zone cache
    began = time.perf_counter()
    for ev in evs:
        for t in times:
            ev.next_after(t)
    per_call = (time.perf_counter() - began) / (len(evs) * len(times))
    assert per_call < 0.0005, f"{per_call * 1e6:.0f} us per next_after"


# --- properties: prev/next consistency and a brute-force model of cron(8) ------------------------

EXPRESSIONS = (
    "0 * * * *", "*/15 * * * *", "30 2 * * *", "0 2 * * *", "30 1 * * *", "45 0 * * *",
    "15 2,3 * * *", "*/20 1-3 * * *", "* 2 * * *", "0 0 * * 0", "0,30 23 * * *",
    "5 1 1-7 * sun", "0 */2 * * *", "59 1 * * 1-5", "0 3 * * *", "0 0 1 * *",
)


@cache
def transitions(tz: str, year: int) -> tuple[datetime, ...]:
    zone = ZoneInfo(tz)
    t = datetime(year, 1, 1, tzinfo=UTC)
    out = []
    while t.year == year:
        nxt = t + timedelta(hours=1)
        if t.astimezone(zone).utcoffset() != nxt.astimezone(zone).utcoffset():
            minute = t
            while minute.astimezone(zone).utcoffset() == t.astimezone(zone).utcoffset():
                minute += timedelta(minutes=1)
            out.append(minute)
        t = nxt
    return tuple(out)


def near_transition() -> st.SearchStrategy[tuple[str, datetime]]:
    def pick(tz: str, year: int, index: int, minutes: int) -> tuple[str, datetime]:
        trs = transitions(tz, year)
        return tz, trs[index % len(trs)] + timedelta(minutes=minutes)

    return st.builds(
        pick,
        st.sampled_from(DST_ZONES),
        st.integers(2026, 2029),
        st.integers(0, 1),
        st.integers(-26 * 60, 26 * 60),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_transition(), st.sampled_from(EXPRESSIONS), st.integers(0, 59))
def test_prev_at_or_before_agrees_with_next_after_over_dst_days(
    where: tuple[str, datetime], expr: str, second: int
) -> None:
    tz, t = where
    t = t + timedelta(seconds=second)
    ev = cron(expr, tz)
    nxt = ev.next_after(t)
    assert nxt is not None and nxt > t
    assert ev.prev_at_or_before(nxt) == nxt
    prv = ev.prev_at_or_before(nxt - timedelta(seconds=1))
    assert prv is not None and prv <= t
    assert ev.next_after(prv) == nxt
    assert ev.prev_at_or_before(t) == prv


def brute_force(expr: str, tz: str, lo: datetime, hi: datetime) -> list[datetime]:
    """cron(8) over real minutes in (lo, hi]: wall-clock match; fixed-time jobs skip the second
    copy of repeated walls and run skipped walls at the first minute after the jump."""
    f = parse_fields(expr)
    zone = ZoneInfo(tz)

    def matches(w: datetime) -> bool:
        dom_ok, dow_ok = w.day in f.dom, w.isoweekday() % 7 in f.dow
        day_ok = (dom_ok and dow_ok) if (f.dom_star or f.dow_star) else (dom_ok or dow_ok)
        return w.minute in f.minute and w.hour in f.hour and w.month in f.month and day_ok

    out: list[datetime] = []
    t = lo.replace(second=0, microsecond=0) + timedelta(minutes=1)
    prev_wall = (t - timedelta(minutes=1)).astimezone(zone).replace(tzinfo=None)
    seen = {(t - timedelta(minutes=m)).astimezone(zone).replace(tzinfo=None) for m in range(1, 240)}
    while t <= hi:
        wall = t.astimezone(zone).replace(tzinfo=None)
        if f.fixed_time:
            jumped = [prev_wall + timedelta(minutes=m) for m in range(1, 180)
                      if prev_wall + timedelta(minutes=m) < wall]
            caught_up = wall > prev_wall + timedelta(minutes=1) and any(map(matches, jumped))
            if caught_up or (matches(wall) and wall not in seen):
                out.append(t)
            seen.add(wall)
        elif matches(wall):
            out.append(t)
        prev_wall = wall
        t += timedelta(minutes=1)
    return sorted(set(out))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_transition(), st.sampled_from(EXPRESSIONS))
def test_slots_around_clock_changes_match_a_minute_by_minute_model(
    where: tuple[str, datetime], expr: str
) -> None:
    tz, t = where
    lo, hi = t - timedelta(hours=4), t + timedelta(hours=4)
    assert list(slots_between(cron(expr, tz), lo, hi)) == brute_force(expr, tz, lo, hi)
