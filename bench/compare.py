"""Shadow-diff benchmark: 1,000 jobs x 1,000 slots (2,000,000 observations) per backend.

    python bench/compare.py                       # SQLite and PostgreSQL (the venv's python)
    python bench/compare.py --backends sqlite --jobs 100 --out /tmp/compare.json

Setup (not timed): a temporary SQLite registry and a temporary PostgreSQL database on the local
server (``--pg-admin``, default ``postgresql://postgres@127.0.0.1:5432/postgres``; dropped at
the end), both migrated with the bridge's Alembic scripts; ``jobs`` hourly vixie jobs
registered through ``JobRepo``, imported a day before the window (so every slot is expected);
``jobs x slots`` legacy + Celery observations of a realistic :class:`observations.Workload`
(mostly matching; some Celery or legacy firings missing, late firings, outcome mismatches,
slots Celery ran twice) bulk-loaded (SQLite: DB-API ``executemany``; PostgreSQL: ``COPY``).

Timed, in a fresh child process per backend: open the registry, list the jobs, and run
:func:`shadow.report.build_report` over the whole window: per job one indexed query of compact
rows (slot key, path/role/status code, exit status, row id; :mod:`shadow.scan`) whose trivially
matching slots are counted without building observations, the rest fetched in full by row id
in batches and judged by the comparator, then the summary and readiness; then again with
``--workers`` processes (:func:`shadow.report.build_report_parallel`).

The bench checks itself: the report must find ``jobs x slots`` expected slots and exactly the
verdicts the workload generated (matches > 0, no ``unexpected_slot``); otherwise it exits
non-zero naming the difference. Reported: wall seconds, CPU seconds of the serial run, peak
RSS of the whole process tree (the measuring process and its workers, sampled every 50 ms from
the parent, and at least the measuring process's own ``ru_maxrss``), the verdict totals, and a
speed reference (``sum(range(1000))`` in microseconds) to scale the figures to another machine.
Targets: under 10 s and under 500 MB. Writes ``bench/results/compare.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from observations import (  # noqa: E402
    COLUMNS,
    EPOCH,
    Workload,
    fill_sqlite,
    job_expression,
    job_id,
)

from bridge.core.spec import CommandHandler, JobSpec, ScheduleSpec  # noqa: E402
from bridge.store.db import Registry, upgrade  # noqa: E402
from bridge.store.models import JobRow  # noqa: E402
from bridge.store.repos import JobRepo  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET_SECONDS, TARGET_MB = 10.0, 500.0


IMPORTED = EPOCH - timedelta(days=1)  # every job entered the registry before the window


def window(slots: int) -> tuple[Any, Any, Any]:
    """``(since, until]`` holding exactly ``slots`` slots of every job; ``now`` a day later
    (nothing pending)."""
    since = EPOCH - timedelta(seconds=1)
    until = EPOCH + timedelta(hours=slots) - timedelta(seconds=1)
    return since, until, until + timedelta(days=1)


def register_jobs(reg: Registry, jobs: int) -> None:
    from sqlalchemy import update

    with reg.session() as s:
        repo = JobRepo(s)
        for i in range(jobs):
            repo.upsert(JobSpec(
                id=job_id(i),
                schedule=ScheduleSpec(dialect="vixie", expression=job_expression(i)),
                handler=CommandHandler(command=f"/usr/local/bin/task {i}"),
            ))
        s.execute(update(JobRow).values(created_at=IMPORTED))


def fill_postgres(reg: Registry, rows: Iterator[tuple[Any, ...]]) -> int:
    """``COPY runs FROM STDIN`` (timestamps as naive UTC, as the column type stores them)."""
    raw = reg.engine.raw_connection()
    count = 0
    try:
        cur = raw.cursor()
        with cur.copy(f"COPY runs ({', '.join(COLUMNS)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for row in rows:
                copy.write_row(tuple(
                    v.replace(tzinfo=None) if hasattr(v, "tzinfo") else v for v in row
                ))
                count += 1
        raw.commit()
        cur.execute("ANALYZE runs")
        raw.commit()
    finally:
        raw.close()
    return count


def setup(backend: str, url: str, jobs: int, slots: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    reg = Registry(url, check_schema=False)
    upgrade(reg.engine)
    register_jobs(reg, jobs)
    fill = fill_sqlite if backend == "sqlite" else fill_postgres
    workload = Workload(jobs, slots)
    rows = fill(reg, workload.rows())
    reg.dispose()
    if rows != workload.rows_made:
        raise SystemExit(f"compare bench: loaded {rows} rows, generated {workload.rows_made}")
    return {"rows": rows, "setup_seconds": round(time.perf_counter() - t0, 1),
            "generated": dict(workload.expected)}


def check_workload(result: dict[str, Any], jobs: int, slots: int) -> list[str]:
    """Why a measured report does not answer the generated workload (empty when it does):
    every slot expected, the verdict counts exactly as generated, matches present."""
    problems = []
    want = result["generated"]
    counts = {k: v for k, v in result["counts"].items() if v}
    if result["slots"] != jobs * slots:
        problems.append(f"{result['slots']} expected slots, generated {jobs * slots}")
    if counts != {k: v for k, v in want.items() if v}:
        problems.append(f"verdicts {counts} != generated {want}")
    if not counts.get("match"):
        problems.append("no slot matched: the fast path was not exercised")
    return problems


def measure(url: str, slots: int, workers: int) -> dict[str, Any]:
    """The timed part (runs in the child): list jobs, diff them all, summarise."""
    from shadow.report import build_report, build_report_parallel

    since, until, now = window(slots)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0, c0 = time.perf_counter(), time.process_time()
    reg = Registry(url)
    with reg.session() as s:
        ids = [job.id for job in JobRepo(s).list()]
        if workers > 1:
            report = build_report_parallel(s, url, ids, since, until, now, workers=workers,
                                           timeline_limit=0)
        else:
            report = build_report(s, ids, since, until, now, timeline_limit=0)
    wall = time.perf_counter() - t0
    # the workers are forkserver children, invisible to RUSAGE_CHILDREN: CPU only when serial
    cpu = time.process_time() - c0 if workers == 1 else None
    totals = report.totals()
    reg.dispose()
    return {
        "workers": workers, "seconds": round(wall, 2),
        "cpu_seconds": None if cpu is None else round(cpu, 2),
        "own_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_after_imports_mb": round(rss0, 1),
        "jobs": totals["jobs"], "slots": totals["expected_slots"], "counts": totals["counts"],
    }


def tree_rss_mb(root: int) -> float:
    """Resident MB of ``root`` and all its descendants now (``/proc``; 0 once gone)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == pid and p not in tree]
        tree.update(kids)
        frontier.extend(kids)
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in tree:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total / 2**20


