"""The Celery task ``bridge.run_job(job_id, slot)``: the idempotent wrapper around every job.

Message contract: exactly two positional arguments, a registered job id and the slot as
ISO-8601 UTC to the second (``"2026-03-08T07:00:00Z"``; ``+00:00`` accepted), no kwargs. The
command always comes from the registry, never from the message. Anything else (unknown job,
naive / non-UTC / fractional slot, extra or oversized arguments) is recorded as a ``runs`` row
with status ``rejected`` and the reason, and the message is acknowledged: no retry loop.

Routing: the scheduler publishes each job to its ``policies.queue``; retries keep that queue
(Celery republishes to the original routing key). Workers must consume those queues (``-Q``).

For a valid message the slot's owner is read from the authority history (the last event, in
order, whose ``effective_slot`` is ``<=`` the slot; ``None`` = from the beginning; no history =
legacy). Then:

* **Celery owns the slot** (role ``authoritative``): claim ``(job, slot)`` (see
  :mod:`legacy_wrappers.claims`, lease 30 s renewed every 10 s). Losing the claim records a
  ``suppressed`` row ("already claimed by <holder>"). If the live lease belongs to *this
  message's own lineage* (same task id: a redelivery after the worker was SIGKILLed, or after the
  broker's visibility timeout), the task watches it for up to one lease period: a renewal proves
  the holder alive (suppressed, acked); expiry lets it take over and run. The redelivered message
  is never dropped while the dead run's lease is still running out. Overlap ``forbid``: if an
  earlier slot's lease is alive the claim is closed ``skipped`` (sticky for the slot) and a
  ``skipped`` row says "overlap: previous slot still running". Overlap ``replace`` cannot
  reach a worker: :class:`bridge.core.spec.Policies` refuses it. The run's outcome and the claim's
  verdict are written in one transaction. Failures (``failed``, ``timed_out``,
  ``interrupted``) are retried inside the same slot per the job's RetryPolicy (exponential
  backoff, equal jitter) by ``self.retry``; the retry
  is published *before* the verdict is written so a crash in between cannot lose it, and the
  retry re-claims the slot with a :class:`RetryGrant` (same lineage, attempts below
  ``max_retries + 1``; a takeover after a crash also counts as an attempt).
  Around the command the run writes two durable records (:mod:`legacy_wrappers.takeover`): a
  ``running`` row before the process is forked, given its pid before the gated command may
  exec, and the outcome on that same row the moment the command exits (before the retry is
  published and the claim's verdict written). A takeover of an expired claim reads the previous
  attempt's row first: finished -> the claim completes from it (never run again); never
  released -> run (the old row becomes ``suppressed``, "never ran"); in flight -> wait for
  its process group to be gone, then ``lost`` (the job's
  ``on_lost=skip``, the default: the claim ends ``lost``, :class:`RunLost` is raised so Flower
  shows a FAILURE) or run again (``rerun``). A failed run (retries spent) raises
  :class:`RunFailed` after it is recorded: a Celery FAILURE with the exit code and the output
  digest, never retried by Celery (``throws``).
* **Admission** (:mod:`legacy_wrappers.admission`): a slot more than 60 s in the future or off
  the job's schedule is ``rejected`` (no claim) unless an audit record names the task id.
* **Legacy owns the slot** (shadow; never claims): ``observe`` records an ``observed`` row;
  ``dry-run`` runs ``dry_run_command`` (else the real command) with ``BRIDGE_SHADOW=1`` in its
  environment, or a callable's ``dry_run_target`` (a callable without one is only observed: a
  Python function has no environment contract to honour); ``execute`` runs the real handler.
  Shadow rows use role ``shadow``; each slot is shadowed at most once (a unique ``record_key``
  is inserted before running; a duplicate delivery records ``suppressed``). No shadow retries.
  After a rollback (Celery owned the job and legacy took it back) ``observe`` jobs record a
  ``stand-down``; ``dry-run`` / ``execute`` jobs are shadowed again as before the flip.
* Unmapped handlers are never executed: ``observed`` only, whoever owns the slot.

Warm shutdown (``worker_shutting_down``, MainProcess): a flag file inherited by the pool's
children asks every running command to stop: SIGTERM to its process group, SIGKILL after
``settings.worker_shutdown_grace`` s; the run is recorded ``interrupted`` and retried through
the claim per the retry policy. Deploy with systemd ``KillMode=mixed`` so the service manager
does not SIGTERM the jobs' own sessions first.

At ``worker_ready`` the worker warns about every job whose timeout exceeds the broker's
visibility timeout (such a run is redelivered while it runs; the claim suppresses the copy).

Group limit (``policies.group`` + ``policies.max_concurrency``): after the claim is won (and
the overlap check passed) the run takes a permit of its group's Redis semaphore
(:mod:`legacy_wrappers.concurrency`), renewed by the claim's heartbeat and released when the
run is recorded. A full group publishes a retry in 2-5 s and parks the claim ``deferred``
(attempts unchanged, resumable only by the same lineage); no row is written for a deferral.
Shadow runs ignore the limit.

Not done: ``replace`` overlap.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import random
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

import redis
from celery import Task
from celery.exceptions import Reject
from celery.signals import worker_init, worker_ready, worker_shutdown, worker_shutting_down
from sqlalchemy import Connection, Table, insert, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from bridge.adapters.redis_conn import unreachable
from bridge.celery_app import app
from bridge.core.authority import AuthorityEvent, Owner, owner_at
from bridge.core.config import Settings, load_settings
from bridge.core.errors import BridgeError, InfraError
from bridge.core.runs import Role
from bridge.core.spec import (
    JOB_ID_RE,
    CallableHandler,
    CommandHandler,
    JobSpec,
    OverlapPolicy,
    RetryPolicy,
    ShadowMode,
)
from bridge.store.db import Registry
from bridge.store.db import unreachable as unreachable_db
from bridge.store.models import RunRow
from bridge.store.repos import AuthorityRepo, JobRepo
from legacy_wrappers.admission import audited, slot_problem
from legacy_wrappers.claims import (
    Action,
    AlreadyClaimed,
    Claims,
    ClaimState,
    Holder,
    Lease,
    RetryGrant,
)
from legacy_wrappers.concurrency import Permit, Semaphores
from legacy_wrappers.runner import (
    CommandRun,
    OutcomeStatus,
    RunOutcome,
    run_callable,
    run_command,
)
from legacy_wrappers.takeover import (
    LOST,
    RERUN_NOTE,
    RUNNING,
    Settle,
    StartedRecord,
    decide_takeover,
    lost_note,
    started_key,
    started_prefix,
    wait_group_gone,
)

__all__ = ["TASK_NAME", "app", "run_job"]

log = logging.getLogger(__name__)

TASK_NAME = "bridge.run_job"
RUNS = cast(Table, RunRow.__table__)
NEVER_RAN = "never ran"
MAX_ARGS_JSON = 512
REJECTED_SLOT = datetime(1970, 1, 1, tzinfo=UTC)  # stands in for a slot that could not be read
SLOT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|\+00:00)$")
INFRA_RETRY_SECONDS = 30
SHUTDOWN_FLAG_ENV = "CRON_BRIDGE_SHUTDOWN_FLAG"  # not BRIDGE_*: settings reject unknown names
WAIT_POLL_SECONDS = 1.0
GROUP_RETRY_SECONDS = (2.0, 5.0)  # a slot deferred by a full group retries after this (uniform)


class RunStatus(StrEnum):
    """Statuses of runs rows written by the task (runner outcomes keep their own values)."""

    REJECTED = "rejected"
    SKIPPED = "skipped"
    SUPPRESSED = "suppressed"
    OBSERVED = "observed"
    STOOD_DOWN = "stood-down"
    DEFERRED = "deferred"  # a task result only: a deferral writes no runs row
    RUNNING = RUNNING  # a started authoritative run whose outcome is not recorded yet
    LOST = LOST  # its holder died mid-run, outcome unknown, on_lost=skip (see takeover.py)


class RunFailed(Exception):
    """Raised (after the outcome is recorded) so Flower shows a failed run as FAILURE with its
    exit code and output digest. Declared in the task's ``throws``: no traceback, no retry."""


