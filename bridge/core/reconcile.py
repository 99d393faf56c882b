"""Reconciliation's judging: what should have run on the Celery side, and what did (pure).

:func:`reconcile` takes values (jobs, authority histories, runs on record, claims, a window, the
clock reading, a grace and a tolerance) and returns one :class:`Finding` per slot that needs
attention; :func:`plan_repairs` says which findings to re-send. No SQL, no processes, no clock:
:mod:`bridge.store.reconcile_facts` reads the facts, :mod:`bridge.adapters.processes` tells
whether a claim's holder is gone, :mod:`bridge.services.reconcile` runs the check and sends
the repairs.

Which slots count. For every registered, mapped job the expected slots of ``(since, until]``
come from the job's own dialect evaluator; a slot is *Celery's responsibility* only when the
authority history says Celery owns it (legacy-owned slots are the legacy's, and the shadow
comparator judges them). Slots younger than ``grace`` are pending and never reported. Slots on
record that the schedule does not contain (manual sends) are checked for duplicates only.

Finding kinds (:class:`Kind`, stored legibly):

* ``missed``: no authoritative execution, no claim and no scheduler record after the grace.
  Repairable.
* ``stuck``: a ``running`` claim whose lease expired (the holder is gone) or an ``abandoned``
  one: repairable, the claim allows a takeover. Reported as soon as the lease expired (30 s
  without renewal), without waiting for the grace: the repair's takeover then settles the dead
  holder's run by the job's ``on_lost`` policy (:mod:`legacy_wrappers.takeover`). Reported
  after the grace but not yet repairable (the claim refuses while the lease is alive): a live
  lease whose holder process is known dead (same host, pid gone) and a live lease held past the
  job's timeout.
* ``failed``: the slot's executions failed and the retry budget is spent.
* ``late``: the first execution started more than ``tolerance`` (+ the job's jitter) after the
  slot (not reported for a slot a repair re-sent).
* ``duplicate``: more than one authoritative execution of one slot (two successes, two rows of
  the same attempt, or executions from both paths). Must never happen: loud, whoever owns it.
* ``lost``: the holder died after the command started and before its outcome was recorded, and
  the job's ``on_lost`` is ``skip``: the slot is recorded ``lost`` ("outcome unknown"), alerted,
  never repaired automatically (``bridge trigger JOB --slot S --rerun --reason`` runs it).
* ``skipped``: the slot was declined by policy (paused, overlap forbid, misfire skip); the
  reason comes from the record (or the job's pause reason).

Repairs (:func:`bridge.services.reconcile.repair`): each repairable finding is re-sent as
``bridge.run_job(job_id, slot)`` to the job's queue; the task claims ``(job, slot)`` first, so
a slot that actually ran is never run again (a late repair of a slot that completed meanwhile is
recorded ``suppressed``). Every repair is appended to the audit log. A slot repaired less
than ``cooldown`` ago is not re-sent (its repair is presumably queued).
The periodic health task honours each job's ``repair`` policy (``alert-only`` jobs are only
alerted); ``bridge reconcile --repair`` is an operator's explicit act and repairs every job.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from bridge.core.authority import AuthorityEvent, Owner, owner_at
from bridge.core.dispatch import slot_iso
from bridge.core.errors import ScheduleError
from bridge.core.jobs import StoredJob
from bridge.core.placement import job_queue
from bridge.core.schedules import compile_schedule, slots_between

MAX_SLOTS_PER_JOB = 10_000  # a window never expands one job into more slots than this
EXECUTED = frozenset({"succeeded", "failed", "timed_out", "interrupted", "error"})
FAILED = frozenset({"failed", "timed_out", "interrupted", "error"})
DECLINED = frozenset({"skipped", "missed"})


class Kind(StrEnum):
    MISSED = "missed"
    FAILED = "failed"
    STUCK = "stuck"
    LATE = "late"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"
    LOST = "lost"


REPAIRABLE = frozenset({Kind.MISSED, Kind.STUCK})


@dataclass(frozen=True)
class Window:
    """Slots ``s`` with ``since < s <= until``."""

    since: datetime
    until: datetime


@dataclass(frozen=True)
class RunFact:
    """What reconciliation needs of one ``runs`` row."""

    job_id: str
    slot: datetime
    path: str
    role: str
    status: str
    started_at: datetime | None = None
    attempts: int = 1
    error: str | None = None


@dataclass(frozen=True)
class ClaimFact:
    """What reconciliation needs of one ``claims`` row."""

    job_id: str
    slot: datetime
    holder: str
    state: str
    attempts: int
    expires_at: datetime
    holder_gone: bool = False  # the holder's process is known to be dead (same host, no pid)


@dataclass(frozen=True)
class Finding:
    kind: Kind
    job_id: str
    slot: datetime
    detail: str
    repairable: bool = False
    lag_seconds: float | None = None
    attempts: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "job_id": self.job_id,
            "slot": slot_iso(self.slot),
            "detail": self.detail,
            "repairable": self.repairable,
            "lag_seconds": self.lag_seconds,
            "attempts": self.attempts,
        }

    @property
    def key(self) -> str:
        """Stable identity of this finding (alert de-duplication)."""
        return f"{self.kind.value}|{self.job_id}|{slot_iso(self.slot)}"


@dataclass(frozen=True)
class ReconcileInputs:
    jobs: Sequence[StoredJob]
    histories: Mapping[str, Sequence[AuthorityEvent]]
    runs: Sequence[RunFact]
    claims: Sequence[ClaimFact]
    repaired: Mapping[tuple[str, datetime], datetime] = field(default_factory=dict)


def reconcile(
    jobs: Iterable[StoredJob],
    histories: Mapping[str, Sequence[AuthorityEvent]],
    runs: Iterable[RunFact],
    claims: Iterable[ClaimFact],
    window: Window,
    now: datetime,
    grace: timedelta,
    tolerance: timedelta,
    repaired: Container[tuple[str, datetime]] = (),
) -> list[Finding]:
    """Every finding of the window, ordered by job then slot (pure; see the module doc).

    ``repaired`` names ``(job, slot)`` pairs re-sent by a repair: their run is late by
    construction, so it is not reported ``late`` again."""
    runs_by = _group(runs)
    claims_by = {(c.job_id, c.slot): c for c in claims}
    out: list[Finding] = []
    for job in jobs:
        if not job.spec.mapped:
            continue
        history = histories.get(job.id, ())
        expected = set(slots_in_window(job, window))
        recorded = {slot for (jid, slot) in runs_by if jid == job.id}
        for slot in sorted(expected | recorded):
            rows = runs_by.get((job.id, slot), [])
            claim = claims_by.get((job.id, slot))
            found = findings_for_slot(job, history, slot, rows, claim, slot in expected, now,
                                      grace, tolerance)
            if (job.id, slot) in repaired:
                found = [f for f in found if f.kind is not Kind.LATE]
            out.extend(found)
    return out


def slots_in_window(job: StoredJob, window: Window) -> list[datetime]:
    """The job's slots in the window (bounded); a schedule the bridge cannot evaluate: none."""
    try:
        ev = compile_schedule(job.spec.schedule)
    except ScheduleError:
        return []
    out = []
    for slot in slots_between(ev, window.since, window.until):
        out.append(slot)
        if len(out) >= MAX_SLOTS_PER_JOB:
            break
    return out


