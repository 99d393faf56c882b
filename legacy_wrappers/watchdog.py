"""Kills the running jobs' process groups if this (worker) process dies.

A SIGKILLed worker cannot stop its commands, and each command runs in its own session, so
it would outlive the worker and overlap the run that takes the slot over once the lease
expires. One small ``sh`` per process (started on first use, in its own session) reads
``start PGID`` / ``done PGID`` lines from a pipe only this process writes; at EOF without
``done`` (this process died) it sends SIGTERM to every still-running group, then SIGKILL
after the grace. Builtins only: registering a run costs one pipe write, not a fork; the shell
drops a finished group by pattern expansion (in C), not by a loop over every group in flight
(a loop that cost 0.5 ms of CPU per run with 200 runs in flight: ``bench/worker_cpu.py``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import threading

DEFAULT_GRACE = 10.0


class Watchdog:
    """The watchdog shell of this process (see the module docstring)."""

    SCRIPT = (
        'active=" "; '
        'while read cmd pg; do case "$cmd" in '
        'start) active="$active$pg ";; '
        'done) case "$active" in *" $pg "*) '
        'active="${active%%" $pg "*} ${active#*" $pg "}";; esac;; '
        'esac; done; '
        '[ -z "${active# }" ] && exit 0; '
        'for p in $active; do kill -TERM "-$p" 2>/dev/null; done; sleep "$1"; '
        'for p in $active; do kill -KILL "-$p" 2>/dev/null; done'
    )

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.lock = threading.Lock()
        self.pid = -1
        self.proc: subprocess.Popen[bytes] | None = None

    def ensure(self) -> subprocess.Popen[bytes]:
        if self.proc is None or self.pid != os.getpid() or self.proc.poll() is not None:
            self.pid = os.getpid()
            self.proc = subprocess.Popen(
                ["/bin/sh", "-c", self.SCRIPT, "bridge-watchdog", f"{self.grace:g}"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True, cwd="/",
            )
        return self.proc

    def send(self, line: str) -> None:
        with self.lock:
            for _ in range(2):
                proc = self.ensure()
                assert proc.stdin is not None
                try:
                    proc.stdin.write(line.encode())
                    proc.stdin.flush()
                    return
                except (BrokenPipeError, ValueError):
                    self.proc = None  # it died: start another and say it again

    def watch(self, pgid: int) -> None:
        with contextlib.suppress(OSError):
            self.send(f"start {pgid}\n")

    def release(self, pgid: int) -> None:
        with contextlib.suppress(OSError):
            self.send(f"done {pgid}\n")

    def close(self) -> None:
        """At a clean exit: EOF with nothing running, so the watchdog just exits."""
        proc, self.proc = self.proc, None
        if proc is None or self.pid != os.getpid():
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1)


WATCHDOG = Watchdog(DEFAULT_GRACE)
atexit.register(WATCHDOG.close)
