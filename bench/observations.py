"""RunRecord-store benchmark: ``bridge.store.runs.query`` on 1,000,000 rows in SQLite.

    python bench/observations.py            # 1,000 jobs x 500 slots x 2 paths
    python bench/observations.py --jobs 100 --slots 100   # a quick run

Fills a temporary SQLite registry (migrated by the bridge's own Alembic scripts, so the indexes
are exactly the production ones) with ``jobs x slots x 2`` rows (legacy + celery, hourly slots),
bulk-loaded with ``executemany`` on the raw DB-API connection (values pre-processed by the
column types' own bind processors, so the stored format is the one SQLAlchemy writes). Then
times, over 200 random jobs:

* **day**: a 24 h window of one job (``query(s, job, since, until)``: 48 rows);
* **full**: the job's whole history (1,000 rows);
* **all-day**: every job's 24 h window in one streamed pass (``query(s, None, ...)``);
* the same per-job figures with ``lean=True`` (what the report reads).

Prints ``EXPLAIN QUERY PLAN`` of the per-job statement (it must name ``ix_runs_job_slot``) and
the figures; writes ``bench/results/observations.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.store.db import Registry  # noqa: E402
from bridge.store.runs import RUNS, query, window_sql  # noqa: E402

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
COLUMNS = (
    "job_id", "slot", "path", "role", "status", "fired_at", "started_at", "finished_at",
    "exit_status", "task_state", "attempts", "output_digest", "output_sample", "host", "error",
    "record_key",
)


def job_id(i: int) -> str:
    return f"bench-job-{i:04d}"


def job_expression(i: int) -> str:
    return f"{i % 60} * * * *"


def slot_of(i: int, k: int) -> datetime:
    """The k-th hourly slot of job i (matches :func:`job_expression` in UTC)."""
    return EPOCH + timedelta(hours=k, minutes=i % 60)


# What a slot of the generated workload is (share of slots, by a uniform draw):
NOISE = (
    ("missing_celery", 0.002),  # the Celery firing never came
    ("missing_legacy", 0.001),  # cron did not fire
    ("late", 0.001),  # legacy fired 120 s late (tolerance 60 s)
    ("outcome_mismatch", 0.003),  # Celery's run exited 1, legacy's 0
    ("duplicate", 0.0005),  # Celery ran the slot twice (two hosts)
)


class Workload:
    """Legacy + Celery observations of ``jobs x slots`` hourly slots (:func:`slot_of`), mostly
    matching, with the :data:`NOISE` above; :attr:`expected` counts, per verdict, what the
    comparator must answer once :meth:`rows` has been consumed (the bench checks it)."""

    def __init__(self, jobs: int, slots: int, seed: int = 7) -> None:
        self.jobs, self.slots, self.seed = jobs, slots, seed
        self.expected: dict[str, int] = {"match": 0, **{name: 0 for name, _ in NOISE}}
        self.rows_made = 0

    def _kind(self, draw: float) -> str:
        edge = 0.0
        for name, share in NOISE:
            edge += share
            if draw < edge:
                return name
        return "match"

    def rows(self) -> Iterator[tuple[Any, ...]]:
        rnd = random.Random(self.seed)
        digest = "0" * 64
        for i in range(self.jobs):
            jid = job_id(i)
            for k in range(self.slots):
                slot = slot_of(i, k)
                kind = self._kind(rnd.random())
                self.expected[kind] += 1
                lag = rnd.uniform(0.0, 2.0)
                firings = [("legacy", "authoritative", lag + (120 if kind == "late" else 0), 0,
                            "bench-l")]
                celery_exit = 1 if kind == "outcome_mismatch" else 0
                firings.append(("celery", "shadow", lag + 0.05, celery_exit, "bench-c1"))
                if kind == "duplicate":
                    firings.append(("celery", "shadow", lag + 0.3, 0, "bench-c2"))
                for path, role, seconds, exit_status, host in firings:
                    if kind == f"missing_{path}":
                        continue
                    fired = slot + timedelta(seconds=seconds)
                    status = "succeeded" if exit_status == 0 else "failed"
                    self.rows_made += 1
                    yield (jid, slot, path, role, status, fired, fired,
                           fired + timedelta(seconds=3), exit_status, None, 1, digest, None,
                           host, None, f"{jid}/{slot:%Y%m%dT%H%M%S}/{path}/{host}")


def raw_rows(jobs: int, slots: int, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """The rows of a :class:`Workload` (legacy + celery, mostly matching, a little noise)."""
    return Workload(jobs, slots, seed).rows()


def _processors(dialect: Any) -> list[Any]:
    return [RUNS.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in COLUMNS]


def fill_sqlite(reg: Registry, rows: Iterator[tuple[Any, ...]], batch: int = 20000) -> int:
    """Bulk load through the DB-API ``executemany``; returns the row count."""
    procs = _processors(reg.engine.dialect)
    sql = f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    raw = reg.engine.raw_connection()
    count = 0
    try:
        cur = raw.cursor()
        chunk: list[tuple[Any, ...]] = []
        for row in rows:
            chunk.append(tuple(p(v) if p else v for p, v in zip(procs, row, strict=True)))
            if len(chunk) >= batch:
                cur.executemany(sql, chunk)
                count += len(chunk)
                chunk = []
        if chunk:
            cur.executemany(sql, chunk)
            count += len(chunk)
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    return count


def explain(reg: Registry, jid: str, since: datetime, until: datetime) -> str:
    """The plan of the exact SQL ``query`` sends for one job's window."""
    to_db = RUNS.c.slot.type.dialect_impl(reg.engine.dialect).bind_processor(reg.engine.dialect)
    sql = window_sql(False, True, True, True, "?")
    with reg.engine.connect() as conn:
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}",
                                    (jid, to_db(since), to_db(until))).fetchall()
    return "; ".join(str(r[-1]) for r in plan)


