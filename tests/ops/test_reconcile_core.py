"""bridge.core.reconcile (pure judging): one table row per finding kind (values in, findings
out)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.cli.reconcile_cmd import parse_since
from bridge.core.authority import AuthorityEvent, Owner
from bridge.core.jobs import StoredJob
from bridge.core.reconcile import (
    ClaimFact,
    Finding,
    ReconcileInputs,
    RunFact,
    Window,
    plan_repairs,
    reconcile,
)
from bridge.core.spec import CommandHandler, Dialect, JobSpec, Policies, RetryPolicy, ScheduleSpec

T0 = datetime(2026, 3, 8, 6, 30, tzinfo=UTC)
S = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # the one hourly slot in the window
NOW = S + timedelta(minutes=20)
WINDOW = Window(T0, NOW)
GRACE, TOL = timedelta(minutes=5), timedelta(seconds=60)


def job(job_id: str = "j", *, paused: bool = False, **policies: object) -> StoredJob:
    spec = JobSpec(id=job_id, schedule=ScheduleSpec(dialect=Dialect.VIXIE, expression="0 * * * *"),
                   handler=CommandHandler(command="true", user="root"),
                   policies=Policies(**policies))  # type: ignore[arg-type]
    return StoredJob(spec, "h", paused, "incident 42" if paused else None, T0, T0)


def owned(owner: Owner, since: datetime | None = None) -> dict[str, list[AuthorityEvent]]:
    events = [AuthorityEvent("j", None, Owner.LEGACY, "t", None, False, T0)]
    if owner is Owner.CELERY:
        events.append(AuthorityEvent("j", since, Owner.CELERY, "t", None, False, T0))
    return {"j": events}


def run(status: str = "succeeded", *, path: str = "celery", role: str = "authoritative",
        started: float | None = 2.0, attempts: int = 1, error: str | None = None) -> RunFact:
    at = S + timedelta(seconds=started) if started is not None else None
    return RunFact("j", S, path, role, status, at, attempts, error)


def claim(state: str, *, expires_in: float = 30.0, attempts: int = 1) -> ClaimFact:
    return ClaimFact("j", S, "task-1@host:1", state, attempts, NOW + timedelta(seconds=expires_in))


def kinds(findings: list[Finding]) -> list[str]:
    return [f.kind.value for f in findings]


CASES = [
    # (name, job, owner, runs, claims, expected kinds)
    ("clean success", job(), Owner.CELERY, [run()], [claim("succeeded", expires_in=-900)], []),
    ("nothing on record", job(), Owner.CELERY, [], [], ["missed"]),
    ("legacy-owned slot is the legacy's", job(), Owner.LEGACY, [], [], []),
    ("failed, retries exhausted", job(), Owner.CELERY, [run("failed", error="exit 1")],
     [claim("failed", expires_in=-900)], ["failed"]),
    ("failed, a retry is still due", job(retry=RetryPolicy(max_retries=2)), Owner.CELERY,
     [run("failed")], [claim("failed", expires_in=-900)], []),
    ("failed twice then succeeded", job(retry=RetryPolicy(max_retries=2)), Owner.CELERY,
     [run("failed"), run("succeeded", attempts=2)], [claim("succeeded", attempts=2)], []),
    ("lease expired mid-run", job(), Owner.CELERY, [], [claim("running", expires_in=-60)],
     ["stuck"]),
    ("abandoned claim", job(), Owner.CELERY, [], [claim("abandoned", expires_in=-60)], ["stuck"]),
    ("live lease is not stuck", job(), Owner.CELERY, [], [claim("running")], []),
    ("live lease past the job timeout", job(timeout_seconds=60), Owner.CELERY, [],
     [claim("running")], ["stuck"]),
    ("started late", job(), Owner.CELERY, [run(started=600.0)], [], ["late"]),
    ("two successes", job(), Owner.CELERY, [run(), run()], [], ["duplicate"]),
    ("both paths executed", job(), Owner.CELERY, [run(), run(path="legacy")], [],
     ["duplicate"]),
    ("duplicate on a legacy-owned slot is loud too", job(), Owner.LEGACY,
     [run(path="legacy"), run(path="legacy")], [], ["duplicate"]),
    ("paused by the scheduler", job(), Owner.CELERY,
     [run("skipped", role="scheduler", started=None, error="paused")], [], ["skipped"]),
    ("overlap forbid", job(), Owner.CELERY,
     [run("skipped", started=None, error="overlap: previous slot still running")],
     [claim("skipped", expires_in=-900)], ["skipped"]),
    ("misfire skip", job(), Owner.CELERY,
     [run("missed", role="scheduler", started=None, error="misfire skip: late by 90s")], [],
     ["skipped"]),
    ("paused job with no record", job(paused=True), Owner.CELERY, [], [], ["skipped"]),
    ("suppressed duplicate alone is still missed", job(), Owner.CELERY,
     [run("suppressed", role="suppressed", started=None)], [], ["missed"]),
]


@pytest.mark.parametrize(("name", "j", "owner", "runs", "claims", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_each_finding_kind(name: str, j: StoredJob, owner: Owner, runs: list[RunFact],
                           claims: list[ClaimFact], expected: list[str]) -> None:
    found = reconcile([j], owned(owner), runs, claims, WINDOW, NOW, GRACE, TOL)
    assert kinds(found) == expected, name
    assert all(f.slot == S and f.job_id == "j" for f in found)


def test_a_slot_inside_the_grace_is_pending_not_missed() -> None:
    assert reconcile([job()], owned(Owner.CELERY), [], [], WINDOW, S + timedelta(minutes=2),
                     GRACE, TOL) == []


def test_only_slots_from_the_flip_on_are_celerys() -> None:
    window = Window(S - timedelta(hours=3), NOW)
    found = reconcile([job()], owned(Owner.CELERY, since=S - timedelta(hours=1)), [], [],
                      window, NOW, GRACE, TOL)
    assert [f.slot for f in found] == [S - timedelta(hours=1), S]


def test_skipped_carries_the_reason_and_missed_is_repairable() -> None:
    skipped = reconcile([job(paused=True)], owned(Owner.CELERY), [], [], WINDOW, NOW, GRACE, TOL)
    assert skipped[0].detail == "job is paused: incident 42" and not skipped[0].repairable
    missed = reconcile([job()], owned(Owner.CELERY), [], [], WINDOW, NOW, GRACE, TOL)
    assert missed[0].repairable and missed[0].to_json()["slot"] == "2026-03-08T07:00:00Z"


def test_jitter_widens_the_late_tolerance() -> None:
    assert reconcile([job(jitter_seconds=900)], owned(Owner.CELERY), [run(started=600.0)], [],
                     WINDOW, NOW, GRACE, TOL) == []


def test_a_recent_repair_is_not_sent_again() -> None:
    missed = reconcile([job()], owned(Owner.CELERY), [], [], WINDOW, NOW, GRACE, TOL)
    inputs = ReconcileInputs([job()], owned(Owner.CELERY), [], [], {("j", S): NOW})
    [(_f, queue, blocked)] = plan_repairs(missed, inputs, NOW, timedelta(minutes=10))
    assert queue == "bridge" and blocked is not None and "already sent" in blocked
    later_at = NOW + timedelta(hours=1)
    [(_, _, later)] = plan_repairs(missed, inputs, later_at, timedelta(minutes=10))
    assert later is None


def test_since_accepts_durations_and_instants() -> None:
    assert parse_since("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_since("2026-03-08T06:00:00Z", NOW) == datetime(2026, 3, 8, 6, tzinfo=UTC)
    with pytest.raises(ValueError, match="--since"):
        parse_since("yesterday", NOW)


def test_a_repaired_slot_is_not_reported_late() -> None:
    late_run = [run(started=900.0)]
    assert kinds(reconcile([job()], owned(Owner.CELERY), late_run, [], WINDOW, NOW, GRACE,
                           TOL)) == ["late"]
    assert reconcile([job()], owned(Owner.CELERY), late_run, [], WINDOW, NOW, GRACE, TOL,
                     repaired={("j", S)}) == []


def test_a_dead_holder_is_stuck_but_repairable_only_after_its_lease() -> None:
    alive_lease = ClaimFact("j", S, "t@h:1", "running", 1, NOW + timedelta(seconds=20),
                            holder_gone=True)
    [f] = reconcile([job()], owned(Owner.CELERY), [], [alive_lease], WINDOW, NOW, GRACE, TOL)
    assert f.kind.value == "stuck" and not f.repairable and "gone" in f.detail
    [g] = reconcile([job()], owned(Owner.CELERY), [], [alive_lease], WINDOW,
                    NOW + timedelta(seconds=21), GRACE, TOL)
    assert g.kind.value == "stuck" and g.repairable


@pytest.mark.integration
def test_holder_gone_only_for_a_dead_pid_on_this_host() -> None:
    import os
    import socket
    import subprocess

    from bridge.adapters.processes import holder_gone

    finished = subprocess.Popen(["true"])
    finished.wait()  # reaped: its pid names no process
    host = socket.gethostname()
    assert holder_gone(f"task@{host}:{finished.pid}")
    assert not holder_gone(f"task@{host}:{os.getpid()}")
    assert not holder_gone(f"task@elsewhere:{finished.pid}")
    assert not holder_gone("no-instance")


def test_a_lost_slot_is_its_own_finding_never_repaired_and_not_missed() -> None:
    note = "outcome unknown: holder t@h:1 died after the command started"
    found = reconcile([job()], owned(Owner.CELERY), [run("lost", error=note)],
                      [claim("lost", expires_in=-900, attempts=2)], WINDOW, NOW, GRACE, TOL)
    assert [(f.kind.value, f.repairable, f.detail) for f in found] == [("lost", False, note)]
    from bridge.ops.health import finding_alert

    assert finding_alert(found[0], NOW).severity.value == "critical"


def test_a_dead_holder_is_reported_as_soon_as_its_lease_expired_even_inside_the_grace() -> None:
    just_now = S + timedelta(seconds=45)  # the slot is 45 s old: well inside the 5 min grace
    expired = ClaimFact("j", S, "t@h:1", "running", 1, S + timedelta(seconds=40))
    [f] = reconcile([job()], owned(Owner.CELERY), [], [expired], WINDOW, just_now, GRACE, TOL)
    assert f.kind.value == "stuck" and f.repairable
    live = ClaimFact("j", S, "t@h:1", "running", 1, S + timedelta(seconds=60))
    assert reconcile([job()], owned(Owner.CELERY), [], [live], WINDOW, just_now, GRACE,
                     TOL) == []


def test_the_health_task_honours_an_alert_only_repair_policy() -> None:
    j = job(repair="alert-only")
    missed = reconcile([j], owned(Owner.CELERY), [], [], WINDOW, NOW, GRACE, TOL)
    inputs = ReconcileInputs([j], owned(Owner.CELERY), [], [], {})
    [(_, _, blocked)] = plan_repairs(missed, inputs, NOW, timedelta(minutes=10),
                                     honour_policy=True)
    assert blocked is not None and "alert-only" in blocked
    [(_, _, manual)] = plan_repairs(missed, inputs, NOW, timedelta(minutes=10))
    assert manual is None  # `bridge reconcile --repair` is an operator's explicit act
