"""Which slots a worker runs (issue 14.3) and what Celery does after a rollback (issue 14.4).

A hand-made message for a future slot or for an instant off the job's schedule is refused
(a ``rejected`` row, nothing runs, no claim taken, so beat's own firing later still runs),
unless an audit record (``bridge trigger`` / backfill / repair) names its task id. After
``authority flip --to legacy`` an ``execute``-mode job is shadowed again on the Celery side (it
was only stood down before), while an ``observe`` job still records stand-downs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.core.spec import CommandHandler, Dialect, JobSpec, ScheduleSpec
from bridge.store.audit import AuditRepo
from legacy_wrappers.admission import slot_problem
from tests.support import wait_for
from tests.wrappers.test_task_worker import S1, S2, S3, TASK_NAME, Harness, lines, slot


def test_future_and_off_schedule_slots_are_problems_on_schedule_ones_are_not() -> None:
    spec = JobSpec(id="hourly", schedule=ScheduleSpec(dialect=Dialect.VIXIE,
                                                      expression="0 * * * *"),
                   handler=CommandHandler(command="true"))
    now = datetime(2026, 12, 4, 16, 6, tzinfo=UTC)
    assert slot_problem(spec, datetime(2026, 12, 4, 16, tzinfo=UTC), now) is None
    assert slot_problem(spec, datetime(2026, 12, 4, 17, tzinfo=UTC), now + timedelta(
        minutes=53, seconds=30)) is None  # 30 s of clock skew is tolerated
    future = slot_problem(spec, datetime(2026, 12, 4, 17, tzinfo=UTC), now)
    assert future is not None and "in the future" in future
    far = slot_problem(spec, datetime(2099, 1, 1, tzinfo=UTC), now)
    assert far is not None and "in the future" in far
    off = slot_problem(spec, datetime(2026, 12, 4, 15, 30, tzinfo=UTC), now)
    assert off is not None and "not on the job's schedule" in off


@pytest.fixture
def harness(tmp_path: Path, redis_url: str) -> Iterator[Harness]:
    h = Harness(tmp_path, redis_url)
    yield h
    h.close()


@pytest.mark.integration
def test_hand_made_future_or_off_schedule_slots_are_refused_unless_audited(
    harness: Harness,
) -> None:
    out = harness.tmp / "out.txt"
    harness.add_job("hourly", f"echo $(date +%s) >> {out}")
    harness.add_job("exec-shadow", f"echo shadow >> {harness.tmp / 'shadow.txt'}",
                    owner=None, shadow_mode="execute")
    harness.add_job("observe-only", "true", owner=None)
    from bridge.core.authority import Owner
    from bridge.store.repos import AuthorityRepo

    with harness.registry.session() as s:
        for job_id in ("exec-shadow", "observe-only"):  # Celery from S1, back to legacy at S2
            AuthorityRepo(s).append(job_id, Owner.CELERY, effective_slot=slot(S1),
                                    actor="test", reason="flip")
            AuthorityRepo(s).append(job_id, Owner.LEGACY, effective_slot=slot(S2),
                                    actor="test", reason="rollback")
    harness.start_worker()
    future = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:00:00Z")
    off = "2026-03-08T07:30:00Z"
    harness.send("hourly", future)
    harness.send("hourly", "2099-01-01T00:00:00Z")
    harness.send("hourly", off)
    rejected = wait_for("three rejections", lambda: (lambda r: r if len(r) == 3 else None)(
        [r for r in harness.runs("hourly") if r.status == "rejected"]))
    errors = sorted(r.error or "" for r in rejected)
    assert sum("in the future" in e for e in errors) == 2
    assert sum("not on the job's schedule" in e for e in errors) == 1
    assert lines(out) == []
    assert harness.claims.get("hourly", slot(future)) is None  # beat's firing still runs later

    task_id = str(uuid.uuid4())  # a deliberate, audited send of the off-schedule instant
    with harness.registry.session() as s:
        AuditRepo(s).append("trigger", actor="test", job_id="hourly", reason="backfill test",
                            after={"slot": off, "task_id": task_id})
    harness.client.send_task(TASK_NAME, args=["hourly", off], queue="bridge", task_id=task_id)
    wait_for("the audited run", lambda: len(lines(out)) == 1)

    # after the rollback: execute mode shadows again, observe mode stands down
    harness.send("exec-shadow", S3)
    harness.send("observe-only", S3)
    wait_for("the shadow run", lambda: lines(harness.tmp / "shadow.txt") == ["shadow"])
    wait_for("the stand-down", lambda: harness.runs("observe-only"))
    [shadow] = harness.runs("exec-shadow")
    assert (shadow.role, shadow.status) == ("shadow", "succeeded")
    [down] = harness.runs("observe-only")
    assert (down.role, down.status) == ("stand-down", "stood-down")
