"""What one worker process holds: settings, registry, claims, run log, group semaphores.

Created on first use after a fork (never shared across one); the threads pool shares one
context per process. At ``worker_ready`` the MainProcess warns about every job whose timeout
exceeds the broker's visibility timeout (such a run is redelivered while it runs; the claim
suppresses the copy) and then drops its context, so no forked child inherits a connection; a
threads pool's process, which runs the tasks itself, keeps it and warms up (:func:`warm_up`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import socket
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from bridge.core.config import Settings, load_settings
from bridge.core.errors import BridgeError
from bridge.core.jobs import StoredJob
from bridge.core.spec import JobSpec
from bridge.store.db import Registry
from bridge.store.job_lookup import JobLookup
from bridge.store.repos import JobRepo
from bridge.store.run_rows import RunRows
from legacy_wrappers.admission import evaluator_of
from legacy_wrappers.claims import Claims
from legacy_wrappers.concurrency import Semaphores
from legacy_wrappers.runlog import RunLog

log = logging.getLogger(__name__)

WARM_UP_SECONDS = 30.0


class WorkerContext:
    """The registry, job lookup, claims, run log and semaphores of this process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = Registry(settings.database_url)
        self.claims = Claims(self.registry)
        self.semaphores = Semaphores(settings, ttl=self.claims.terms.duration.total_seconds())
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.runlog = RunLog(RunRows(self.registry), self.host)
        self.jobs = JobLookup(self.registry)

    def close(self) -> None:
        self.registry.dispose()
        self.semaphores.close()


class ContextSlot:
    """The current process's context, made once per process (lock: the threads pool)."""

    def __init__(self) -> None:
        self.current: WorkerContext | None = None
        self.lock = threading.Lock()

    def get(self, conf: Any) -> WorkerContext:
        """This process's context; settings from the app's ``conf.bridge_settings`` (else the
        environment)."""
        ctx = self.current
        if ctx is not None and ctx.pid == os.getpid():
            return ctx
        with self.lock:
            if self.current is None or self.current.pid != os.getpid():
                settings = getattr(conf, "bridge_settings", None) or load_settings()
                self.current = WorkerContext(settings)
            return self.current

    def drop(self) -> None:
        with self.lock:
            ctx, self.current = self.current, None
        if ctx is not None:
            ctx.close()


CONTEXT = ContextSlot()


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


def warn_long_timeouts(conf: Any, *, keep: bool = False) -> list[StoredJob]:
    """Log :func:`visibility_warnings` for every job; return the jobs read. Then drop this
    process's context, unless ``keep`` (a threads pool: this very process runs the tasks)."""
    jobs: list[StoredJob] = []
    try:
        ctx = CONTEXT.get(conf)
        with ctx.registry.session() as s:
            jobs = JobRepo(s).list()
        for warning in visibility_warnings([job.spec for job in jobs],
                                           ctx.settings.visibility_timeout):
            log.warning(warning)
    except (BridgeError, OSError) as e:
        log.warning("could not check job timeouts against the visibility timeout: %s", e)
        keep = False
    finally:  # the MainProcess keeps no connection a later forked child could inherit
        if not keep:
            CONTEXT.drop()
    return jobs


def warm_up(pool: Any, conf: Any, jobs: Iterable[StoredJob]) -> int:
    """Before the first message, a threads pool's worker starts every thread (each with its
    registry connection) and decodes every job's spec and schedule, then freezes what it holds
    out of the garbage collector's full scans, so the first burst after a start pays none of
    it: a pool thread started during a burst makes the consumer wait for it to be scheduled,
    behind every thread holding the interpreter. Returns the threads started (0: not a
    threads pool)."""
    executor = getattr(pool, "executor", None)
    limit = int(getattr(pool, "limit", 0) or 0)
    if not isinstance(executor, ThreadPoolExecutor) or limit < 1:
        return 0
    ctx = CONTEXT.get(conf)
    ctx.jobs.prime(jobs)
    for job in jobs:
        with contextlib.suppress(BridgeError):  # a bad schedule is refused when it fires
            evaluator_of(job.spec.schedule)
    gate = threading.Event()

    def hold() -> None:
        with contextlib.suppress(BridgeError):
            ctx.registry.direct.warm()
        gate.wait(WARM_UP_SECONDS)

    futures = [executor.submit(hold) for _ in range(limit)]
    gate.set()
    wait(futures, timeout=WARM_UP_SECONDS)
    gc.collect()
    gc.freeze()  # the started worker's objects: out of every later full collection's scan
    return len(futures)
