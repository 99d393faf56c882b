"""What one worker process holds: settings, registry, claims, run log, group semaphores.

Created on first use after a fork (never shared across one); the threads pool shares one
context per process. At ``worker_ready`` the MainProcess warns about every job whose timeout
exceeds the broker's visibility timeout (such a run is redelivered while it runs; the claim
suppresses the copy) and then drops its context, so no forked child inherits a connection.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterable
from typing import Any

from bridge.core.config import Settings, load_settings
from bridge.core.errors import BridgeError
from bridge.core.spec import JobSpec
from bridge.store.db import Registry
from bridge.store.repos import JobRepo
from bridge.store.run_rows import RunRows
from legacy_wrappers.claims import Claims
from legacy_wrappers.concurrency import Semaphores
from legacy_wrappers.runlog import RunLog

log = logging.getLogger(__name__)


class WorkerContext:
    """The registry, claims, run log and semaphores of this process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = Registry(settings.database_url)
        self.claims = Claims(self.registry)
        self.semaphores = Semaphores(settings, ttl=self.claims.terms.duration.total_seconds())
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.runlog = RunLog(RunRows(self.registry), self.host)

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


def warn_long_timeouts(conf: Any) -> None:
    """Log :func:`visibility_warnings` for every job, then drop this process's context."""
    try:
        ctx = CONTEXT.get(conf)
        with ctx.registry.session() as s:
            specs = [job.spec for job in JobRepo(s).list()]
        for warning in visibility_warnings(specs, ctx.settings.visibility_timeout):
            log.warning(warning)
    except (BridgeError, OSError) as e:
        log.warning("could not check job timeouts against the visibility timeout: %s", e)
    finally:  # the MainProcess keeps no connection a later forked child could inherit
        CONTEXT.drop()
