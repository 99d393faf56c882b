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

Placement (:mod:`bridge.core.placement`): a crontab job is bound to its host and published to
that host's queue (``bridge.host.<host>``), so the worker consumes, besides the shared queues
(``-Q``, default the ``bridge`` queue), each one's variant for its host: ``--host`` (default
this machine's name, the host a local ``bridge import crontab`` records). ``bridge worker --host
web-01`` is::

    celery -A legacy_wrappers.tasks worker ... -Q bridge,bridge.host.web-01

``--shared-only`` consumes the shared queues alone (a machine that runs no crontab of its own).
The bridge transport keeps its delivery guarantee on several queues
(:mod:`bridge.adapters.transport`).

Anything after ``--`` is passed to ``celery worker`` unchanged (``-- -n web1@%h -l INFO``).
"""

from __future__ import annotations

import os
import shutil
import sys

import typer

from bridge.cli.context import STATE, err
from bridge.core.hosts import host_problem
from bridge.core.placement import worker_queues
from bridge.services.importer import this_host

POOLS = ("threads", "prefork", "solo", "gevent", "eventlet")


def worker_argv(pool: str, concurrency: int, queues: str | None, extra: list[str],
                host: str | None = None, default_queue: str = "bridge") -> list[str]:
    """The command line (pure); ValueError for a bad option. ``host``: also consume that host's
    variant of every queue (``-Q`` given, else ``default_queue``)."""
    if host is not None:
        problem = host_problem(host)
        if problem is not None:
            raise ValueError(f"--host '{host}': {problem}")
        queues = ",".join(worker_queues((queues or default_queue).split(","), host))
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
    queues: str = typer.Option(None, "--queues", "-Q", help="Comma-separated shared queues to "
                               "consume (default: the bridge queue)."),
    host: str = typer.Option(None, "--host", help="The host this worker runs on: it also "
                             "consumes that host's queue of each shared queue (default: this "
                             "machine's name)."),
    shared_only: bool = typer.Option(False, "--shared-only", help="Consume no host's queue "
                                     "(only jobs placed anywhere)."),
    extra: list[str] = typer.Argument(None, help="Options passed on to `celery worker`."),
) -> None:
    """Start a Celery worker for the bridge's jobs, sized for bursts (replaces this process)."""
    try:
        if shared_only and host is not None:
            raise ValueError("--host and --shared-only exclude each other")
        on = None if shared_only else (host or this_host())
        argv = worker_argv(pool, concurrency, queues, extra or [], on,
                           STATE.settings.default_queue)
    except ValueError as e:
        err.print(f"error: {e}", markup=False, highlight=False)
        raise typer.Exit(2) from e
    sys.stdout.flush()
    os.execvpe(argv[0], argv, dict(os.environ))
