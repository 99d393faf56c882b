"""Group permits in the task: a run of a limited group holds a permit while it runs.

After the claim is won (and the overlap check passed) the run takes a permit of its group's
Redis semaphore (:mod:`legacy_wrappers.concurrency`), renewed by the claim's heartbeat and
released when the run is recorded. A full group publishes a retry in 2-5 s and parks the claim
``deferred`` (attempts unchanged, resumable only by the same lineage); no row is written for a
deferral: the task's result is :data:`DEFERRED`. Shadow runs ignore the limit.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

import redis

from bridge.adapters.redis_conn import unreachable
from bridge.core.spec import JobSpec
from legacy_wrappers.claims import Lease
from legacy_wrappers.concurrency import Permit
from legacy_wrappers.messages import JobRequest
from legacy_wrappers.retry_policy import GROUP_RETRY_SECONDS
from legacy_wrappers.worker_context import WorkerContext

if TYPE_CHECKING:
    from celery import Task

log = logging.getLogger(__name__)

DEFERRED = "deferred"  # a task result only: a deferral writes no runs row


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
    return DEFERRED
