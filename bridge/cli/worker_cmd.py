"""``bridge worker``: the Celery worker line that runs ``bridge.run_job``, sized for bursts.

With ``--processes 1`` it replaces this process by::

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

``--processes N`` (default 1) runs N such workers side by side under a small supervisor
(:mod:`bridge.cli.worker_supervisor`): one process runs the wrappers' Python on one core; N
processes use N cores. On 2 CPUs with SQLite, one process started a 1,000-job burst sooner than
two (the commands need the other core, and two processes contend for the registry's write
lock: ``bench/firelag.py``), hence the default; with more cores or PostgreSQL, measure. Each
child gets a distinct node name (``-n web1@%h`` becomes ``web1-1@%h``, ``web1-2@%h``, ...;
without ``-n``: ``bridge-K@%h``) and ``--concurrency`` threads; only the first serves
``BRIDGE_METRICS_PORT``. TERM/INT/QUIT sent to ``bridge worker`` reach every child once (warm or
cold shutdown as with one Celery worker); a child that dies is restarted with a back-off, and
``bridge worker`` exits non-zero if one cannot be kept up.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping

import typer

from bridge.cli.context import STATE, err
from bridge.cli.worker_supervisor import default_processes, supervise
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


def worker_env(environ: Mapping[str, str], *, events: bool) -> dict[str, str]:
    """The worker's environment (pure): ``--events`` is ``BRIDGE_TASK_EVENTS=1``."""
    env = dict(environ)
    if events:
        env["BRIDGE_TASK_EVENTS"] = "1"
    return env


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
    processes: int = typer.Option(
        None, "--processes", help="Worker processes side by side, each with --concurrency "
        "threads under a supervisor (default 1: this process becomes the Celery worker)."),
    events: bool = typer.Option(
        False, "--events", help="Send task events from the first task (BRIDGE_TASK_EVENTS=1). "
        "Without it Flower switches them on within 5 s of seeing the worker; unwatched, "
        "they only cost CPU."),
    extra: list[str] = typer.Argument(None, help="Options passed on to `celery worker`."),
) -> None:
    """Start the Celery worker(s) for the bridge's jobs, sized for bursts."""
    try:
        if shared_only and host is not None:
            raise ValueError("--host and --shared-only exclude each other")
        if processes is None:
            processes = default_processes()
        if processes < 1:
            raise ValueError("--processes must be at least 1")
        on = None if shared_only else (host or this_host())
        argv = worker_argv(pool, concurrency, queues, extra or [], on,
                           STATE.settings.default_queue)
    except ValueError as e:
        err.print(f"error: {e}", markup=False, highlight=False)
        raise typer.Exit(2) from e
    sys.stdout.flush()
    env = worker_env(os.environ, events=events)
    if processes == 1:
        os.execvpe(argv[0], argv, env)
    raise typer.Exit(supervise(argv, processes, env))
