"""Shadow-diff benchmark: 1,000 jobs x 1,000 slots (2,000,000 observations) per backend.

    /work/venv/bin/python bench/compare.py                       # SQLite and PostgreSQL
    /work/venv/bin/python bench/compare.py --backends sqlite --jobs 100

Setup (not timed): a temporary SQLite registry and a temporary PostgreSQL database on the local
server (``--pg-admin``, default ``postgresql://postgres@127.0.0.1:5432/postgres``; dropped at
the end), both migrated with the bridge's Alembic scripts; ``jobs`` hourly vixie jobs
registered through ``JobRepo``; ``jobs x slots`` legacy + Celery observations bulk-loaded
(SQLite: DB-API ``executemany``; PostgreSQL: ``COPY``) with a little noise (late firings, failed
exits, missing Celery firings) so every code path of the comparator runs.

Timed, in a fresh child process per backend (so the peak RSS is the diff's own): open the
registry, list the jobs, and run :func:`shadow.report.build_report` over the whole window: per
job one indexed query of compact rows (slot key, path/role/status code, exit status, row id;
:mod:`shadow.scan`) whose trivially matching slots are counted without building observations,
the rest fetched in full by row id in batches and judged by the comparator, then the summary
and readiness; then again
with ``--workers`` processes (:func:`shadow.report.build_report_parallel`). Reported: wall
seconds, CPU seconds of the serial run (the machine may be shared: CPU time is the steadier
figure), peak RSS of the measuring process (``ru_maxrss``, interpreter and imports included;
with workers, each worker holds one part's jobs at a time, like the serial process),
the verdict totals, and a speed reference (``sum(range(1000))`` in microseconds) to scale the
figures to another machine.
Targets: under 10 s and under 500 MB. Writes ``bench/results/compare.json``.
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
    fill_sqlite,
    job_expression,
    job_id,
    raw_rows,
)

from bridge.spec import CommandHandler, JobSpec, ScheduleSpec  # noqa: E402
from bridge.store.db import Registry, upgrade  # noqa: E402
from bridge.store.repos import JobRepo  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET_SECONDS, TARGET_MB = 10.0, 500.0


def window(slots: int) -> tuple[Any, Any, Any]:
    since = EPOCH - timedelta(seconds=1)
    until = EPOCH + timedelta(hours=slots)
    return since, until, until + timedelta(days=1)


def register_jobs(reg: Registry, jobs: int) -> None:
    with reg.session() as s:
        repo = JobRepo(s)
        for i in range(jobs):
            repo.upsert(JobSpec(
                id=job_id(i),
                schedule=ScheduleSpec(dialect="vixie", expression=job_expression(i)),
                handler=CommandHandler(command=f"/usr/local/bin/task {i}"),
            ))


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
    rows = fill(reg, raw_rows(jobs, slots))
    reg.dispose()
    return {"rows": rows, "setup_seconds": round(time.perf_counter() - t0, 1)}


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
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_after_imports_mb": round(rss0, 1),
        "jobs": totals["jobs"], "slots": totals["expected_slots"], "counts": totals["counts"],
    }


def run_child(url: str, slots: int, workers: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", url, "--slots", str(slots),
         "--workers", str(workers)],
        check=True, capture_output=True, text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


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
            result = run_child(url, args.slots, workers)
            ok = result["seconds"] < TARGET_SECONDS and result["peak_rss_mb"] < TARGET_MB
            out.append({"backend": backend, **info, **result, "within_target": ok})
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
    out = ROOT / "bench" / "results" / "compare.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print_table(results)
    print(f"(load average {load:.1f} on {os.cpu_count()} CPUs; sum(range(1000)) took "
          f"{reference:.1f} us, ~10 on an idle modern core; wrote {out.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