def time_per_job(
    reg: Registry, jobs: int, slots: int, span: timedelta | None, samples: int,
    lean: bool = False,
) -> dict[str, float]:
    rnd = random.Random(11)
    times, counts = [], []
    with reg.session() as s:
        for _ in range(samples):
            i = rnd.randrange(jobs)
            if span is None:
                since, until = EPOCH - timedelta(seconds=1), EPOCH + timedelta(hours=slots + 1)
            else:
                start = EPOCH + timedelta(hours=rnd.randrange(max(1, slots - 24)))
                since, until = start, start + span
            t0 = time.perf_counter()
            counts.append(sum(1 for _ in query(s, job_id(i), since, until, lean=lean)))
            times.append(time.perf_counter() - t0)
    return {
        "median_ms": statistics.median(times) * 1000,
        "p95_ms": sorted(times)[int(len(times) * 0.95) - 1] * 1000,
        "rows_median": statistics.median(counts),
    }


def time_all_jobs(reg: Registry, slots: int) -> dict[str, float]:
    since = EPOCH + timedelta(hours=slots // 2)
    with reg.session() as s:
        t0 = time.perf_counter()
        n = sum(1 for _ in query(s, None, since, since + timedelta(hours=24)))
        elapsed = time.perf_counter() - t0
    return {"seconds": elapsed, "rows": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--slots", type=int, default=500)
    ap.add_argument("--samples", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        reg = Registry(f"sqlite:///{tmp}/bench.db")
        t0 = time.perf_counter()
        rows = fill_sqlite(reg, raw_rows(args.jobs, args.slots))
        load = time.perf_counter() - t0
        plan = explain(reg, job_id(0), EPOCH, EPOCH + timedelta(days=1))
        day = time_per_job(reg, args.jobs, args.slots, timedelta(hours=24), args.samples)
        full = time_per_job(reg, args.jobs, args.slots, None, args.samples)
        full_lean = time_per_job(reg, args.jobs, args.slots, None, args.samples, lean=True)
        every = time_all_jobs(reg, args.slots)
        reg.dispose()
    result = {
        "rows": rows, "jobs": args.jobs, "load_seconds": round(load, 2), "plan": plan,
        "per_job_day": day, "per_job_full": full, "per_job_full_lean": full_lean,
        "all_jobs_day": every,
    }
    out = ROOT / "bench" / "results" / "observations.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"rows {rows:,} ({args.jobs} jobs) loaded in {load:.1f} s")
    print(f"plan: {plan}")
    print(f"per-job 24 h window : median {day['median_ms']:.2f} ms, p95 {day['p95_ms']:.2f} ms, "
          f"{day['rows_median']:.0f} rows")
    print(f"per-job full history: median {full['median_ms']:.2f} ms, p95 {full['p95_ms']:.2f} ms, "
          f"{full['rows_median']:.0f} rows")
    print(f"per-job full, lean  : median {full_lean['median_ms']:.2f} ms, "
          f"p95 {full_lean['p95_ms']:.2f} ms")
    print(f"all jobs, 24 h window: {every['seconds'] * 1000:.0f} ms for {every['rows']:,} rows")


if __name__ == "__main__":
    main()