def run_child(url: str, slots: int, workers: int) -> dict[str, Any]:
    """The measurement in a fresh process; the peak RSS of its whole process tree (it and its
    workers together) sampled every 50 ms from here, and its own exact ``ru_maxrss``."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--measure", url, "--slots", str(slots),
         "--workers", str(workers)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, tree_rss_mb(proc.pid))
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"compare bench: the measuring process failed:\n{err}")
    result = dict(json.loads(out.strip().splitlines()[-1]))
    result["peak_rss_mb"] = round(max(peak, result["own_peak_rss_mb"]), 1)
    return result


def pg_database(admin: str) -> tuple[str, Any]:
    import psycopg

    name = f"bridge_bench_{uuid.uuid4().hex[:10]}"
    conn = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0].split("://", 1)[1]
    return f"postgresql+psycopg://{base}/{name}", (conn, name)


def drop_pg(handle: Any) -> None:
    conn, name = handle
    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                 (name,))
    conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    conn.close()


def bench_backend(backend: str, args: argparse.Namespace, tmp: str) -> list[dict[str, Any]]:
    handle = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp}/bench.db"
    else:
        url, handle = pg_database(args.pg_admin)
    out = []
    try:
        info = setup(backend, url, args.jobs, args.slots)
        for workers in sorted({1, args.workers}):
            result = {"backend": backend, **info, **run_child(url, args.slots, workers)}
            problems = check_workload(result, args.jobs, args.slots)
            if problems:  # a degenerate workload measures nothing: fail loudly
                raise SystemExit(f"compare bench ({backend}, {workers} worker(s)): "
                                 + "; ".join(problems))
            ok = result["seconds"] < TARGET_SECONDS and result["peak_rss_mb"] < TARGET_MB
            out.append({**result, "within_target": ok})
    finally:
        if handle is not None:
            drop_pg(handle)
    return out


def speed_reference() -> float:
    """Microseconds for ``sum(range(1000))``: ~10 on an idle modern x86 core (scale by it)."""
    import timeit

    return min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6


def print_table(results: list[dict[str, Any]]) -> None:
    head = (f"{'backend':<11}{'observations':>13}{'slots':>10}{'workers':>8}{'wall s':>9}"
            f"{'cpu s':>8}{'peak MB':>9}  target")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r['backend']:<11}{r['rows']:>13,}{r['slots']:>10,}{r['workers']:>8}"
              f"{r['seconds']:>9.2f}"
              f"{'-' if r['cpu_seconds'] is None else format(r['cpu_seconds'], '.2f'):>8}"
              f"{r['peak_rss_mb']:>9.1f}  "
              f"{'ok' if r['within_target'] else 'MISSED'}")
    if results:
        print("verdicts:", json.dumps(results[0]["counts"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--slots", type=int, default=1000)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--pg-admin", default=os.environ.get("BRIDGE_TEST_PG_ADMIN", PG_ADMIN))
    ap.add_argument("--workers", type=int, default=2, help="also time this many processes")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "compare.json"),
                    help="where to write the JSON results")
    ap.add_argument("--measure", metavar="URL", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.slots, args.workers)))
        return
    reference = speed_reference()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            results.extend(bench_backend(backend.strip(), args, tmp))
    load = os.getloadavg()[0]
    doc = {"jobs": args.jobs, "slots_per_job": args.slots, "cpus": os.cpu_count(),
           "load_average_1m": round(load, 2), "speed_reference_us": round(reference, 1),
           "results": results}
    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print_table(results)
    print(f"(load average {load:.1f} on {os.cpu_count()} CPUs; sum(range(1000)) took "
          f"{reference:.1f} us, ~10 on an idle modern core; wrote {out})")


if __name__ == "__main__":
    main()
