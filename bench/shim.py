"""Latency the SHELL shim adds to every legacy cron job.

Each case runs the command ``true`` the way cron does (``<shell> -c true``, cron's environment
variables), timed from the parent's ``fork`` to the child's exit (what cron waits for). The
shim is the fast launcher (``python -m legacy_wrappers.launcher``, written into the bench's
temporary directory: ``python -I -S``), its cache warm as on any machine where cron runs the
job every minute (the first, untimed warm-up runs fill it):

* ``plain_sh``         — ``/bin/sh -c true`` (the baseline: cron without the bridge);
* ``console_unmanaged`` — pip's console script ``bridge-cron-shell`` with ``BRIDGE_JOB=""``
  (what the launcher saves: a full interpreter start with ``site``);
* ``shim_unmanaged``   — the shim with ``BRIDGE_JOB=""`` (exec of the shell, nothing recorded);
* ``shim_sqlite``      — the shim recording to a SQLite registry (read job + authority, claim,
  run, complete claim + runs row) that another connection holds open, as a running beat or
  worker does;
* ``shim_sqlite_lonely`` — the same on a registry nothing else has open: every shim run is the
  last connection to close it, so SQLite checkpoints and deletes the WAL file each time;
* ``shim_sqlite_down`` — registry unreachable (missing SQLite file): cached authority, spool;
* ``shim_pg_down``     — registry unreachable (dead PostgreSQL port): libpq loaded, connection
  refused, spool;
* ``shim_postgresql``  — a live PostgreSQL registry (``--pg``: a disposable database on the
  local server, ``BRIDGE_TEST_PG_ADMIN``; or ``--pg-url``, a disposable database): as
  shim_sqlite, through libpq.

Every timed run must exit 0 and every recorded case must leave exactly one new record (a run row
in the registry, or a spool line for the outage cases), and every registry run must be the
common path (``authoritative``/``succeeded`` without a note: a slot found, the claim taken): a
shim that silently skipped its work would look fast, so the bench exits 1 instead.

Cases are interleaved run by run so a busy shared machine affects them alike. Claims and spool
files are removed between runs (untimed) so every run takes the common path (a fresh slot).
Results: ``bench/results/shim.json`` and a table of p50/p99 and the p50 added vs plain sh.

    .venv/bin/python bench/shim.py [--runs 100] [--pg | --pg-url postgresql+psycopg://.../db]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "shim.json"
CONSOLE_SCRIPT = str(Path(sys.executable).parent / "bridge-cron-shell")
JOB = "bench-shim-1"
WARMUP = 5


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(url: str) -> None:
    """Migrate the registry and add one every-minute job owned by legacy."""
    from bridge.core.authority import Owner
    from bridge.core.spec import CommandHandler, Dialect, JobSpec, ScheduleSpec, SourceLocation
    from bridge.store.db import Registry, upgrade
    from bridge.store.repos import AuthorityRepo, JobRepo

    registry = Registry(url, check_schema=False)
    upgrade(registry.engine)
    with registry.session() as s:
        spec = JobSpec(id=JOB, schedule=ScheduleSpec(dialect=Dialect.VIXIE, expression="* * * * *"),
                       handler=CommandHandler(command="true"), source=SourceLocation("/bench", 1))
        if JobRepo(s).upsert(spec)[0] == "create":
            AuthorityRepo(s).append(JOB, Owner.LEGACY, effective_slot=None, actor="bench",
                                    reason=None)
    registry.dispose()


def cleaner(url: str) -> Callable[[], None]:
    """Untimed: forget claims, so the next run claims a fresh (job, slot)."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1]

        def clean_sqlite() -> None:
            with sqlite3.connect(path) as conn:
                conn.execute("DELETE FROM claims")

        return clean_sqlite
    import psycopg

    conninfo = "postgresql://" + url.split("://", 1)[1]

    def clean_pg() -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("DELETE FROM claims")

    return clean_pg