class RunLost(Exception):
    """Raised after a slot was recorded ``lost``: Flower shows it as FAILURE ("lost ...")."""


# --- pure core ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRequest:
    job_id: str
    slot: datetime


@dataclass(frozen=True)
class Rejection:
    job_id: str
    slot: datetime
    reason: str


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_slot(value: Any) -> datetime:
    """The slot as aware UTC; ValueError with the reason for anything else."""
    if not isinstance(value, str):
        raise ValueError(f"slot must be an ISO-8601 string, got {type(value).__name__}")
    if not SLOT_RE.match(value):
        raise ValueError(
            f"malformed slot {_short(value)}: expected UTC to the second, like 2026-03-08T07:00:00Z"
        )
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError as e:
        raise ValueError(f"malformed slot {_short(value)}: {e}") from e


def parse_request(args: Sequence[Any], kwargs: dict[str, Any]) -> JobRequest | Rejection:
    """Validate a message's arguments (pure)."""
    job_id = args[0] if args and isinstance(args[0], str) and len(args[0]) <= 200 else "<invalid>"
    try:
        slot = parse_slot(args[1]) if len(args) > 1 else REJECTED_SLOT
    except ValueError:
        slot = REJECTED_SLOT
    reason = _request_problem(args, kwargs)
    if reason is None:
        reason = _slot_problem(args[1])
    if reason is not None:
        return Rejection(job_id, slot, reason)
    return JobRequest(args[0], slot)


