"""A per-second Quartz job flipped to Celery and back while both paths fire every slot.

Real processes only: ``celery beat -S bridge.scheduler:BridgeScheduler`` and a real worker run
``bridge.run_job(job_id, slot)``; the legacy side is ``bridge-cron-shell -c CMD`` started once
per second just after each second (as cron starts a line each minute, :class:`LegacyLoop`).
The job starts legacy-owned (Celery observes), ``bridge authority flip --to celery --at S1``
moves it ~35 s in, ``bridge authority flip --to legacy --at S2`` moves it back 40 s later, and
40 s after that the firing stops. Every slot of the window must have been executed exactly once
by its owner (one authoritative ``runs`` row and one side-effect line, the line inside that
run), the non-owner must have stood down (legacy shim from S1, the Celery task from S2) or
observed (before S1), and the shadow report must be all ``match`` with the stand-downs visible.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bridge.core.spec import CommandHandler, Dialect, JobSpec, ScheduleSpec
from tests.e2e.harness import (
    SIDE_EFFECT,
    LegacyLoop,
    World,
    analyse_boundary,
    flip,
    iso,
    shadow_verdicts,
    utc,
)
from tests.support import sleep_until, wait_for
from tests.support.services import broker_idle

pytestmark = [pytest.mark.integration, pytest.mark.slow(seconds=95), pytest.mark.timeout(420)]

JOB = "e2e.flip-boundary"
LEAD = 25  # seconds from the window start to the flip to Celery
HELD = 25  # seconds Celery owns the job
AFTER = 25  # seconds of legacy ownership again before the end


@pytest.fixture
def world(tmp_path: Path, redis_url: str) -> Iterator[World]:
    w = World(tmp_path, redis_url)
    yield w
    w.close()


def test_every_slot_runs_once_across_a_flip_and_a_flip_back(world: World) -> None:
    out = world.tmp / "side-effects.txt"
    command = SIDE_EFFECT + str(out)
    world.add_jobs(JobSpec(
        id=JOB,
        schedule=ScheduleSpec(dialect=Dialect.QUARTZ, expression="* * * * * ?", timezone="UTC"),
        handler=CommandHandler(command=command, user="root"),
    ))
    synced = world.cli("sync", "--json")
    assert synced.code == 0, synced.err
    world.worker()
    world.beat()
    loop = LegacyLoop(world, JOB, command)
    loop.start()
    try:
        wait_for("both paths to record slots", lambda: {r.path for r in world.runs(JOB)}
                 >= {"legacy", "celery"}, 60, logs=world.tail_logs)
        first = utc(math.floor(time.time()) + 2)
        to_celery = first + timedelta(seconds=LEAD)
        back = to_celery + timedelta(seconds=HELD)
        last = back + timedelta(seconds=AFTER - 1)

        flipped = flip(world, JOB, "celery", to_celery)
        assert flipped.code == 0, flipped.out + flipped.err
        assert flipped.json()["flips"][0]["boundary_utc"] == to_celery.isoformat()
        sleep_until(to_celery.timestamp() + 10)
        returned = flip(world, JOB, "legacy", back)
        assert returned.code == 0, returned.out + returned.err
        sleep_until(last.timestamp() + 1.5)
    finally:
        loop.finish()
    wait_for("the Celery side to catch up",
             lambda: any(r.slot > last and r.path == "celery" for r in world.runs(JOB))
             and world.queue_length() == 0, 60, logs=world.tail_logs)
    wait_for("every delivered run to finish", lambda: broker_idle(world.redis_url), 30,
             logs=world.tail_logs)

    assert not loop.late, f"the legacy loop itself fired late: {loop.late}"
    assert all(first.timestamp() + i in loop.fired
               for i in range(int((last - first).total_seconds()) + 1))
    assert {code for _, code in loop.statuses} == {0}, loop.statuses

    b = analyse_boundary(world, JOB, out, first, last, to_celery, back)
    summary = b.summary()
    assert summary["owned"] == {"legacy": LEAD + AFTER, "celery": HELD}, summary
    assert not b.missing and not b.doubles and not b.problems, summary
    assert not b.unmatched_lines, summary
    assert b.executed_once == len(b.slots), summary
    celery_slots = {s for s in b.slots if b.owner[s] == "celery"}
    legacy_after = {s for s in b.slots if s >= back}
    assert b.legacy_stand_downs == celery_slots, summary  # the shim stood down, nothing more
    assert b.celery_stand_downs >= legacy_after, summary  # handed back: Celery stands down
    assert {s for s in b.slots if s < to_celery} <= b.celery_observed, summary
    lines = out.read_text().splitlines()
    assert sum(line.startswith("celery ") for line in lines) == HELD  # never outside its window

    # the shadow report: exit 0, every slot of the window a match, stand-downs on both sides
    report = world.cli("shadow", "report", "--json", "--job", JOB,
                       "--since", iso(first - timedelta(seconds=1)), "--until", iso(last))
    assert report.code == 0, report.out[-3000:] + report.err
    [job] = report.json()["jobs"]
    assert job["expected_slots"] == len(b.slots) and job["unresolved"] == 0, job
    assert job["counts"]["match"] == len(b.slots), job["counts"]
    assert job["owner"] == "legacy"
    verdicts = {v.slot: v for v in shadow_verdicts(world, JOB, first - timedelta(seconds=1),
                                                   last)}
    assert set(verdicts) == set(b.slots)
    for slot, v in verdicts.items():
        assert v.verdict.value == "match", (iso(slot), v.verdict, v.detail)
        legacy, celery = v.legacy, v.celery
        if slot < to_celery:
            want = (("authoritative", "succeeded"), ("observe", "observed"))
        elif slot < back:
            want = (("stand-down", "stood-down"), ("authoritative", "succeeded"))
        else:
            want = (("authoritative", "succeeded"), ("stand-down", "stood-down"))
        got = ((legacy.role.value, legacy.status.value), (celery.role.value, celery.status.value))
        assert got == want, (iso(slot), got, want)
