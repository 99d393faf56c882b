"""bridge.run_job in a real Celery worker (prefork, 2 children) on a private Redis + SQLite.

At most one execution per slot through duplicates, a manual re-send and a SIGKILL mid-run;
bad messages are recorded ``rejected`` and the worker keeps serving; a warm shutdown interrupts
a running command and the retry finishes the slot; legacy-owned slots are only shadowed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from bridge.celery_app import make_app
from bridge.core.authority import AuthorityEvent, Owner, owner_at
from bridge.core.claims import AlreadyClaimed, Holder, LeaseTerms
from bridge.core.config import Settings
from bridge.core.errors import SpecError
from bridge.core.runs import Status
from bridge.core.spec import (
    CommandHandler,
    Dialect,
    JobSpec,
    LostPolicy,
    OverlapPolicy,
    Policies,
    RetryPolicy,
    ScheduleSpec,
    ShadowMode,
)
from bridge.store.db import Registry
from bridge.store.models import RunRow
from bridge.store.repos import AuthorityRepo, JobRepo
from bridge.store.runs import RunRepo
from legacy_wrappers.authoritative import acquire
from legacy_wrappers.claims import Claims, Lease
from legacy_wrappers.messages import REJECTED_SLOT, JobRequest, Rejection, parse_request
from legacy_wrappers.retry_policy import retry_delay, should_retry
from legacy_wrappers.tasks import TASK_NAME
from legacy_wrappers.worker_context import visibility_warnings
from tests.support import wait_for
from tests.support.services import broker_idle

CELERY = str(Path(sys.executable).with_name("celery"))
S1, S2, S3 = "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z", "2026-03-08T09:00:00Z"


def slot(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Harness:
    def __init__(self, tmp: Path, redis_url: str) -> None:
        self.tmp = tmp
        self.db_url = f"sqlite:///{tmp / 'registry.db'}"
        self.redis_url = redis_url
        self.registry = Registry(self.db_url)
        self.claims = Claims(self.registry)
        self.client: Celery = make_app(Settings(redis_url=redis_url, database_url=self.db_url))
        self.workers: list[Worker] = []

    def add_job(self, job_id: str, command: str, *, owner: Owner | None = Owner.CELERY,
                **policies: Any) -> None:
        spec = JobSpec(id=job_id, schedule=ScheduleSpec(dialect=Dialect.VIXIE,
                                                        expression="0 * * * *"),
                       handler=CommandHandler(command=command, user="root"),
                       policies=Policies(**policies))
        with self.registry.session() as s:
            JobRepo(s).upsert(spec)
            if owner is not None:
                AuthorityRepo(s).append(job_id, owner, effective_slot=None, actor="test",
                                        reason="worker test")

    def start_worker(self) -> Worker:
        n = len(self.workers)
        log = self.tmp / f"worker{n}.log"
        env = {**os.environ, "BRIDGE_REDIS_URL": self.redis_url,
               "BRIDGE_DATABASE_URL": self.db_url, "BRIDGE_WORKER_SHUTDOWN_GRACE": "2",
               "BRIDGE_VISIBILITY_TIMEOUT": "3600"}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [CELERY, "-A", "legacy_wrappers.tasks", "worker", "-P", "prefork", "-c", "2",
                 "-Q", "bridge", "-n", f"w{n}-{os.getpid()}@%h", "--without-gossip",
                 "--without-mingle", "-l", "INFO"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.tmp,
            )
        worker = Worker(proc, log)
        self.workers.append(worker)
        wait_for("the worker to be ready", lambda: "ready." in log.read_text(), 60)
        return worker

    def send(self, *args: Any, **kwargs: Any) -> None:
        self.client.send_task(TASK_NAME, args=list(args), kwargs=kwargs, queue="bridge")

    def runs(self, job_id: str) -> list[RunRow]:
        with self.registry.session() as s:
            return RunRepo(s).for_job(job_id)

    def all_runs(self) -> list[RunRow]:
        with self.registry.session() as s:
            return list(s.query(RunRow).order_by(RunRow.id))

    def close(self) -> None:
        for worker in self.workers:
            worker.stop(signal.SIGQUIT if worker.proc.poll() is None else signal.SIGTERM, 20)
        self.client.close()
        self.registry.dispose()


@pytest.fixture
def harness(tmp_path: Path, redis_url: str) -> Iterator[Harness]:
    h = Harness(tmp_path, redis_url)
    yield h
    h.close()
    for worker in h.workers:
        if worker.proc.returncode not in (0, None):
            print(worker.log.read_text()[-5000:])


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.slow(seconds=40)
@pytest.mark.integration
def test_each_slot_runs_once_through_duplicates_resends_and_a_sigkill(harness: Harness) -> None:
    out = harness.tmp / "out.txt"
    started = harness.tmp / "started.txt"
    harness.add_job("append-s1", f"echo {S1} >> {out}")
    harness.add_job("append-s2", f"echo go >> {started}; sleep 4; echo {S2} >> {out}",
                    on_lost=LostPolicy.RERUN)
    harness.start_worker()

    harness.send("append-s1", S1)
    harness.send("append-s1", S1)  # a duplicate delivery of the same slot
    wait_for("two s1 rows", lambda: len(harness.runs("append-s1")) == 2)
    harness.send("append-s1", S1)  # an operator's manual re-send
    wait_for("three s1 rows", lambda: len(harness.runs("append-s1")) == 3)
    s1 = harness.runs("append-s1")
    assert sorted(r.role for r in s1) == ["authoritative", "suppressed", "suppressed"]
    assert [r.status for r in s1 if r.role == "authoritative"] == ["succeeded"]
    assert all(r.error and r.error.startswith("already claimed by ") for r in s1
               if r.role == "suppressed")

    harness.send("append-s2", S2)
    wait_for("the s2 command to start", lambda: lines(started))
    claim = harness.claims.get("append-s2", slot(S2))
    assert claim is not None and claim.state == "running"
    child_pid = int(claim.holder.rsplit(":", 1)[1])
    os.kill(child_pid, signal.SIGKILL)  # the pool child dies mid-run
    time.sleep(5)
    assert S2 not in lines(out), "the killed run's command outlived its worker"
    harness.workers[0].stop()  # restart the worker while the redelivered slot waits
    harness.start_worker()
    wait_for("the taken-over s2 run", lambda: S2 in lines(out), 90)
    wait_for("nothing left to deliver", lambda: broker_idle(harness.redis_url), 30)
    assert lines(out) == [S1, S2]
    s2 = harness.runs("append-s2")
    done = [r for r in s2 if r.role == "authoritative"]
    assert [(r.status, r.attempts) for r in done] == [("interrupted", 1), ("succeeded", 2)]
    assert done[0].error and "on_lost=rerun" in done[0].error
    assert len(lines(started)) == 2


@pytest.mark.slow(seconds=40)
@pytest.mark.integration
def test_a_run_killed_mid_command_is_recorded_lost_and_never_rerun_by_default(
    harness: Harness, cli: Any
) -> None:
    """Issue 20: the command had started (its side effect may have happened) when its worker
    died; under the default ``on_lost=skip`` the takeover records the slot ``lost`` (outcome
    unknown) instead of running it again, and the claim ends ``lost`` for good."""
    out, started = harness.tmp / "out.txt", harness.tmp / "started.txt"
    harness.add_job("billing", f"echo go >> {started}; sleep 4; echo done >> {out}")
    harness.start_worker()
    harness.send("billing", S2)
    wait_for("the command to start", lambda: lines(started))
    claim = harness.claims.get("billing", slot(S2))
    assert claim is not None and claim.state == "running"
    os.kill(int(claim.holder.rsplit(":", 1)[1]), signal.SIGKILL)  # the pool child dies mid-run
    lost = wait_for("the lost record", lambda: [r for r in harness.runs("billing")
                                                 if r.status == "lost"], 90)
    wait_for("nothing left to deliver", lambda: broker_idle(harness.redis_url), 30)
    assert len(lines(started)) == 1 and lines(out) == []  # never started again
    [row] = lost
    assert (row.role, row.path, row.attempts) == ("authoritative", "celery", 1)
    assert row.error and row.error.startswith("outcome unknown")
    [stored] = [r for r in harness.all_runs() if r.job_id == "billing" and r.status == "lost"]
    assert stored.pid is not None and row.finished_at is not None  # pid: the group it checked
    final = harness.claims.get("billing", slot(S2))
    assert final is not None and (final.state, final.attempts) == ("lost", 2)
    harness.send("billing", S2)  # a later delivery (e.g. the broker's redelivery) is refused
    wait_for("the suppressed copy", lambda: any(r.status == "suppressed"
                                                for r in harness.runs("billing")))
    assert lines(out) == [] and len(lines(started)) == 1
    # an operator runs it deliberately (audited as trigger.rerun)
    env = {"BRIDGE_REDIS_URL": harness.redis_url, "BRIDGE_DATABASE_URL": harness.db_url}
    plain = cli("trigger", "billing", "--slot", S2, env=env)
    assert plain.code == 1 and "already ran (claim lost" in plain.err
    rerun = cli("trigger", "billing", "--slot", S2, "--rerun", "--reason", "checked", env=env)
    assert rerun.code == 0, rerun.err
    wait_for("the deliberate rerun", lambda: lines(out) == ["done"], 30)
    assert len(lines(started)) == 2


@pytest.mark.integration
def test_bad_messages_are_rejected_and_the_worker_keeps_serving(harness: Harness) -> None:
    out = harness.tmp / "out.txt"
    harness.add_job("good", f"echo {S1} >> {out}")
    harness.add_job("long", "true", timeout_seconds=7200)
    worker = harness.start_worker()
    wait_for("the visibility warning", lambda: "job long: timeout 7200 s exceeds the broker "
             "visibility timeout 3600 s" in worker.log.read_text(), 20)
    bad: list[tuple[tuple[Any, ...], dict[str, Any], str]] = [
        (("no-such-job", S1), {}, "unknown job id 'no-such-job'"),
        (("good", "2026-03-08 07:00"), {}, "malformed slot"),
        (("good", "2026-03-08T07:00:00"), {}, "malformed slot"),  # naive
        (("good", "2026-03-08T08:00:00+01:00"), {}, "malformed slot"),
        (("good", S1, "rm -rf /"), {}, "expected 2 arguments"),
        (("good", S1), {"command": "rm -rf /"}, "unexpected keyword arguments ['command']"),
        (("good", "x" * 5000), {}, "oversized arguments"),
    ]
    for args, kwargs, _ in bad:
        harness.send(*args, **kwargs)
    rows = wait_for("every rejection", lambda: (lambda r: r if len(r) == len(bad) else None)(
        [r for r in harness.all_runs() if r.status == "rejected"]))
    reasons = sorted(reason for _, _, reason in bad)
    matched = sorted(next(reason for reason in reasons if reason in (row.error or ""))
                     for row in rows)
    assert matched == reasons and all(row.role == "rejected" for row in rows)
    harness.send("good", S1)
    wait_for("the good run", lambda: lines(out) == [S1])
    assert harness.workers[0].proc.poll() is None


@pytest.mark.integration
def test_warm_shutdown_interrupts_the_command_and_the_retry_finishes_the_slot(
    harness: Harness,
) -> None:
    out, flag = harness.tmp / "out.txt", harness.tmp / "first-attempt"
    command = (f"if [ -e {flag} ]; then echo {S3} >> {out}; "
               f"else touch {flag}; sleep 60; echo never >> {out}; fi")
    harness.add_job("interruptible", command,
                    retry=RetryPolicy(max_retries=1, backoff_seconds=1, jitter=False))
    first = harness.start_worker()
    harness.send("interruptible", S3)
    wait_for("the first attempt", flag.exists)
    t0 = time.monotonic()
    first.stop(signal.SIGTERM)
    assert time.monotonic() - t0 < 20  # grace 2 s, not the command's 60 s
    harness.start_worker()
    wait_for("the retry", lambda: lines(out) == [S3])
    rows = wait_for("both rows", lambda: (lambda r: r if len(r) == 2 else None)(
        [r for r in harness.runs("interruptible") if r.role == "authoritative"]))
    assert [(r.status, r.attempts, r.task_state) for r in rows] == [
        ("interrupted", 1, "RETRY"), ("succeeded", 2, "SUCCESS")]


@pytest.mark.integration
def test_legacy_owned_slots_are_only_shadowed(harness: Harness) -> None:
    out = harness.tmp / "out.txt"
    harness.add_job("observed", f"echo real >> {out}", owner=None)
    harness.add_job("dry", f"echo real >> {out}", owner=Owner.LEGACY,
                    shadow_mode=ShadowMode.DRY_RUN)
    harness.add_job("forbid", f"echo forbid-$BRIDGE_SHADOW >> {out}", owner=Owner.LEGACY,
                    shadow_mode=ShadowMode.DRY_RUN, overlap=OverlapPolicy.FORBID)
    harness.start_worker()
    for job in ("observed", "dry", "forbid"):
        harness.send(job, S1)
    harness.send("observed", S1)  # a duplicate firing of a shadowed slot
    wait_for("four rows", lambda: len(harness.all_runs()) == 4)
    rows = {(r.job_id, r.role, r.status) for r in harness.all_runs()}
    assert rows == {("observed", "observe", "observed"), ("observed", "suppressed", "suppressed"),
                    ("dry", "shadow", "succeeded"), ("forbid", "shadow", "succeeded")}
    assert sorted(lines(out)) == ["forbid-1", "real"]  # dry-run = real command + BRIDGE_SHADOW=1
    assert harness.claims.get("dry", slot(S1)) is None  # shadow never claims


@pytest.mark.integration
def test_forbid_skips_a_slot_while_the_previous_one_still_runs(harness: Harness) -> None:
    out = harness.tmp / "out.txt"
    harness.add_job("exclusive", f"echo run >> {out}; sleep 4", overlap=OverlapPolicy.FORBID)
    harness.start_worker()
    harness.send("exclusive", S1)
    wait_for("the first slot to run", lambda: lines(out))
    harness.send("exclusive", S2)
    wait_for("the skip", lambda: any(r.status == "skipped" for r in harness.runs("exclusive")))
    harness.send("exclusive", S2)  # the skip is sticky: a re-send does not run the slot
    wait_for("three rows, the first run finished", lambda: len(harness.runs("exclusive")) == 3
             and "running" not in {r.status for r in harness.runs("exclusive")})
    by_slot = {(r.slot, r.role, r.status, r.error) for r in harness.runs("exclusive")}
    assert by_slot == {
        (slot(S1), "authoritative", "succeeded", None),
        (slot(S2), "authoritative", "skipped", "overlap: previous slot still running"),
        (slot(S2), "suppressed", "suppressed", by_slot_error(harness, "exclusive", S2)),
    }
    assert lines(out) == ["run"]


def by_slot_error(harness: Harness, job_id: str, text: str) -> str:
    claim = harness.claims.get(job_id, slot(text))
    assert claim is not None and claim.state == "skipped"
    return f"already claimed by {claim.holder}"


# --- the pure core of the task -------------------------------------------------------------------


def test_valid_message_parses_to_an_aware_utc_slot() -> None:
    assert parse_request(["job-1", S1], {}) == JobRequest("job-1", slot(S1))
    assert parse_request(["job-1", "2026-03-08T07:00:00+00:00"], {}) == JobRequest(
        "job-1", slot(S1))


@pytest.mark.parametrize(("args", "kwargs", "reason"), [
    ([], {}, "expected 2 arguments (job_id, slot), got 0"),
    (["j", S1, "x"], {}, "expected 2 arguments (job_id, slot), got 3"),
    (["j", S1], {"slot": S1}, "unexpected keyword arguments ['slot']"),
    (["bad id!", S1], {}, "malformed job id 'bad id!'"),
    ([7, S1], {}, "malformed job id 7"),
    (["j", "2026-03-08T07:00:00"], {}, "malformed slot '2026-03-08T07:00:00'"),
    (["j", "2026-03-08T07:00:00.5Z"], {}, "malformed slot"),
    (["j", "2026-03-08T02:00:00-05:00"], {}, "malformed slot"),
    (["j", "2026-02-30T07:00:00Z"], {}, "malformed slot '2026-02-30T07:00:00Z': day is out"),
    (["j", 1772953200], {}, "slot must be an ISO-8601 string, got int"),
    (["j", "9" * 600], {}, "oversized arguments"),
])
def test_malformed_messages_are_rejections_with_a_reason(
    args: list[Any], kwargs: dict[str, Any], reason: str
) -> None:
    result = parse_request(args, kwargs)
    assert isinstance(result, Rejection) and result.reason.startswith(reason)
    readable = len(args) > 1 and args[1] == S1
    assert result.slot == (slot(S1) if readable else REJECTED_SLOT)


def event(owner: Owner, effective: str | None) -> AuthorityEvent:
    return AuthorityEvent("j", None if effective is None else slot(effective), owner, "t", None,
                          False, datetime.now(UTC))


def test_owner_is_the_last_event_effective_at_or_before_the_slot() -> None:
    assert owner_at([], slot(S1)) is Owner.LEGACY
    history = [event(Owner.LEGACY, None), event(Owner.CELERY, S2), event(Owner.LEGACY, S3)]
    assert owner_at(history, slot(S1)) is Owner.LEGACY
    assert owner_at(history, slot(S2)) is Owner.CELERY
    assert owner_at(history, slot(S3)) is Owner.LEGACY
    assert owner_at([event(Owner.CELERY, None)], slot(S1)) is Owner.CELERY


def test_retry_backoff_doubles_caps_and_jitters() -> None:
    policy = RetryPolicy(max_retries=5, backoff_seconds=10, backoff_max_seconds=60, jitter=False)
    assert [retry_delay(policy, n, 0.3) for n in (1, 2, 3, 4)] == [10, 20, 40, 60]
    jittered = RetryPolicy(max_retries=5, backoff_seconds=10, jitter=True)
    assert retry_delay(jittered, 2, 0.0) == 10 and retry_delay(jittered, 2, 1.0) == 20


def test_retries_follow_the_policy_and_never_follow_a_lost_lease() -> None:
    policy = RetryPolicy(max_retries=2)
    assert should_retry(Status.FAILED, 1, policy, False)
    assert should_retry(Status.INTERRUPTED, 2, policy, False)
    assert not should_retry(Status.TIMED_OUT, 3, policy, False)
    assert not should_retry(Status.FAILED, 1, policy, True)
    assert not should_retry(Status.ERROR, 1, policy, False)
    assert not should_retry(Status.SUCCEEDED, 1, policy, False)


def test_long_timeouts_and_replace_overlap_are_reported() -> None:
    def spec(**policies: Any) -> JobSpec:
        return JobSpec(id="j", schedule=ScheduleSpec(dialect=Dialect.VIXIE,
                                                     expression="* * * * *"),
                       handler=CommandHandler(command="true"), policies=Policies(**policies))

    assert visibility_warnings([spec(timeout_seconds=100), spec()], 3600) == []
    assert len(visibility_warnings([spec(timeout_seconds=4000)], 3600)) == 1
    with pytest.raises(SpecError, match="overlap policy 'replace': use 'allow' or 'forbid'"):
        spec(overlap="replace")


def short_claims(tmp_path: Path) -> Claims:
    terms = LeaseTerms(duration=timedelta(seconds=2), renew_every=timedelta(seconds=0.3))
    return Claims(Registry(f"sqlite:///{tmp_path / 'claims.db'}"), terms=terms)


@pytest.mark.integration  # waits out a real 2 s lease
def test_a_redelivery_waits_out_its_dead_runs_lease_then_takes_over(tmp_path: Path) -> None:
    claims = short_claims(tmp_path)
    req = JobRequest("job", slot(S1))
    dead = claims.claim("job", slot(S1), Holder("task-1", "killed-worker:1"))
    assert isinstance(dead, Lease)  # never renewed again: its worker was SIGKILLed
    t0 = time.monotonic()
    result = acquire(claims, req, Holder("task-1", "worker:2"), None)
    assert isinstance(result, Lease) and result.attempts == 2
    assert 1.5 < time.monotonic() - t0 < 6


def test_a_duplicate_of_a_live_run_is_suppressed_once_a_renewal_is_seen(tmp_path: Path) -> None:
    claims = short_claims(tmp_path)
    req = JobRequest("job", slot(S1))
    alive = claims.claim("job", slot(S1), Holder("task-1", "worker:1"))
    assert isinstance(alive, Lease)
    with alive:
        result = acquire(claims, req, Holder("task-1", "worker:2"), None)
        assert isinstance(result, AlreadyClaimed) and result.live
    other = acquire(claims, JobRequest("job", slot(S1)), Holder("task-2", "w"), None)
    assert isinstance(other, AlreadyClaimed)  # another lineage is refused at once