def _request_problem(args: Sequence[Any], kwargs: dict[str, Any]) -> str | None:
    try:
        size = len(json.dumps([list(args), kwargs], default=str))
    except (TypeError, ValueError):
        size = MAX_ARGS_JSON + 1
    if size > MAX_ARGS_JSON:
        return f"oversized arguments ({size} bytes of JSON, at most {MAX_ARGS_JSON})"
    if kwargs:
        return f"unexpected keyword arguments {sorted(kwargs)}: only (job_id, slot) is accepted"
    if len(args) != 2:
        return f"expected 2 arguments (job_id, slot), got {len(args)}"
    if not isinstance(args[0], str) or not JOB_ID_RE.match(args[0]):
        return f"malformed job id {_short(args[0])}"
    return None


def _slot_problem(value: Any) -> str | None:
    try:
        parse_slot(value)
    except ValueError as e:
        return str(e)
    return None


owner_of = owner_at  # who owns a slot: one pure function for every path (bridge.core.authority)


def retry_delay(policy: RetryPolicy, attempt: int, rand: float) -> float:
    """Backoff before retry number ``attempt`` (1-based): doubling, capped, equal jitter."""
    base = min(policy.backoff_max_seconds, policy.backoff_seconds * 2 ** max(attempt - 1, 0))
    return base * (0.5 + rand / 2) if policy.jitter else base


RETRYABLE = frozenset({OutcomeStatus.FAILED, OutcomeStatus.TIMED_OUT, OutcomeStatus.INTERRUPTED})


def should_retry(outcome: RunOutcome, attempts: int, policy: RetryPolicy, lease_lost: bool) -> bool:
    """Retry when the run failed in a way a retry can fix and the budget allows (pure)."""
    return outcome.status in RETRYABLE and not lease_lost and attempts < policy.max_retries + 1


def claim_verdict(outcome: RunOutcome) -> ClaimState:
    if outcome.status is OutcomeStatus.SUCCEEDED:
        return ClaimState.SUCCEEDED
    if outcome.status is OutcomeStatus.INTERRUPTED:
        return ClaimState.INTERRUPTED
    return ClaimState.FAILED


def visibility_warnings(specs: Iterable[JobSpec], visibility_timeout: int) -> list[str]:
    out = []
    for spec in specs:
        timeout = spec.policies.timeout_seconds
        if timeout is not None and timeout > visibility_timeout:
            out.append(
                f"job {spec.id}: timeout {timeout} s exceeds the broker visibility timeout "
                f"{visibility_timeout} s: a long run will be redelivered (the claim suppresses "
                "the copy); raise BRIDGE_VISIBILITY_TIMEOUT"
            )
    return out


def shadow_record_key(job_id: str, slot: datetime) -> str:
    digest = hashlib.sha256(f"{job_id}\0{slot.isoformat()}".encode()).hexdigest()[:40]
    return f"celery-shadow:{digest}"


# --- warm shutdown --------------------------------------------------------------------------------


