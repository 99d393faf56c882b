"""Placement: which Celery queue a job's messages go to, and which queues a worker consumes.

Pure rules (no I/O). A job with a host (``JobSpec.host``: every crontab job) is **host-bound**
by default (:attr:`Placement.HOST`): its legacy line touches that host's files, so its
messages go to the host's own queue, :func:`host_queue` of its ``policies.queue`` and its host
(``bridge.host.web-01``), and only a worker started on that host consumes it
(``bridge worker --host web-01``: :func:`worker_queues`). A job marked
``placement=anywhere`` (crontab directive ``# bridge: placement=anywhere``, Quartz job-data key
``bridge.placement``, ``bridge jobs set --placement anywhere``), and a job with no host (a Quartz
store's, a manual one), goes to its ``policies.queue`` itself, which any worker consumes.
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge.core.spec import JobSpec, Placement

HOST_INFIX = ".host."


def host_queue(queue: str, host: str) -> str:
    """The per-host variant of ``queue``: ``bridge`` on ``web-01`` -> ``bridge.host.web-01``."""
    return f"{queue}{HOST_INFIX}{host}"


def queue_host(queue: str) -> str | None:
    """The host a per-host queue belongs to (None for a shared queue)."""
    _, sep, host = queue.partition(HOST_INFIX)
    return host if sep and host else None


def host_bound(spec: JobSpec) -> bool:
    """Whether only a worker on the job's host may run it."""
    return spec.host is not None and spec.policies.placement is Placement.HOST


def job_queue(spec: JobSpec) -> str:
    """The queue the job's messages are published to (beat, repairs, manual triggers)."""
    host = spec.host
    if host is None or spec.policies.placement is not Placement.HOST:
        return spec.policies.queue
    return host_queue(spec.policies.queue, host)


def worker_queues(queues: Iterable[str], host: str | None) -> list[str]:
    """The queues a worker on ``host`` consumes: each of ``queues`` (shared: jobs placed
    anywhere) and, after them, its host's variant of each (host-bound jobs), no duplicates."""
    shared = list(dict.fromkeys(q for q in queues if q))
    if host is None:
        return shared
    return list(dict.fromkeys([*shared, *(host_queue(q, host) for q in shared)]))