def run_counter(url: str) -> Callable[[], int]:
    """Untimed: how many runs rows the registry holds."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1]

        def count_sqlite() -> int:
            with sqlite3.connect(path) as conn:
                return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])

        return count_sqlite
    import psycopg

    conninfo = "postgresql://" + url.split("://", 1)[1]

    def count_pg() -> int:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM runs").fetchone()
            return int(row[0]) if row else 0

    return count_pg


def run_outcomes(url: str) -> list[tuple[str, str, str | None]]:
    """Untimed: (role, status, error) of every runs row of the bench job."""
    sql = f"SELECT role, status, error FROM runs WHERE job_id = '{JOB}' ORDER BY id"
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split(":///", 1)[1]) as conn:
            return [tuple(r) for r in conn.execute(sql)]  # type: ignore[misc]
    import psycopg

    with psycopg.connect("postgresql://" + url.split("://", 1)[1], autocommit=True) as conn:
        return [tuple(r) for r in conn.execute(sql)]  # type: ignore[misc]


def spool_counter(spool: Path) -> Callable[[], int]:
    """Untimed: how many records the spool holds (one JSON line each)."""

    def count() -> int:
        return sum(len(p.read_text().splitlines()) for p in spool.glob("*.jsonl")) \
            if spool.exists() else 0

    return count


def cron_env(work: Path, shim: str, **extra: str) -> dict[str, str]:
    env = {"HOME": str(work), "LOGNAME": "root", "PATH": "/usr/bin:/bin", "SHELL": shim,
           "BRIDGE_SHELL": "/bin/sh", "BRIDGE_SPOOL_DIR": str(work / "spool"),
           "BRIDGE_AUTHORITY_DIR": str(work / "authority"), "XDG_CONFIG_HOME": str(work)}
    env.update(extra)
    return env


def cases(work: Path, sqlite_url: str, lonely_url: str,
          pg_url: str | None) -> dict[str, tuple[list[str], dict[str, str]]]:
    from legacy_wrappers.launcher import install

    shim = install(str(work / "bridge-cron-shell"))
    dead_pg = f"postgresql+psycopg://bench@127.0.0.1:{free_port()}/none"
    out = {
        "plain_sh": (["/bin/sh", "-c", "true"], cron_env(work, shim, SHELL="/bin/sh")),
        "console_unmanaged": ([CONSOLE_SCRIPT, "-c", "true"],
                              cron_env(work, CONSOLE_SCRIPT, BRIDGE_JOB="")),
        "shim_unmanaged": ([shim, "-c", "true"], cron_env(work, shim, BRIDGE_JOB="")),
        "shim_sqlite": ([shim, "-c", "true"],
                        cron_env(work, shim, BRIDGE_JOB=JOB, BRIDGE_DATABASE_URL=sqlite_url)),
        "shim_sqlite_lonely": ([shim, "-c", "true"], cron_env(
            work, shim, BRIDGE_JOB=JOB, BRIDGE_DATABASE_URL=lonely_url)),
        "shim_sqlite_down": ([shim, "-c", "true"], cron_env(
            work, shim, BRIDGE_JOB=JOB,
            BRIDGE_DATABASE_URL=f"sqlite:///{work}/missing/registry.db")),
        "shim_pg_down": ([shim, "-c", "true"],
                         cron_env(work, shim, BRIDGE_JOB=JOB, BRIDGE_DATABASE_URL=dead_pg)),
    }
    if pg_url:
        out["shim_postgresql"] = ([shim, "-c", "true"], cron_env(
            work, shim, BRIDGE_JOB=JOB, BRIDGE_DATABASE_URL=pg_url))
    return out


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    code = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    elapsed = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"{argv} exited {code}")
    return elapsed


def measure(runs: int, pg_url: str | None) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-shim-"))
    try:
        sqlite_url = f"sqlite:///{work}/registry.db"
        lonely_url = f"sqlite:///{work}/registry-lonely.db"
        for url in (sqlite_url, lonely_url):
            seed(url)
        # a running bridge (beat, worker) keeps its SQLite registry open: the shim's connection
        # is then never the last one, whose close checkpoints and deletes the WAL file
        holder = sqlite3.connect(sqlite_url.split(":///", 1)[1])
        holder.execute("SELECT count(*) FROM jobs").fetchone()
        cleaners = {"shim_sqlite": cleaner(sqlite_url), "shim_sqlite_lonely": cleaner(lonely_url)}
        if pg_url:
            seed(pg_url)
            cleaners["shim_postgresql"] = cleaner(pg_url)
        plan = cases(work, sqlite_url, lonely_url, pg_url)
        counters = {"shim_sqlite": run_counter(sqlite_url),
                    "shim_sqlite_lonely": run_counter(lonely_url)}
        if pg_url:
            counters["shim_postgresql"] = run_counter(pg_url)
        for name in plan:
            if name.endswith("_down"):
                counters[name] = spool_counter(work / "spool")
        timings: dict[str, list[float]] = {name: [] for name in plan}
        for i in range(WARMUP + runs):
            for name, (argv, env) in plan.items():
                before = counters[name]() if name in counters else 0
                elapsed = timed(argv, env, work)
                if name in counters and counters[name]() - before != 1:
                    raise SystemExit(f"degenerate workload: {name} run {i} left "
                                     f"{counters[name]() - before} records, 1 expected")
                if i >= WARMUP:
                    timings[name].append(elapsed)
                if name in cleaners:
                    cleaners[name]()
                shutil.rmtree(work / "spool", ignore_errors=True)
        holder.close()
        urls = {"shim_sqlite": sqlite_url, "shim_sqlite_lonely": lonely_url,
                **({"shim_postgresql": pg_url} if pg_url else {})}
        for name, url in urls.items():  # every run took the common path: ran, claimed, no note
            outcomes = run_outcomes(url)
            if outcomes != [("authoritative", "succeeded", None)] * (WARMUP + runs):
                odd = sorted(set(outcomes) - {("authoritative", "succeeded", None)})
                raise SystemExit(f"degenerate workload: {name} recorded {len(outcomes)} runs, "
                                 f"{WARMUP + runs} expected, all authoritative/succeeded without "
                                 f"a note; also saw {odd}")
        return summarize(timings, runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def summarize(timings: dict[str, list[float]], runs: int) -> dict[str, Any]:
    base = percentile(timings["plain_sh"], 0.5)
    table = {
        name: {"p50_ms": round(percentile(v, 0.5) * 1000, 2),
               "p99_ms": round(percentile(v, 0.99) * 1000, 2),
               "added_p50_ms": round((percentile(v, 0.5) - base) * 1000, 2)}
        for name, v in timings.items()
    }
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                 "load_average_1m": os.getloadavg()[0]},
        "runs_per_case": runs,
        "cases": table,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--pg-url", default=None, help="a disposable PostgreSQL database")
    parser.add_argument("--pg", action="store_true",
                        help="create (and drop) a disposable database on the local server")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if args.pg and not args.pg_url:
        sys.path.insert(0, str(HERE))
        from pgtemp import disposable_pg

        with disposable_pg("shim") as url:
            result = measure(args.runs, url)
    else:
        result = measure(args.runs, args.pg_url)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'case':<18} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10}")
    for name, row in result["cases"].items():
        p50, p99, added = row["p50_ms"], row["p99_ms"], row["added_p50_ms"]
        print(f"{name:<18} {p50:>8.1f} {p99:>8.1f} {added:>10.1f}")
    print(f"(load average {result['host']['load_average_1m']:.2f}, {args.runs} runs per case)")


if __name__ == "__main__":
    main()
