"""``bridge worker --processes N``: N ``celery worker`` children under one small supervisor.

Why: one worker process takes and starts a minute's burst on one core, with its consumer thread
queueing for the GIL behind its pool threads (``bench/worker_cpu.py``, ``bench/firelag.py``).
N processes consume the same queues side by side (each its own kombu channel, inflight lists
and ``alive`` key: the transport's delivery guarantee is per channel), so a burst is taken and
started on every core.

What the supervisor does, and nothing more:

* starts one child per argv (:func:`child_argvs`: distinct node names, ``-n NAME`` becomes
  ``NAME`` with ``-K`` before the ``@`` for child K; only child 1 serves
  ``BRIDGE_METRICS_PORT``: every process exposes the same SQL-computed series);
* forwards TERM, INT and QUIT to every child once (Celery: TERM/INT warm shutdown, a second
  INT or a QUIT cold). The children run in their own process group, so a terminal's Ctrl-C
  reaches them only through the supervisor (not twice, which Celery would read as "cold");
* restarts a child that exited while no stop was asked, after a back-off (1 s, doubling up to
  30 s; reset once a child stayed up ``STABLE_SECONDS``). A child that fails to stay up
  ``MAX_FAILED_STARTS`` times in a row makes the supervisor stop the others and exit with its
  code (1 if it had none);
* when a stop was asked: waits for every child and exits 0 if all exited 0, else 1;
* a child gets SIGTERM (warm shutdown) if the supervisor itself dies (``PR_SET_PDEATHSIG``), so
  a SIGKILLed supervisor leaves no orphaned consumers.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("bridge.worker")

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
STABLE_SECONDS = 30.0  # a child up this long resets its back-off and failed-start count
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
MAX_FAILED_STARTS = 5
POLL_SECONDS = 0.2
NAME_OPTIONS = ("-n", "--hostname")
PR_SET_PDEATHSIG = 1


def node_name(name: str, index: int) -> str:
    """``web1@%h`` -> ``web1-2@%h`` for child 2 (a name without ``@`` gets the suffix at the
    end)."""
    local, at, host = name.partition("@")
    return f"{local}-{index}{at}{host}"


def child_argvs(argv: Sequence[str], processes: int) -> list[list[str]]:
    """One argv per child (pure): the ``-n``/``--hostname`` given made distinct, else
    ``-n bridge-K@%h`` appended."""
    out = []
    for k in range(1, processes + 1):
        child, named, i = [], False, 0
        while i < len(argv):
            arg = argv[i]
            if arg in NAME_OPTIONS and i + 1 < len(argv):
                child += [arg, node_name(argv[i + 1], k)]
                named, i = True, i + 2
                continue
            for option in NAME_OPTIONS:
                if arg.startswith(option + "="):
                    child.append(f"{option}={node_name(arg[len(option) + 1:], k)}")
                    named = True
                    break
            else:
                child.append(arg)
            i += 1
        out.append(child if named else [*child, "-n", f"bridge-{k}@%h"])
    return out


def child_env(env: Mapping[str, str], index: int) -> dict[str, str]:
    """Child ``index`` (1-based)'s environment: only the first serves the metrics port."""
    out = dict(env)
    if index > 1:
        out["BRIDGE_METRICS_PORT"] = "0"
    return out


def die_with_parent() -> None:
    """In the child between fork and exec: SIGTERM when the supervisor dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def spawn(argv: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(list(argv), env=dict(env), process_group=0,
                            preexec_fn=die_with_parent)


@dataclass
class Child:
    index: int
    argv: list[str]
    env: dict[str, str]
    proc: Any = None
    started_at: float = 0.0
    failed_starts: int = 0
    backoff: float = 0.0  # the next restart's delay; 0: FIRST_BACKOFF
    restart_at: float | None = None


@dataclass
class Supervisor:
    """Runs the children until a stop is asked (or a child cannot be kept up)."""

    children: list[Child]
    spawn: Callable[[Sequence[str], Mapping[str, str]], Any] = spawn
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    pending: list[int] = field(default_factory=list)  # signals received, not yet forwarded
    stopping: bool = False

    def on_signal(self, signum: int, _frame: Any = None) -> None:
        self.pending.append(signum)

    def install(self) -> None:
        for sig in FORWARDED:
            signal.signal(sig, self.on_signal)

    def start(self, child: Child) -> None:
        child.proc = self.spawn(child.argv, child.env)
        child.started_at, child.restart_at = self.clock(), None
        log.warning("bridge worker: child %d started (pid %d)", child.index, child.proc.pid)

    def forward(self) -> None:
        while self.pending:
            sig = self.pending.pop(0)
            self.stopping = True
            for child in self.children:
                if child.proc is not None and child.proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        child.proc.send_signal(sig)

    def run(self) -> int:
        for child in self.children:
            self.start(child)
        while True:
            self.forward()
            if self.stopping:
                if all(c.proc is None or c.proc.poll() is not None for c in self.children):
                    codes = [c.proc.returncode for c in self.children if c.proc is not None]
                    return 0 if all(code == 0 for code in codes) else 1
            else:
                failed = self.tend()
                if failed is not None:
                    self.pending.append(signal.SIGTERM)
                    self.forward()
                    self.wait_all()
                    return failed
            self.sleep(POLL_SECONDS)

    def tend(self) -> int | None:
        """Restart dead children when their back-off is over; an exit code to give up with."""
        now = self.clock()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self.start(child)
                continue
            code = child.proc.poll()
            if code is None:
                if now - child.started_at >= STABLE_SECONDS:
                    child.failed_starts, child.backoff = 0, 0.0
                continue
            if now - child.started_at < STABLE_SECONDS:
                child.failed_starts += 1
            if child.failed_starts >= MAX_FAILED_STARTS:
                log.error("bridge worker: child %d exited %s %d times in a row within %g s "
                          "of its start: stopping", child.index, code, child.failed_starts,
                          STABLE_SECONDS)
                return code if code and code > 0 else 1
            delay = child.backoff or FIRST_BACKOFF
            log.error("bridge worker: child %d (pid %d) exited %s; restarting in %g s",
                      child.index, child.proc.pid, code, delay)
            child.restart_at = now + delay
            child.backoff = min(MAX_BACKOFF, delay * 2)
        return None

    def wait_all(self) -> None:
        for child in self.children:
            if child.proc is not None:
                child.proc.wait()


def supervise(argv: Sequence[str], processes: int, env: Mapping[str, str]) -> int:
    """Run ``processes`` children of ``argv`` until stopped; the exit code."""
    logging.basicConfig(stream=sys.stderr, format="[%(asctime)s: %(levelname)s/supervisor] "
                        "%(message)s")
    children = [Child(k, child, child_env(env, k))
                for k, child in enumerate(child_argvs(argv, processes), start=1)]
    supervisor = Supervisor(children)
    supervisor.install()
    return supervisor.run()


def default_processes() -> int:
    """One: measured on 2 CPUs with a SQLite registry (``bench/firelag.py`` at 1,000 jobs, the
    batched take), two processes started the burst later than one (p99 4.3 s against 3.9 s):
    the commands need the second core, and two processes contend for the registry's write
    lock. ``--processes`` is there for machines with more cores or a PostgreSQL registry."""
    return 1
