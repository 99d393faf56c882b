"""A Celery-owned slot (role ``authoritative``): claim it, settle a dead holder, run, record.

* Claim ``(job, slot)`` (:mod:`legacy_wrappers.claims`, lease 30 s renewed every 10 s). Losing
  the claim records a ``suppressed`` row ("already claimed by <holder>"). If the live lease
  belongs to *this message's own lineage* (same task id: a redelivery after the worker was
  SIGKILLed, or after the broker's visibility timeout), :func:`acquire` watches it for up to one
  lease period: a renewal proves the holder alive (suppressed, acked); expiry lets it take over
  and run. The redelivered message is never dropped while the dead run's lease runs out.
* A takeover of an expired ``running`` claim settles the previous attempt first
  (:func:`settle_takeover`, rules in :mod:`legacy_wrappers.takeover`): finished -> the claim
  completes from its record; never released -> run (the old row becomes ``suppressed``, "never
  ran"); in flight -> wait for its process group to be gone, then ``lost`` (``on_lost=skip``:
  :class:`RunLost`, a FAILURE in Flower) or run again (``rerun``); the dead holder's own task
  id, if it is not this one, gets a terminal event (:mod:`legacy_wrappers.dead_task`).
* Overlap ``forbid``: if an earlier slot's lease is alive the claim is closed ``skipped``
  (sticky for the slot) with a ``skipped`` row, "overlap: previous slot still running".
* A limited group takes a permit first (:mod:`legacy_wrappers.permits`).
* :func:`run_claimed`: the durable started row, with the pid, before the gated command may exec;
  when it exits, its outcome on that row and the claim's verdict in one transaction, or, when it
  is retried, the outcome, then the retry (published *before* the verdict, so a crash in between
  cannot lose it; :mod:`legacy_wrappers.retry_policy`), then the verdict. A failed run
  (retries spent) raises :class:`RunFailed` after it is recorded.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

from celery.exceptions import Reject

from bridge.core.claims import (
    AlreadyClaimed,
    ClaimAction,
    ClaimState,
    Holder,
    RetryGrant,
    verdict_for,
)
from bridge.core.errors import InfraError
from bridge.core.runs import Role, RunRecord, Status
from bridge.core.spec import CallableHandler, CommandHandler, JobSpec, OverlapPolicy
from bridge.store.run_rows import StartedRun
from legacy_wrappers.claims import Claims, Lease
from legacy_wrappers.dead_task import close_dead_task
from legacy_wrappers.messages import JobRequest, slot_arg
from legacy_wrappers.permits import defer_for_group, group_permit
from legacy_wrappers.retry_policy import retry_delay, should_retry
from legacy_wrappers.runner import CommandRun, run_handler
from legacy_wrappers.shutdown import SHUTDOWN
from legacy_wrappers.takeover import (
    RERUN_NOTE,
    Settle,
    StartedRecord,
    decide_takeover,
    lost_note,
    started_key,
    started_prefix,
    wait_group_gone,
)
from legacy_wrappers.worker_context import WorkerContext

if TYPE_CHECKING:
    from celery import Task

log = logging.getLogger(__name__)

NEVER_RAN = "never ran"
WAIT_POLL_SECONDS = 1.0


class RunFailed(Exception):
    """Raised (after the outcome is recorded) so Flower shows a failed run as FAILURE with its
    exit code and output digest. Declared in the task's ``throws``: no traceback, no retry."""


class RunLost(Exception):
    """Raised after a slot was recorded ``lost``: Flower shows it as FAILURE ("lost ...")."""


