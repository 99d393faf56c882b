"""The pure dispatch decision: misfire policies, catch-up window, watermark, end, jitter."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from bridge.adapters.redbeat_entries import encode_definition
from bridge.core.dispatch import (
    DueSlots,
    EntryPolicy,
    due_slots,
    epoch_to_slot,
    jitter_offset,
    slot_iso,
)
from bridge.core.spec import CommandHandler, JobSpec, MisfirePolicy, Policies, ScheduleSpec

T = datetime(2026, 3, 8, 7, 0, 0, tzinfo=UTC)


def s(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


@dataclass(frozen=True)
class Every:
    """Slots every ``step`` seconds (aligned on T), optionally ending at ``end``: pure arithmetic,
    the smallest evaluator that lets the table below speak in seconds."""

    step: int = 10
    end: datetime | None = None

    def next_after(self, t: datetime) -> datetime | None:
        k = int((t - T).total_seconds() // self.step) + 1
        nxt = T + timedelta(seconds=k * self.step)
        return None if self.end is not None and nxt > self.end else nxt

    def prev_at_or_before(self, t: datetime) -> datetime | None:
        k = int((t - T).total_seconds() // self.step)
        return T + timedelta(seconds=k * self.step)


def slots(*seconds: int) -> tuple[datetime, ...]:
    return tuple(s(x) for x in seconds)


SKIP = EntryPolicy(MisfirePolicy.SKIP, grace_seconds=60)
ONCE = EntryPolicy(MisfirePolicy.FIRE_ONCE, grace_seconds=60)
ALL = EntryPolicy(MisfirePolicy.FIRE_ALL, grace_seconds=60, catchup_seconds=80)
PAUSED = EntryPolicy(MisfirePolicy.FIRE_ALL, paused=True)

# name, policy, score, last_slot, now, publish, missed, paused, watermark, next
CASES = [
    ("on_time_slot_is_published", SKIP, 0, -10, 0.4, (0,), (), (), 0, 10),
    ("slot_at_or_below_watermark_is_never_republished", SKIP, 0, 0, 1, (), (), (), 0, 10),
    ("two_on_time_slots_after_a_slow_tick_both_publish", SKIP, 0, -10, 12, (0, 10), (), (), 10, 20),
    ("skip_records_late_slots_missed_and_runs_the_on_time_ones", SKIP, 0, -10, 100,
     (40, 50, 60, 70, 80, 90, 100), (0, 10, 20, 30), (), 100, 110),
    ("fire_once_collapses_a_late_backlog_into_the_latest_slot", ONCE, 0, -10, 100,
     (100,), (0, 10, 20, 30, 40, 50, 60, 70, 80, 90), (), 100, 110),
    ("fire_once_backlog_ending_on_time_still_runs_once", ONCE, 0, -10, 125,
     (120,), (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110), (), 120, 130),
    ("fire_once_without_late_slots_publishes_every_slot", ONCE, 0, -10, 15, (0, 10), (), (), 10,
     20),
    ("fire_all_publishes_late_slots_inside_the_catch_up_window", ALL, 0, -10, 100,
     (20, 30, 40, 50, 60, 70, 80, 90, 100), (0, 10), (), 100, 110),
    ("paused_job_records_every_due_slot_skipped", PAUSED, 0, -10, 25, (), (), (0, 10, 20), 20, 30),
    ("changed_schedule_does_not_replay_slots_before_its_score", ALL, 50, -100, 55, (50,), (), (),
     50, 60),
    ("stale_score_below_watermark_is_rescored_without_publishing", ALL, 0, 30, 35, (), (), (), 30,
     40),
    ("no_watermark_starts_at_the_score", SKIP, 20, None, 20, (20,), (), (), 20, 30),
]


@pytest.mark.parametrize(
    ("policy", "score", "last", "now", "publish", "missed", "paused", "watermark", "nxt"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decision_table(
    policy: EntryPolicy,
    score: int,
    last: int | None,
    now: float,
    publish: tuple[int, ...],
    missed: tuple[int, ...],
    paused: tuple[int, ...],
    watermark: int,
    nxt: int,
) -> None:
    d = due_slots(Every(), policy, score=s(score), last_slot=None if last is None else s(last),
               now=s(now))
    assert d == DueSlots(slots(*publish), slots(*missed), slots(*paused), s(watermark), s(nxt))
    assert d.score == s(nxt).timestamp()


def test_every_due_slot_lands_in_exactly_one_list_and_the_watermark_is_the_last() -> None:
    for policy in (SKIP, ONCE, ALL, PAUSED):
        d = due_slots(Every(), policy, score=s(0), last_slot=None, now=s(333))
        handled = sorted(d.publish + d.missed + d.paused)
        assert handled == [s(x) for x in range(0, 331, 10)]
        assert d.watermark == s(330)
        assert d.next_slot == s(340)


def test_backlog_larger_than_the_limit_is_worked_off_in_pieces() -> None:
    first = due_slots(Every(), SKIP, score=s(0), last_slot=None, now=s(1000), limit=30)
    assert len(first.missed) == 30 and first.more
    assert first.next_slot == s(300) and first.watermark == s(290)
    seen = list(first.missed)
    d = first
    while d.more:
        assert d.watermark is not None and d.next_slot is not None
        d = due_slots(Every(), SKIP, score=d.next_slot, last_slot=d.watermark, now=s(1000),
                      limit=30)
        seen += d.missed + d.publish
    assert seen == [s(x) for x in range(0, 1001, 10)]
    assert d.next_slot == s(1010)


def test_fire_once_backlog_in_pieces_runs_only_the_latest_slot() -> None:
    published: list[datetime] = []
    d = due_slots(Every(), ONCE, score=s(0), last_slot=None, now=s(995), limit=30)
    published += d.publish
    while d.more:
        d = due_slots(Every(), ONCE, score=d.next_slot, last_slot=d.watermark, now=s(995), limit=30)
        published += d.publish
    assert published == [s(990)]


def test_fire_once_runs_the_latest_slot_late_when_every_slot_is_late() -> None:
    d = due_slots(Every(step=100), ONCE, score=s(0), last_slot=None, now=s(250))
    assert d.publish == (s(200),)
    assert d.missed == (s(0), s(100))
    assert d.next_slot == s(300)


def test_end_of_schedule_scores_minus_one() -> None:
    d = due_slots(Every(end=s(20)), SKIP, score=s(20), last_slot=s(10), now=s(21))
    assert d.publish == (s(20),)
    assert d.next_slot is None and d.score == -1.0
    after = due_slots(Every(end=s(20)), SKIP, score=None, last_slot=s(20), now=s(40))
    assert after.publish == () and after.score == -1.0


def test_grace_zero_makes_any_past_slot_late() -> None:
    policy = EntryPolicy(MisfirePolicy.SKIP, grace_seconds=0)
    assert due_slots(Every(), policy, score=s(0), last_slot=None, now=s(0)).publish == (s(0),)
    assert due_slots(Every(), policy, score=s(0), last_slot=None, now=s(1)).missed == (s(0),)


def test_real_vixie_evaluator_minute_slots() -> None:
    from bridge.core.schedules import compile_schedule

    ev = compile_schedule(ScheduleSpec(dialect="vixie", expression="* * * * *", timezone="UTC"))
    d = due_slots(ev, SKIP, score=s(0), last_slot=None, now=s(150))
    assert d.publish == (s(120),)
    assert d.missed == (s(0), s(60))
    assert d.next_slot == s(180)


def test_jitter_is_deterministic_bounded_and_spread() -> None:
    offsets = {jitter_offset("job-a", s(60 * k), 30) for k in range(200)}
    assert all(0 <= o < 30 for o in offsets)
    assert len(offsets) > 150
    assert jitter_offset("job-a", s(0), 30) == jitter_offset("job-a", s(0), 30)
    assert jitter_offset("job-a", s(0), 30) != jitter_offset("job-b", s(0), 30)
    assert jitter_offset("job-a", s(0), 0) == 0.0


def test_slot_travels_as_utc_iso_with_z() -> None:
    assert slot_iso(T) == "2026-03-08T07:00:00Z"
    assert epoch_to_slot(T.timestamp() + 0.7) == T


def test_policy_is_read_from_the_encoded_definition() -> None:
    spec = JobSpec(
        id="job-1",
        schedule=ScheduleSpec(dialect="vixie", expression="* * * * *"),
        handler=CommandHandler(command="true"),
        policies=Policies(misfire=MisfirePolicy.FIRE_ALL, misfire_grace_seconds=5,
                          catchup_window_seconds=120, jitter_seconds=7),
    )
    section = json.loads(encode_definition(spec, "h", paused=True))["bridge"]
    assert EntryPolicy.from_definition(section) == EntryPolicy(
        MisfirePolicy.FIRE_ALL, grace_seconds=5, catchup_seconds=120, jitter_seconds=7,
        paused=True,
    )