class ShutdownWatch:
    """Asks running commands to stop. Armed in the MainProcess (a flag file whose path the pool
    children inherit through the environment); polled by the runner every 0.1 s."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.armed_by = -1

    def arm(self) -> str:
        path = os.path.join(
            tempfile.gettempdir(), f"cron-bridge-shutdown-{os.getpid()}-{os.urandom(4).hex()}"
        )
        os.environ[SHUTDOWN_FLAG_ENV] = path
        self.event.clear()
        if self.armed_by == -1:
            atexit.register(self.disarm)  # a cold shutdown skips worker_shutdown
        self.armed_by = os.getpid()
        return path

    def request(self) -> None:
        self.event.set()
        path = os.environ.get(SHUTDOWN_FLAG_ENV)
        if path:
            with contextlib.suppress(OSError), open(path, "w"):
                pass

    def requested(self) -> bool:
        if self.event.is_set():
            return True
        path = os.environ.get(SHUTDOWN_FLAG_ENV)
        return bool(path) and os.path.exists(path)  # type: ignore[arg-type]

    def disarm(self) -> None:
        if os.getpid() != self.armed_by:
            return  # only the process that armed it removes the flag its children watch
        path = os.environ.pop(SHUTDOWN_FLAG_ENV, None)
        if path:
            with contextlib.suppress(OSError):
                os.unlink(path)


SHUTDOWN = ShutdownWatch()


# --- per-process context -------------------------------------------------------------------------


class WorkerContext:
    """The registry and claims of this process (created after fork, never shared across one)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = Registry(settings.database_url)
        self.claims = Claims(self.registry)
        self.semaphores = Semaphores(settings, ttl=self.claims.terms.duration.total_seconds())
        self.host = socket.gethostname()
        self.pid = os.getpid()


_CONTEXT: WorkerContext | None = None
_CONTEXT_LOCK = threading.Lock()  # the threads pool: one context per process, made once


def context() -> WorkerContext:
    global _CONTEXT
    ctx = _CONTEXT
    if ctx is not None and ctx.pid == os.getpid():
        return ctx
    with _CONTEXT_LOCK:
        if _CONTEXT is None or _CONTEXT.pid != os.getpid():
            settings = getattr(app.conf, "bridge_settings", None) or load_settings()
            _CONTEXT = WorkerContext(settings)
        return _CONTEXT


# --- recording -----------------------------------------------------------------------------------


def run_fields(
    job_id: str,
    slot: datetime,
    role: Role,
    status: str,
    ctx: WorkerContext,
    *,
    fired_at: datetime,
    outcome: RunOutcome | None = None,
    error: str | None = None,
    attempts: int = 1,
    task_state: str | None = None,
    record_key: str | None = None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "job_id": job_id,
        "slot": slot,
        "path": "celery",
        "role": role.value,
        "status": status,
        "fired_at": fired_at,
        "attempts": attempts,
        "task_state": task_state,
        "host": ctx.host,
        "error": error,
        "record_key": record_key,
    }
    if outcome is not None:
        fields.update(
            started_at=outcome.started_at,
            finished_at=outcome.finished_at,
            exit_status=outcome.exit_status,
            output_digest=outcome.output_digest,
            output_sample=outcome.output_sample,
            error=error if error is not None else outcome.error,
        )
    return fields


def insert_run(conn: Connection, fields: dict[str, Any]) -> None:
    conn.execute(insert(RUNS).values(**fields))


def record(ctx: WorkerContext, fields: dict[str, Any]) -> None:
    with ctx.registry.engine.begin() as conn:
        insert_run(conn, fields)


def update_run(ctx: WorkerContext, record_key: str, fields: dict[str, Any]) -> None:
    changes = {k: v for k, v in fields.items() if k != "record_key"}
    with ctx.registry.engine.begin() as conn:
        conn.execute(update(RUNS).where(RUNS.c.record_key == record_key).values(**changes))


# --- execution ------------------------------------------------------------------------------------


def execute(
    spec: JobSpec,
    ctx: WorkerContext,
    *,
    interrupted: Callable[[], bool],
    dry_run: bool = False,
    on_start: Callable[[CommandRun], None] | None = None,
) -> RunOutcome | None:
    """Run the job's handler (or its dry-run form); None when there is nothing to run.

    ``on_start`` (command handlers) gets the gated process before it may exec: it records the
    pid durably; if it raises, the command never runs and the exception propagates."""
    handler, timeout = spec.handler, spec.policies.timeout_seconds
    grace = float(ctx.settings.worker_shutdown_grace)
    if isinstance(handler, CommandHandler):
        command = (handler.dry_run_command or handler.command) if dry_run else None
        extra = {"BRIDGE_SHADOW": "1"} if dry_run else None
        return run_command(
            handler,
            timeout=timeout,
            grace=grace,
            extra_env=extra,
            command=command,
            interrupted=interrupted,
            on_start=on_start,
            gated=on_start is not None,
        )
    if isinstance(handler, CallableHandler):
        if dry_run and handler.dry_run_target is None:
            return None
        target = handler.dry_run_target if dry_run else None
        return run_callable(handler, timeout=timeout, target=target)
    return None


# --- the task ------------------------------------------------------------------------------------