def acquire(
    claims: Claims,
    req: JobRequest,
    holder: Holder,
    grant: RetryGrant | None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Lease | AlreadyClaimed:
    """Claim the slot; if this message's own lineage holds a live lease (a redelivery of a run
    whose worker may have died) watch it for one lease period: a renewal means the holder lives
    (AlreadyClaimed), an expiry lets us take over. A shutdown meanwhile requeues the message."""
    result = claims.claim(req.job_id, req.slot, holder, retry=grant)
    if not own_live(result, holder):
        return result
    assert isinstance(result, AlreadyClaimed)
    seen = result.claim.expires_at
    deadline = (
        time.monotonic() + (claims.terms.duration + claims.terms.renew_every).total_seconds() + 2
    )
    while time.monotonic() < deadline:
        if SHUTDOWN.requested():
            raise Reject("worker shutting down while a dead run's lease runs out", requeue=True)
        sleep(WAIT_POLL_SECONDS)
        result = claims.claim(req.job_id, req.slot, holder, retry=grant)
        if not own_live(result, holder):
            return result
        assert isinstance(result, AlreadyClaimed)
        if result.claim.expires_at > seen:
            return result  # renewed: the holder is alive; this delivery is a duplicate
    return result


def own_live(result: Lease | AlreadyClaimed, holder: Holder) -> bool:
    """Whether ``result`` is a live lease of ``holder``'s own lineage (a redelivery's)."""
    return (
        isinstance(result, AlreadyClaimed)
        and result.live
        and result.claim.lineage == holder.lineage
    )


def authoritative(
    task: Task, ctx: WorkerContext, spec: JobSpec, req: JobRequest, fired_at: datetime
) -> str:
    policy = spec.policies.retry
    holder = Holder(task.request.id or "unknown", f"{ctx.host}:{os.getpid()}")
    grant = RetryGrant(policy.max_retries + 1) if (task.request.retries or 0) > 0 else None
    result = acquire(ctx.claims, req, holder, grant)
    if isinstance(result, AlreadyClaimed):
        return ctx.runlog.suppressed(req, fired_at, result.reason, result.claim.attempts)
    lease = result
    previous = lease.took_over_from
    if (
        lease.action is ClaimAction.TAKEOVER
        and previous is not None
        and previous.state is ClaimState.RUNNING  # expired unrenewed: its holder died
    ):
        settled = settle_takeover(ctx, spec, req, lease,
                                  partial(close_dead_task, task, str(previous.holder)))
        if settled is not None:
            return settled
    if (
        spec.policies.overlap is OverlapPolicy.FORBID
        and ctx.claims.live_before(req.job_id, req.slot) is not None
    ):
        skipped = ctx.runlog.record(req.job_id, req.slot, Role.AUTHORITATIVE, Status.SKIPPED,
                                    fired_at=fired_at,
                                    error="overlap: previous slot still running",
                                    attempts=lease.attempts, task_state="IGNORED")
        lease.complete(ClaimState.SKIPPED, record=skipped)
        return Status.SKIPPED
    group, limit = spec.policies.group, spec.policies.max_concurrency
    if group is None or limit is None:
        return run_claimed(task, ctx, spec, req, lease, fired_at)
    permit = group_permit(ctx, group, limit, lease)
    if permit is None:
        return defer_for_group(task, spec, req, lease)
    lease.companions.append(permit.renew)  # the permit lives exactly as long as the claim
    try:
        return run_claimed(task, ctx, spec, req, lease, fired_at)
    finally:
        permit.release()


def previous_start(ctx: WorkerContext, spec: JobSpec, req: JobRequest,
                   below: int) -> tuple[str, StartedRun, StartedRecord] | None:
    """The latest started row of the slot among attempts below ``below``."""
    found = ctx.runlog.rows.latest_started(req.job_id, req.slot,
                                           started_prefix(req.job_id, req.slot), below)
    if found is None:
        return None
    key, started = found
    record = started.record
    return key, started, StartedRecord(
        record.status, started.pid, record.host,
        callable_handler=isinstance(spec.handler, CallableHandler),
        closed_by_takeover=(record.error or "").startswith(RERUN_NOTE))


def _quiet(note: str, *, succeeded: bool = False) -> None:
    """No terminal event for the dead holder's task (see :func:`settle_takeover`)."""


def settle_takeover(ctx: WorkerContext, spec: JobSpec, req: JobRequest, lease: Lease,
                    close_dead: Callable[..., None] = _quiet) -> str | None:
    """Settle a dead holder's run before running anything (see legacy_wrappers.takeover);
    None: go on and run the slot. ``close_dead(note, succeeded=False)`` is told how the dead
    holder's run ended (:func:`legacy_wrappers.dead_task.close_dead_task`: Flower's view)."""
    previous = lease.took_over_from
    assert previous is not None
    found = previous_start(ctx, spec, req, lease.attempts)
    action = decide_takeover(found[2] if found else None, spec.policies.on_lost)
    if action is Settle.RUN:
        never_ran = f"{NEVER_RAN}: holder {previous.holder} died before the command was released"
        if found is not None:  # gated and never released: it never ran
            key, started, _ = found
            row = replace(started.record, role=Role.SUPPRESSED, status=Status.SUPPRESSED,
                          task_state="IGNORED", finished_at=datetime.now(UTC), error=never_ran)
            ctx.runlog.rows.replace(key, row, only_running=True)
        close_dead(f"{never_ran}; run again")
        return None
    assert found is not None
    key, started, record = found
    if action is Settle.COMPLETE:  # it finished before its holder died: never run it again
        lease.complete(verdict_for(started.record.status))
        close_dead(f"{started.record.status.value} before its holder {previous.holder} died",
                   succeeded=started.record.status is Status.SUCCEEDED)
        log.info("%s %s: finished (%s) before its holder died; claim completed from the "
                 "record", req.job_id, req.slot.isoformat(), started.record.status.value)
        return started.record.status
    with lease:  # keep our lease alive while the old command's process group goes away
        gone = wait_group_gone(record.pid, record.host,
                               bound=float(ctx.settings.worker_shutdown_grace) + 15,
                               kill=action is Settle.RERUN)
    if action is Settle.LOST:
        note = f"{lost_note(previous.holder, record.pid, record.host)}; {gone}"
        lost = replace(started.record, status=Status.LOST, task_state="FAILURE",
                       finished_at=datetime.now(UTC), error=note)
        lease.complete(ClaimState.LOST, record=lost, record_key=key)
        log.warning("%s %s: lost (%s)", req.job_id, req.slot.isoformat(), note)
        close_dead(f"lost: {note}")
        raise RunLost(f"{req.job_id} {slot_arg(req.slot)}: lost: {note}")
    note = f"{RERUN_NOTE}; holder {previous.holder}; on_lost=rerun: run again"
    closed = replace(started.record, status=Status.INTERRUPTED, task_state="FAILURE",
                     finished_at=datetime.now(UTC), error=f"{note}; {gone}")
    ctx.runlog.rows.replace(key, closed, only_running=True)
    close_dead(f"{note}; {gone}")
    return None


def run_claimed(
    task: Task,
    ctx: WorkerContext,
    spec: JobSpec,
    req: JobRequest,
    lease: Lease,
    fired_at: datetime,
) -> str:
    key = started_key(req.job_id, req.slot, lease.attempts)
    runlog = ctx.runlog
    started = runlog.record(req.job_id, req.slot, Role.AUTHORITATIVE, Status.RUNNING,
                            fired_at=fired_at, attempts=lease.attempts, task_state="STARTED",
                            record_key=key, started_at=datetime.now(UTC))
    recorded: list[int | None] = []  # the started row was written (with this pid)

    def record_start(run: CommandRun | None) -> None:
        pid = None if run is None else run.pid
        runlog.start(started, pid)
        recorded.append(pid)

    with lease:
        try:
            if not isinstance(spec.handler, CommandHandler):
                record_start(None)  # an in-process call: nothing to gate
            outcome = run_handler(
                spec, grace=float(ctx.settings.worker_shutdown_grace),
                interrupted=lambda: SHUTDOWN.requested() or lease.lost.is_set(),
                on_start=record_start,
            )
        except InfraError:  # the start could not be recorded: nothing ran
            lease.defer()  # only this lineage's infrastructure retry resumes it
            raise
        assert outcome is not None
        lost = lease.lost.is_set()
        error = outcome.error
        if lost:
            error = f"{error or outcome.status.value}; lease lost (taken over or ran out unrenewed)"
        policy = spec.policies.retry
        retrying = should_retry(outcome.status, lease.attempts, policy, lost)
        state = "RETRY" if retrying else ("SUCCESS" if outcome.ok else "FAILURE")
        finished = runlog.record(
            req.job_id, req.slot, Role.AUTHORITATIVE, outcome.status, fired_at=fired_at,
            outcome=outcome, error=error, attempts=lease.attempts, task_state=state,
            record_key=key,
        )
        if retrying:  # only a run that started is retried: its started row gets the outcome
            written = runlog.finish(key, finished)  # the first thing after the exit
    if retrying:  # before the verdict: a crash before the verdict cannot lose the retry
        delay = retry_delay(policy, lease.attempts, random.random())
        task.retry(countdown=delay, throw=False)
        close(lease, req, outcome.status, None, "finished" if written else "started")
    else:  # the outcome (on the started row, or a new row if it never started) + the verdict
        close(lease, req, outcome.status, finished, "started", update_started=bool(recorded))
    if not retrying and not outcome.ok:
        digest = (outcome.output_digest or "")[:16]
        raise RunFailed(f"{req.job_id} {slot_arg(req.slot)}: {outcome.status.value}, exit "
                        f"{outcome.exit_status}, output sha256 {digest}: "
                        f"{error or 'no error text'}")
    return outcome.status.value


def close(lease: Lease, req: JobRequest, status: Status, finished: RunRecord | None,
          which: str, *, update_started: bool = True) -> None:
    """Give the claim its verdict, with the finished record (if given: overwriting the started
    row when ``update_started``, else inserted) in the same transaction. A failure is logged, never
    raised: the run happened, never re-run it because we could not say so (the takeover
    completes the claim from the ``which`` record)."""
    key = finished.record_key if finished is not None and update_started else None
    try:
        lease.complete(verdict_for(status), record=finished, record_key=key)
    except InfraError as e:
        log.error("run of %s %s finished (%s) but its claim could not be completed: %s; the "
                  "takeover completes it from the %s record", req.job_id, req.slot.isoformat(),
                  status.value, e, which)