def _group(runs: Iterable[RunFact]) -> dict[tuple[str, datetime], list[RunFact]]:
    out: dict[tuple[str, datetime], list[RunFact]] = {}
    for run in runs:
        out.setdefault((run.job_id, run.slot), []).append(run)
    return out


def findings_for_slot(
    job: StoredJob,
    history: Sequence[AuthorityEvent],
    slot: datetime,
    rows: Sequence[RunFact],
    claim: ClaimFact | None,
    expected: bool,
    now: datetime,
    grace: timedelta,
    tolerance: timedelta,
) -> list[Finding]:
    """The findings of one slot of one job."""
    executions = [r for r in rows if r.role == "authoritative" and r.status in EXECUTED]
    duplicate = duplicate_detail(executions)
    if duplicate is not None:
        return [Finding(Kind.DUPLICATE, job.id, slot, duplicate,
                        attempts=len(executions))]
    if not expected or owner_at(history, slot) is not Owner.CELERY:
        return []
    stuck = stuck_finding(job, slot, claim, now, grace)
    if stuck is not None and (stuck.repairable or slot + grace <= now):
        return [stuck]  # a dead holder is reported as soon as its lease expired
    lost = [r for r in rows if r.path == "celery" and r.role == "authoritative"
            and r.status == "lost"]
    succeeded = any(r.path == "celery" and r.status == "succeeded" for r in executions)
    if not succeeded and (lost or (claim is not None and claim.state == "lost")):
        detail = lost[0].error if lost and lost[0].error else "outcome unknown"
        return [Finding(Kind.LOST, job.id, slot, detail or "outcome unknown",
                        attempts=claim.attempts if claim else None)]
    if slot + grace > now:
        return []
    celery = [r for r in executions if r.path == "celery"]
    if celery:
        return outcome_findings(job, slot, celery, claim, tolerance)
    if claim is not None and claim.state in ("succeeded", "running", "deferred"):
        return []  # a run is under way or finished; its record may still be on its way
    declined = [r for r in rows if r.path == "celery" and r.status in DECLINED]
    if declined or (claim is not None and claim.state == "skipped"):
        reason = declined[0].error if declined and declined[0].error else "declined by policy"
        return [Finding(Kind.SKIPPED, job.id, slot, reason)]
    if job.paused:
        return [Finding(Kind.SKIPPED, job.id, slot,
                        f"job is paused: {job.paused_reason or 'no reason given'}")]
    late = (now - slot).total_seconds()
    return [Finding(Kind.MISSED, job.id, slot,
                    f"no authoritative run {int(late)}s after the slot", repairable=True,
                    lag_seconds=late)]