@app.task(
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
    ctx = context()
    request = parse_request(args, kwargs)
    try:
        if isinstance(request, Rejection):
            return reject(ctx, request, fired_at)
        return dispatch(self, ctx, request, fired_at)
    except InfraError as e:
        log.warning("registry unreachable, retrying %s in %s s: %s", args, INFRA_RETRY_SECONDS, e)
        raise self.retry(countdown=INFRA_RETRY_SECONDS, exc=e) from e


def reject(ctx: WorkerContext, rejection: Rejection, fired_at: datetime) -> str:
    log.warning("rejected bridge.run_job message: %s", rejection.reason)
    record(
        ctx,
        run_fields(
            rejection.job_id,
            rejection.slot,
            Role.REJECTED,
            RunStatus.REJECTED.value,
            ctx,
            fired_at=fired_at,
            error=rejection.reason,
            task_state="REJECTED",
        ),
    )
    return RunStatus.REJECTED.value


def dispatch(task: Task, ctx: WorkerContext, req: JobRequest, fired_at: datetime) -> str:
    with ctx.registry.session() as s:
        stored = JobRepo(s).get(req.job_id)
        history = AuthorityRepo(s).history(req.job_id) if stored is not None else []
    if stored is None:
        return reject(
            ctx, Rejection(req.job_id, req.slot, f"unknown job id '{req.job_id}'"), fired_at
        )
    spec = stored.spec
    problem = slot_problem(spec, req.slot, fired_at)
    if problem is not None:
        with ctx.registry.session() as s:
            allowed = audited(s, req.job_id, task.request.id)
        if not allowed:
            return reject(ctx, Rejection(req.job_id, req.slot, problem), fired_at)
    owner = owner_of(history, req.slot)
    if not spec.mapped:
        return observe(ctx, req, fired_at, "unmapped handler: observed only, never executed")
    if owner is Owner.LEGACY:
        if handed_back(history, req.slot) and spec.policies.shadow_mode is ShadowMode.OBSERVE:
            return stand_down(ctx, req, fired_at)
        return shadow(ctx, spec, req, fired_at)  # dry-run / execute shadows resume after rollback
    if stored.paused:
        record(
            ctx,
            run_fields(
                req.job_id,
                req.slot,
                Role.AUTHORITATIVE,
                RunStatus.SKIPPED.value,
                ctx,
                fired_at=fired_at,
                task_state="IGNORED",
                error=f"job is paused: {stored.paused_reason or 'no reason given'}",
            ),
        )
        return RunStatus.SKIPPED.value
    return authoritative(task, ctx, spec, req, fired_at)


def handed_back(history: Iterable[AuthorityEvent], slot: datetime) -> bool:
    """Celery owned this job at some slot up to ``slot`` and legacy took it back: the Celery
    side now stands down (and says so), so the comparison continues in the other direction."""
    return any(
        e.owner is Owner.CELERY and e.effective_slot is not None and e.effective_slot <= slot
        for e in history
    )


def once_per_slot(
    ctx: WorkerContext,
    req: JobRequest,
    fired_at: datetime,
    role: Role,
    status: RunStatus,
    *,
    task_state: str,
    error: str | None = None,
) -> str:
    """Record a non-executing Celery row at most once per slot (keyed like a shadow run); a
    second delivery of the same slot records a suppressed duplicate instead."""
    fields = run_fields(
        req.job_id,
        req.slot,
        role,
        status.value,
        ctx,
        fired_at=fired_at,
        error=error,
        task_state=task_state,
        record_key=shadow_record_key(req.job_id, req.slot),
    )
    try:
        record(ctx, fields)
    except IntegrityError:
        return suppressed_shadow(ctx, req, fired_at)
    return status.value


def stand_down(ctx: WorkerContext, req: JobRequest, fired_at: datetime) -> str:
    return once_per_slot(
        ctx, req, fired_at, Role.STAND_DOWN, RunStatus.STOOD_DOWN, task_state="IGNORED"
    )


def observe(ctx: WorkerContext, req: JobRequest, fired_at: datetime, note: str | None) -> str:
    return once_per_slot(
        ctx, req, fired_at, Role.OBSERVE, RunStatus.OBSERVED, task_state="SUCCESS", error=note
    )


def suppressed(
    ctx: WorkerContext, req: JobRequest, fired_at: datetime, error: str, attempts: int = 1
) -> str:
    """Record that this delivery did not run the slot because another one holds it."""
    fields = run_fields(
        req.job_id,
        req.slot,
        Role.SUPPRESSED,
        RunStatus.SUPPRESSED.value,
        ctx,
        fired_at=fired_at,
        error=error,
        task_state="IGNORED",
        attempts=attempts,
    )
    record(ctx, fields)
    return RunStatus.SUPPRESSED.value


def suppressed_shadow(ctx: WorkerContext, req: JobRequest, fired_at: datetime) -> str:
    return suppressed(ctx, req, fired_at, "slot already shadowed by another delivery")


def shadow(ctx: WorkerContext, spec: JobSpec, req: JobRequest, fired_at: datetime) -> str:
    mode = spec.policies.shadow_mode
    if mode is ShadowMode.OBSERVE:
        return observe(ctx, req, fired_at, None)
    dry_run = mode is ShadowMode.DRY_RUN
    if dry_run and isinstance(spec.handler, CallableHandler) and not spec.handler.dry_run_target:
        return observe(ctx, req, fired_at, "no dry_run_target: observed only")
    key = shadow_record_key(req.job_id, req.slot)
    try:
        record(
            ctx,
            run_fields(
                req.job_id,
                req.slot,
                Role.SHADOW,
                "running",
                ctx,
                fired_at=fired_at,
                task_state="STARTED",
                record_key=key,
            ),
        )
    except IntegrityError:
        return suppressed_shadow(ctx, req, fired_at)
    outcome = execute(spec, ctx, interrupted=SHUTDOWN.requested, dry_run=dry_run)
    assert outcome is not None
    update_run(
        ctx,
        key,
        run_fields(
            req.job_id,
            req.slot,
            Role.SHADOW,
            outcome.status.value,
            ctx,
            fired_at=fired_at,
            outcome=outcome,
            task_state="SUCCESS" if outcome.ok else "FAILURE",
        ),
    )
    return outcome.status.value


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
    if not _own_live(result, holder):
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
        if not _own_live(result, holder):
            return result
        assert isinstance(result, AlreadyClaimed)
        if result.claim.expires_at > seen:
            return result  # renewed: the holder is alive; this delivery is a duplicate
    return result


def _own_live(result: Lease | AlreadyClaimed, holder: Holder) -> bool:
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
        return suppressed(ctx, req, fired_at, result.reason, result.claim.attempts)
    lease = result
    previous = lease.took_over_from
    if (
        lease.action is Action.TAKEOVER
        and previous is not None
        and previous.state is ClaimState.RUNNING  # expired unrenewed: its holder died
    ):
        settled = settle_takeover(ctx, spec, req, lease, fired_at)
        if settled is not None:
            return settled
    if (
        spec.policies.overlap is OverlapPolicy.FORBID
        and ctx.claims.live_before(req.job_id, req.slot) is not None
    ):
        lease.complete(
            ClaimState.SKIPPED,
            also=lambda conn: insert_run(
                conn,
                run_fields(
                    req.job_id,
                    req.slot,
                    Role.AUTHORITATIVE,
                    RunStatus.SKIPPED.value,
                    ctx,
                    fired_at=fired_at,
                    error="overlap: previous slot still running",
                    attempts=lease.attempts,
                    task_state="IGNORED",
                ),
            ),
        )
        return RunStatus.SKIPPED.value
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


def group_permit(ctx: WorkerContext, group: str, limit: int, lease: Lease) -> Permit | None:
    """The run's group permit, ``None`` when the group is full. A Redis error parks the claim
    and raises InfraError (the task retries through its infrastructure path, 30 s)."""
    try:
        return ctx.semaphores.group(group).permit(lease.info.holder, limit)
    except (redis.RedisError, OSError) as e:
        lease.defer()  # nothing ran: the retry of this lineage resumes the claim
        raise unreachable(ctx.settings.redis_url, e) from e


def defer_for_group(task: Task, spec: JobSpec, req: JobRequest, lease: Lease) -> str:
    """The group is full: publish a retry, then park the claim (see legacy_wrappers.concurrency
    for why this order loses nothing and runs nothing twice). No runs row is written."""
    delay = random.uniform(*GROUP_RETRY_SECONDS)
    task.retry(countdown=delay, throw=False)
    if not lease.defer():
        log.warning(
            "claim on %s %s was lost before it could be deferred", req.job_id, req.slot.isoformat()
        )
    log.info(
        "group %s is at its limit of %s: %s %s deferred, retry in %.1f s",
        spec.policies.group,
        spec.policies.max_concurrency,
        req.job_id,
        req.slot.isoformat(),
        delay,
    )
    return RunStatus.DEFERRED.value


def previous_start(ctx: WorkerContext, spec: JobSpec, req: JobRequest,
                   below: int) -> tuple[StartedRecord | None, RunRow | None]:
    """The latest started row of the slot among attempts below ``below``."""
    prefix = started_prefix(req.job_id, req.slot)
    with ctx.registry.session() as s:
        rows = [r for r in s.query(RunRow).filter(RunRow.job_id == req.job_id,
                                                  RunRow.slot == req.slot,
                                                  RunRow.record_key.startswith(prefix))
                if r.attempts < below]
    if not rows:
        return None, None
    row = max(rows, key=lambda r: r.attempts)
    record = StartedRecord(row.status, row.pid, row.host,
                           callable_handler=isinstance(spec.handler, CallableHandler),
                           closed_by_takeover=(row.error or "").startswith(RERUN_NOTE))
    return record, row


def settle_takeover(
    ctx: WorkerContext, spec: JobSpec, req: JobRequest, lease: Lease, fired_at: datetime
) -> str | None:
    """Settle a dead holder's run before running anything (see legacy_wrappers.takeover);
    None: go on and run the slot."""
    previous = lease.took_over_from
    assert previous is not None
    record, row = previous_start(ctx, spec, req, lease.attempts)
    action = decide_takeover(record, spec.policies.on_lost)
    key = row.record_key if row is not None else ""
    if action is Settle.RUN:
        if record is not None:  # gated and never released: it never ran
            with ctx.registry.engine.begin() as conn:
                conn.execute(update(RUNS).where(RUNS.c.record_key == key,
                                                RUNS.c.status == RUNNING)
                             .values(role=Role.SUPPRESSED.value,
                                     status=RunStatus.SUPPRESSED.value, task_state="IGNORED",
                                     finished_at=datetime.now(UTC),
                                     error=f"{NEVER_RAN}: holder {previous.holder} died before "
                                           "the command was released"))
        return None
    assert record is not None and row is not None
    if action is Settle.COMPLETE:  # it finished before its holder died: never run it again
        verdict = claim_verdict_of(row.status)
        lease.complete(verdict)
        log.info("%s %s: finished (%s) before its holder died; claim completed from the "
                 "record", req.job_id, req.slot.isoformat(), row.status)
        return row.status
    with lease:  # keep our lease alive while the old command's process group goes away
        gone = wait_group_gone(record.pid, record.host,
                               bound=float(ctx.settings.worker_shutdown_grace) + 15,
                               kill=action is Settle.RERUN)
    if action is Settle.LOST:
        note = f"{lost_note(previous.holder, record.pid, record.host)}; {gone}"
        now = datetime.now(UTC)

        def mark_lost(conn: Connection) -> None:
            conn.execute(update(RUNS).where(RUNS.c.record_key == key)
                         .values(status=LOST, task_state="FAILURE", finished_at=now, error=note))

        lease.complete(ClaimState.LOST, also=mark_lost)
        log.warning("%s %s: lost (%s)", req.job_id, req.slot.isoformat(), note)
        raise RunLost(f"{req.job_id} {slot_arg(req.slot)}: lost: {note}")
    note = f"{RERUN_NOTE}; holder {previous.holder}; on_lost=rerun: run again"
    with ctx.registry.engine.begin() as conn:
        conn.execute(update(RUNS).where(RUNS.c.record_key == key, RUNS.c.status == RUNNING)
                     .values(status=OutcomeStatus.INTERRUPTED.value, task_state="FAILURE",
                             finished_at=datetime.now(UTC), error=f"{note}; {gone}"))
    return None


def claim_verdict_of(status: str) -> ClaimState:
    if status == OutcomeStatus.SUCCEEDED.value:
        return ClaimState.SUCCEEDED
    if status == OutcomeStatus.INTERRUPTED.value:
        return ClaimState.INTERRUPTED
    return ClaimState.FAILED


def slot_arg(slot: datetime) -> str:
    return slot.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_start(ctx: WorkerContext, req: JobRequest, lease: Lease, fired_at: datetime,
                 key: str) -> None:
    """The durable "started" record: inserted before the command is forked (a resumed attempt
    whose start was recorded but whose command never ran reuses its row)."""
    fields = {**run_fields(req.job_id, req.slot, Role.AUTHORITATIVE, RUNNING, ctx,
                           fired_at=fired_at, attempts=lease.attempts, task_state="STARTED",
                           record_key=key),
              "started_at": datetime.now(UTC)}
    try:
        record(ctx, fields)
    except IntegrityError:
        update_run(ctx, key, {**fields, "pid": None})


def record_pid(ctx: WorkerContext, key: str, pid: int) -> None:
    with ctx.registry.engine.begin() as conn:
        conn.execute(update(RUNS).where(RUNS.c.record_key == key).values(pid=pid))


def run_claimed(
    task: Task,
    ctx: WorkerContext,
    spec: JobSpec,
    req: JobRequest,
    lease: Lease,
    fired_at: datetime,
) -> str:
    key = started_key(req.job_id, req.slot, lease.attempts)
    with lease:
        try:
            record_start(ctx, req, lease, fired_at, key)
            outcome = execute(
                spec, ctx, interrupted=lambda: SHUTDOWN.requested() or lease.lost.is_set(),
                on_start=lambda run: record_pid(ctx, key, run.pid),
            )
        except SQLAlchemyError as e:  # the start could not be recorded: nothing ran
            lease.defer()  # only this lineage's infrastructure retry resumes it
            raise unreachable_db(ctx.registry.url, e) from e
        assert outcome is not None
        lost = lease.lost.is_set()
        error = outcome.error
        if lost:
            error = f"{error or outcome.status.value}; lease lost (taken over or ran out unrenewed)"
        policy = spec.policies.retry
        retrying = should_retry(outcome, lease.attempts, policy, lost)
        state = "RETRY" if retrying else ("SUCCESS" if outcome.ok else "FAILURE")
        fields = run_fields(
            req.job_id,
            req.slot,
            Role.AUTHORITATIVE,
            outcome.status.value,
            ctx,
            fired_at=fired_at,
            outcome=outcome,
            error=error,
            attempts=lease.attempts,
            task_state=state,
        )
        finished = record_finish(ctx, req, key, fields)  # first thing after the exit
    if retrying:  # before the verdict: a crash before the verdict cannot lose the retry
        delay = retry_delay(policy, lease.attempts, random.random())
        task.retry(countdown=delay, throw=False)
    try:
        lease.complete(claim_verdict(outcome))
    except InfraError as e:  # the run happened: never re-run it because we could not say so
        log.error(
            "run of %s %s finished (%s) but its claim could not be completed: %s; the "
            "takeover completes it from the %s record",
            req.job_id,
            req.slot.isoformat(),
            outcome.status.value,
            e,
            "finished" if finished else "started",
        )
    if not retrying and not outcome.ok:
        digest = (outcome.output_digest or "")[:16]
        raise RunFailed(f"{req.job_id} {slot_arg(req.slot)}: {outcome.status.value}, exit "
                        f"{outcome.exit_status}, output sha256 {digest}: "
                        f"{error or 'no error text'}")
    return outcome.status.value


def record_finish(ctx: WorkerContext, req: JobRequest, key: str,
                  fields: dict[str, Any]) -> bool:
    """The durable "finished" record: the started row gets the outcome (False if it could not
    be written: the claim then expires and the takeover finds the run in flight)."""
    changes = {k: v for k, v in fields.items() if k != "record_key"}
    try:
        with ctx.registry.engine.begin() as conn:
            conn.execute(update(RUNS).where(RUNS.c.record_key == key).values(**changes))
    except Exception as e:
        log.error("run of %s %s finished (%s) but could not be recorded: %s", req.job_id,
                  req.slot.isoformat(), fields.get("status"), e)
        return False
    return True


# --- worker signals -------------------------------------------------------------------------------


@worker_init.connect
def _arm_shutdown(**_: Any) -> None:
    SHUTDOWN.arm()


@worker_shutting_down.connect
def _request_shutdown(**_: Any) -> None:
    SHUTDOWN.request()


@worker_shutdown.connect
def _disarm_shutdown(**_: Any) -> None:
    SHUTDOWN.disarm()


@worker_ready.connect
def _warn_long_timeouts(**_: Any) -> None:
    global _CONTEXT
    try:
        ctx = context()
        with ctx.registry.session() as s:
            specs = [job.spec for job in JobRepo(s).list()]
        for warning in visibility_warnings(specs, ctx.settings.visibility_timeout):
            log.warning(warning)
    except (BridgeError, OSError) as e:
        log.warning("could not check job timeouts against the visibility timeout: %s", e)
    finally:  # the MainProcess keeps no connection a later forked child could inherit
        if _CONTEXT is not None:
            _CONTEXT.registry.dispose()
            _CONTEXT.semaphores.close()
            _CONTEXT = None
