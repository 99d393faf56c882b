"""``bridge worker``: the Celery worker line that runs ``bridge.run_job``, sized for bursts.

Replaces this process by::

    celery -A legacy_wrappers.tasks worker --pool threads --concurrency 200 \\
        --without-gossip --without-mingle [-Q QUEUES] [extra celery options]

Why threads: a ``bridge.run_job`` spends almost all its time waiting (on its command's
subprocess, on the registry), so a thread pool starts a minute's burst of jobs side by side,
where a prefork pool of 2-4 processes starts them 2-4 at a time and each job's command waits
for every job queued before it (``bench/firelag.py``: 1,000 every-minute jobs). The commands
themselves run in their own processes (the runner's ``fork``/``exec``), so the GIL holds back
only the wrapper's Python, not the jobs. Prefetch stays at Celery's ``worker_prefetch_multiplier
= 1`` per thread, so the worker never holds more unacknowledged messages than it can start.
Callable handlers' timeouts use SIGALRM, which only works on a process's main thread: if your
jobs are Python callables with timeouts, run them in a separate ``--pool prefork`` worker on
their own queue (``policies.queue``).

Anything after ``--`` is passed to ``celery worker`` unchanged (``-- -n web1@%h -l INFO``).
"""

from __future__ import annotations

import os
import shutil
import sys

import typer

from bridge.cli.context import err

POOLS = ("threads", "prefork", "solo", "gevent", "eventlet")


def worker_argv(pool: str, concurrency: int, queues: str | None, extra: list[str]) -> list[str]:
    """The command line (pure); ValueError for a bad option."""
    if pool not in POOLS:
        raise ValueError(f"--pool must be one of {', '.join(POOLS)}, not {pool!r}")
    if concurrency < 1:
        raise ValueError("--concurrency must be at least 1")
    celery = shutil.which("celery", path=os.path.dirname(sys.executable)) or "celery"
    argv = [celery, "-A", "legacy_wrappers.tasks", "worker", "--pool", pool,
            "--concurrency", str(concurrency), "--without-gossip", "--without-mingle"]
    if queues:
        argv += ["-Q", queues]
    return argv + list(extra)


def worker(
    pool: str = typer.Option("threads", "--pool", help=f"Celery pool: {', '.join(POOLS)}."),
    concurrency: int = typer.Option(
        200, "--concurrency", help="Jobs started side by side (threads: one per running job)."),
    queues: str = typer.Option(None, "--queues", "-Q", help="Comma-separated queues to consume."),
    extra: list[str] = typer.Argument(None, help="Options passed on to `celery worker`."),
) -> None:
    """Start a Celery worker for the bridge's jobs, sized for bursts (replaces this process)."""
    try:
        argv = worker_argv(pool, concurrency, queues, extra or [])
    except ValueError as e:
        err.print(f"error: {e}", markup=False, highlight=False)
        raise typer.Exit(2) from e
    sys.stdout.flush()
    os.execvpe(argv[0], argv, dict(os.environ))
