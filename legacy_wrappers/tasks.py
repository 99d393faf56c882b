"""The Celery task ``bridge.run_job(job_id, slot)``: the idempotent wrapper around every job.

The message is exactly ``(job_id, slot)`` (:mod:`legacy_wrappers.messages`); anything else,
an unknown job, or a slot that is not admitted (:mod:`legacy_wrappers.admission`: more than
60 s in the future or off the job's schedule, unless an audit record names the task id) is
recorded ``rejected`` with the reason and acknowledged: no retry loop.

Routing: the scheduler publishes each job to its ``policies.queue``; retries keep that queue
(Celery republishes to the original routing key). Workers must consume those queues (``-Q``).

The slot's owner is read from the authority history (the last event, in order, whose
``effective_slot`` is ``<=`` the slot; ``None`` = from the beginning; no history = legacy):

* **Celery owns the slot** (role ``authoritative``): claim, settle a dead holder, overlap,
  group permit, run, record, retry, verdict: :mod:`legacy_wrappers.authoritative`. A paused
  job records ``skipped``.
* **Legacy owns the slot** (shadow; never claims): ``observe`` records an ``observed`` row;
  ``dry-run`` runs ``dry_run_command`` (else the real command) with ``BRIDGE_SHADOW=1`` in its
  environment, or a callable's ``dry_run_target`` (a callable without one is only observed);
  ``execute`` runs the real handler. Shadow rows use role ``shadow``; each slot is shadowed at
  most once (a unique ``record_key`` is inserted before running; a duplicate delivery records
  ``suppressed``). No shadow retries. After a rollback (Celery owned the job and legacy took it
  back) ``observe`` jobs record a ``stand-down``; ``dry-run`` / ``execute`` jobs are shadowed
  again as before the flip.
* Unmapped handlers are never executed: ``observed`` only, whoever owns the slot.

An unreachable registry or Redis retries the message in 30 s. The rows written are
:mod:`legacy_wrappers.runlog`'s; warm shutdown is :mod:`legacy_wrappers.shutdown`; the
per-process context and the start-up check of job timeouts against the broker's visibility
timeout are :mod:`legacy_wrappers.worker_context`.

The task is a ``shared_task``: importing this module builds no Celery app. The app is built by
:func:`bridge.celery_app.make_app` (whose ``imports`` load this module); ``celery -A
legacy_wrappers.tasks`` still works: the module's ``app`` attribute is the one of
:mod:`bridge.celery_app`, built on first access.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from celery import Celery, Task, shared_task
from celery.signals import worker_init, worker_ready, worker_shutdown, worker_shutting_down

from bridge.core.authority import AuthorityEvent, Owner, owner_at
from bridge.core.errors import InfraError
from bridge.core.runs import Role, Status
from bridge.core.spec import CallableHandler, JobSpec, ShadowMode
from bridge.store.audit import AuditRepo
from legacy_wrappers.admission import AUDITED_ACTIONS, slot_problem
from legacy_wrappers.authoritative import RunFailed, RunLost, authoritative
from legacy_wrappers.messages import JobRequest, Rejection, parse_request
from legacy_wrappers.retry_policy import INFRA_RETRY_SECONDS
from legacy_wrappers.runlog import ALREADY_SHADOWED, shadow_record_key
from legacy_wrappers.runner import run_handler
from legacy_wrappers.shutdown import SHUTDOWN
from legacy_wrappers.worker_context import CONTEXT, WorkerContext, warm_up, warn_long_timeouts

__all__ = ["TASK_NAME", "run_job"]

log = logging.getLogger(__name__)

TASK_NAME = "bridge.run_job"


@shared_task(
    bind=True,
    name=TASK_NAME,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    typing=False,
    ignore_result=True,
    throws=(RunFailed, RunLost),
)
def run_job(self: Task, *args: Any, **kwargs: Any) -> str:
    """Run one slot of one job (see the module docstring for the guarantees)."""
    fired_at = datetime.now(UTC)
    ctx = CONTEXT.get(self.app.conf)
    request = parse_request(args, kwargs)
    try:
        if isinstance(request, Rejection):
            return str(ctx.runlog.reject(request, fired_at))
        return str(dispatch(self, ctx, request, fired_at))
    except InfraError as e:
        log.warning("registry unreachable, retrying %s in %s s: %s", args, INFRA_RETRY_SECONDS, e)
        raise self.retry(countdown=INFRA_RETRY_SECONDS, exc=e) from e


def dispatch(task: Task, ctx: WorkerContext, req: JobRequest, fired_at: datetime) -> str:
    stored, history = ctx.jobs.read(req.job_id)
    if stored is None:
        return ctx.runlog.reject(
            Rejection(req.job_id, req.slot, f"unknown job id '{req.job_id}'"), fired_at
        )
    spec = stored.spec
    problem = slot_problem(spec, req.slot, fired_at)
    if problem is not None:
        task_id = task.request.id
        with ctx.registry.session() as s:
            allowed = bool(task_id) and AuditRepo(s).names_task(req.job_id, task_id,
                                                                AUDITED_ACTIONS)
        if not allowed:
            return ctx.runlog.reject(Rejection(req.job_id, req.slot, problem), fired_at)
    owner = owner_at(history, req.slot)
    if not spec.mapped:
        return observe(ctx, req, fired_at, "unmapped handler: observed only, never executed")
    if owner is Owner.LEGACY:
        if handed_back(history, req.slot) and spec.policies.shadow_mode is ShadowMode.OBSERVE:
            return ctx.runlog.once_per_slot(req, fired_at, Role.STAND_DOWN, Status.STOOD_DOWN,
                                            task_state="IGNORED")
        return shadow(ctx, spec, req, fired_at)  # dry-run / execute shadows resume after rollback
    if stored.paused:
        return ctx.runlog.skipped(
            req, fired_at, f"job is paused: {stored.paused_reason or 'no reason given'}"
        )
    return authoritative(task, ctx, spec, req, fired_at)


def handed_back(history: Iterable[AuthorityEvent], slot: datetime) -> bool:
    """Celery owned this job at some slot up to ``slot`` and legacy took it back: the Celery
    side now stands down (and says so), so the comparison continues in the other direction."""
    return any(
        e.owner is Owner.CELERY and e.effective_slot is not None and e.effective_slot <= slot
        for e in history
    )


def observe(ctx: WorkerContext, req: JobRequest, fired_at: datetime, note: str | None) -> str:
    return ctx.runlog.once_per_slot(req, fired_at, Role.OBSERVE, Status.OBSERVED,
                                    task_state="SUCCESS", error=note)


def shadow(ctx: WorkerContext, spec: JobSpec, req: JobRequest, fired_at: datetime) -> str:
    mode = spec.policies.shadow_mode
    if mode is ShadowMode.OBSERVE:
        return observe(ctx, req, fired_at, None)
    dry_run = mode is ShadowMode.DRY_RUN
    if dry_run and isinstance(spec.handler, CallableHandler) and not spec.handler.dry_run_target:
        return observe(ctx, req, fired_at, "no dry_run_target: observed only")
    runlog = ctx.runlog
    key = shadow_record_key(req.job_id, req.slot)
    started = runlog.record(req.job_id, req.slot, Role.SHADOW, Status.RUNNING,
                            fired_at=fired_at, task_state="STARTED", record_key=key)
    if not runlog.rows.add_once(started):
        return runlog.suppressed(req, fired_at, ALREADY_SHADOWED)
    outcome = run_handler(spec, grace=float(ctx.settings.worker_shutdown_grace),
                          interrupted=SHUTDOWN.requested, dry_run=dry_run)
    assert outcome is not None
    runlog.rows.replace(key, runlog.record(
        req.job_id, req.slot, Role.SHADOW, outcome.status, fired_at=fired_at, outcome=outcome,
        task_state="SUCCESS" if outcome.ok else "FAILURE",
    ))
    return outcome.status


# --- the worker's signals -------------------------------------------------------------------------


@worker_init.connect
def arm_shutdown(**_: Any) -> None:
    SHUTDOWN.arm()


@worker_shutting_down.connect
def request_shutdown(**_: Any) -> None:
    SHUTDOWN.request()


@worker_shutdown.connect
def disarm_shutdown(**_: Any) -> None:
    SHUTDOWN.disarm()


@worker_ready.connect
def check_timeouts(sender: Any = None, **_: Any) -> None:
    """Warn about timeouts above the visibility timeout; a threads pool then warms up."""
    conf = getattr(getattr(sender, "app", None), "conf", None)
    pool = getattr(sender, "pool", None)
    threads = isinstance(getattr(pool, "executor", None), ThreadPoolExecutor)
    jobs = warn_long_timeouts(conf, keep=threads)
    if threads:
        started = warm_up(pool, conf, jobs)
        log.info("warmed up: %d pool threads started, %d job specs decoded", started, len(jobs))


def __getattr__(name: str) -> Celery:
    """``app``: the bridge's app (``celery -A legacy_wrappers.tasks``), built on first use."""
    if name == "app":
        from bridge.celery_app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