def duplicate_detail(executions: Sequence[RunFact]) -> str | None:
    """Why these authoritative executions of one slot are more than one, or None."""
    if len(executions) < 2:
        return None
    paths = {r.path for r in executions}
    if len(paths) > 1:
        return "executed by both paths: " + ", ".join(sorted(paths))
    wins = sum(1 for r in executions if r.status == "succeeded")
    if wins > 1:
        return f"{wins} successful authoritative executions"
    attempts = [r.attempts for r in executions]
    if len(set(attempts)) < len(attempts):
        return f"{len(executions)} executions share an attempt number ({sorted(attempts)})"
    return None  # retries of one lineage: one row per attempt


def stuck_finding(
    job: StoredJob, slot: datetime, claim: ClaimFact | None, now: datetime, grace: timedelta
) -> Finding | None:
    if claim is None:
        return None
    if claim.state == "abandoned" or (claim.state == "running" and claim.expires_at < now):
        ago = int((now - claim.expires_at).total_seconds())
        return Finding(Kind.STUCK, job.id, slot,
                       f"claim held by {claim.holder} expired {ago}s ago without completion",
                       repairable=True, attempts=claim.attempts)
    if claim.state == "running" and claim.holder_gone:
        left = int((claim.expires_at - now).total_seconds())
        return Finding(Kind.STUCK, job.id, slot,
                       f"claim holder {claim.holder} is gone; its lease runs out in {left}s, "
                       "repairable then", attempts=claim.attempts)
    timeout = job.spec.policies.timeout_seconds
    if claim.state == "running" and timeout is not None:
        over = (now - slot).total_seconds() - timeout - grace.total_seconds()
        if over > 0:
            return Finding(Kind.STUCK, job.id, slot,
                           f"claim held by {claim.holder} past the job's {timeout}s timeout "
                           "(lease still renewed)", attempts=claim.attempts)
    return None


def outcome_findings(
    job: StoredJob,
    slot: datetime,
    executions: Sequence[RunFact],
    claim: ClaimFact | None,
    tolerance: timedelta,
) -> list[Finding]:
    out: list[Finding] = []
    last = max(executions, key=lambda r: r.attempts)
    budget = job.spec.policies.retry.max_retries + 1
    settled = claim is None or claim.state not in ("running",)
    if last.status in FAILED and settled and last.attempts >= budget:
        out.append(Finding(Kind.FAILED, job.id, slot,
                           f"{last.status} after {last.attempts} attempt(s): "
                           f"{last.error or 'no error text'}", attempts=last.attempts))
    first = min(executions, key=lambda r: r.attempts)
    if first.started_at is not None:
        lag = (first.started_at - slot).total_seconds()
        allowed = tolerance.total_seconds() + job.spec.policies.jitter_seconds
        if lag > allowed:
            out.append(Finding(Kind.LATE, job.id, slot,
                               f"started {lag:.0f}s after the slot (tolerance {allowed:.0f}s)",
                               lag_seconds=lag))
    return out


@dataclass(frozen=True)
class RepairRecord:
    """One repair on the audit log: who re-sent which slot, when, as which task."""

    job_id: str
    slot: datetime
    kind: str | None
    task_id: str | None
    actor: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "slot": slot_iso(self.slot), "kind": self.kind,
                "task_id": self.task_id, "actor": self.actor, "at": self.at.isoformat()}


def plan_repairs(
    findings: Sequence[Finding],
    inputs: ReconcileInputs,
    now: datetime,
    cooldown: timedelta,
    *,
    honour_policy: bool = False,
) -> list[tuple[Finding, str, str | None]]:
    """Pure: ``(finding, queue, why not)`` for each repairable finding (``None``: send it).
    ``honour_policy``: a job whose ``repair`` policy is ``alert-only`` is not sent."""
    queues = {j.id: job_queue(j.spec) for j in inputs.jobs}
    alert_only = {j.id for j in inputs.jobs if j.spec.policies.repair.value == "alert-only"}
    out: list[tuple[Finding, str, str | None]] = []
    for f in findings:
        if not f.repairable:
            continue
        sent = inputs.repaired.get((f.job_id, f.slot))
        blocked = None
        if honour_policy and f.job_id in alert_only:
            blocked = "repair policy alert-only: alerted, not repaired"
        elif sent is not None and now - sent < cooldown:
            blocked = f"repair already sent at {sent.isoformat()}"
        out.append((f, queues.get(f.job_id, "bridge"), blocked))
    return out
