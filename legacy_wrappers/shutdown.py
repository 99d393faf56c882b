"""Warm shutdown: ask every running command of this worker to stop.

Armed in the worker's MainProcess at ``worker_init`` (a flag file whose path the pool's children
inherit through the environment), requested at ``worker_shutting_down``, removed at
``worker_shutdown`` or at exit (a cold shutdown skips ``worker_shutdown``). The runner polls
:meth:`ShutdownWatch.requested` every 0.1 s: SIGTERM to the command's process group, SIGKILL
after ``settings.worker_shutdown_grace`` s; the run is recorded ``interrupted`` and retried
through the claim per the retry policy. Deploy with systemd ``KillMode=mixed`` so the service
manager does not SIGTERM the jobs' own sessions first.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
import threading

SHUTDOWN_FLAG_ENV = "CRON_BRIDGE_SHUTDOWN_FLAG"  # not BRIDGE_*: settings reject unknown names


class ShutdownWatch:
    """The shutdown request of this worker (an event in-process, a flag file across a fork)."""

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
