"""Soak: N Celery-owned jobs on a real beat and a real worker for a while; nothing lost, nothing
doubled, and beat's CPU and memory flat.

    .venv/bin/python bench/soak.py                       # 1,000 jobs, 10 minutes
    .venv/bin/python bench/soak.py --jobs 200 --minutes 3   # a quick run
    .venv/bin/python bench/soak.py --database-url postgresql+psycopg://...
    .venv/bin/python bench/soak.py --pool prefork --concurrency 4   # the old worker line

Set-up (not measured): a private ``redis-server`` (free loopback port, no persistence), a fresh
SQLite registry (or ``--database-url``, a migrated disposable database), N jobs owned by Celery
(authority event effective from the beginning): ``--per-second`` of them (default 2 %) fire
every second (Quartz ``* * * * * ?``), the rest every minute (half vixie ``* * * * *``, half
Quartz ``0 * * * * ?``). Each job is the cheap callable ``bench.soak:noop`` run by the bridge's
real ``bridge.run_job`` wrapper (message check, authority, claim in SQL, run, verdict + runs
row). One ``celery beat`` (BridgeScheduler; entries rebuilt from SQL at start-up) and one
worker started with the recommended burst line (``bridge worker``: ``--pool threads
--concurrency 200``; ``--pool``/``--concurrency`` change it).

Measured over the window ``[first whole minute after a 30 s warm-up, + --minutes)``:

* **expected** slots (each job's own evaluator over the window) vs **executed** (distinct
  ``(job, slot)`` with an authoritative ``succeeded`` run row) — must be equal;
* **duplicates**: slots with more than one authoritative execution — must be 0 (suppressed
  duplicate deliveries are counted separately);
* **fire lag**: the wrapper's ``fired_at`` (the worker starts handling the message) minus the
  slot: p50 / p99 / max, separately for the every-second jobs (one slot each per second: their
  lag is the steady-state latency) and the every-minute jobs (all due in the same second: their
  lag includes the queue behind the minute boundary);
* **beat CPU and RSS** sampled every 5 s from ``/proc/<pid>/stat`` (utime + stime) and
  ``/proc/<pid>/status`` (VmRSS): the series, CPU % per minute, and the RSS growth from the first
  to the last minute (flat = no leak). The worker's total RSS is sampled alongside.

Writes ``bench/results/soak.json`` and prints a summary.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CELERY = str(Path(sys.executable).with_name("celery"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def noop() -> None:
    """The soak's job: the cheapest possible callable handler."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_sample(pid: int) -> tuple[float, float] | None:
    """(CPU seconds, RSS MiB) of one process, from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return cpu, rss / 1024


def group_rss(pgid: int) -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    sample = proc_sample(int(entry.name))
                    total += sample[1] if sample else 0.0
            except OSError:
                continue
    return total


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def setup_registry(url: str, jobs: int, per_second: float) -> list[Any]:
    from bridge.core.authority import Owner
    from bridge.core.spec import CallableHandler, Dialect, JobSpec, Policies, ScheduleSpec
    from bridge.store.db import Registry, upgrade
    from bridge.store.repos import AuthorityRepo, JobRepo

    registry = Registry(url, check_schema=False)
    upgrade(registry.engine)
    fast = max(1, round(jobs * per_second))
    specs = []
    for i in range(jobs):
        if i < fast:
            dialect, expr = "quartz", "* * * * * ?"
        elif i % 2:
            dialect, expr = "vixie", "* * * * *"
        else:
            dialect, expr = "quartz", "0 * * * * ?"
        specs.append(JobSpec(id=f"soak-{i:05d}",
                             schedule=ScheduleSpec(dialect=Dialect(dialect), expression=expr),
                             handler=CallableHandler(target="bench.soak:noop"),
                             policies=Policies(misfire_grace_seconds=60)))
    with registry.session() as s:
        repo, authority = JobRepo(s), AuthorityRepo(s)
        for spec in specs:
            repo.upsert(spec)
            authority.append(spec.id, Owner.CELERY, effective_slot=None, actor="soak",
                             reason="soak benchmark")
    registry.dispose()
    return specs


def expected_slots(specs: list[Any], lo: datetime, hi: datetime) -> set[tuple[str, datetime]]:
    from bridge.core.schedules import compile_schedule

    out: set[tuple[str, datetime]] = set()
    cache: dict[tuple[str, str], list[datetime]] = {}
    for spec in specs:
        key = (spec.schedule.dialect.value, spec.schedule.expression)
        if key not in cache:
            ev, slots = compile_schedule(spec.schedule), []
            t: datetime | None = lo - timedelta(seconds=1)
            while t is not None:
                t = ev.next_after(t)
                if t is None or t >= hi:
                    break
                slots.append(t)
            cache[key] = slots
        out.update((spec.id, s) for s in cache[key])
    return out


def read_runs(url: str, lo: datetime, hi: datetime) -> list[Any]:
    from sqlalchemy import select

    from bridge.store.db import Registry
    from bridge.store.models import RunRow

    registry = Registry(url)
    try:
        with registry.session() as s:
            q = select(RunRow.job_id, RunRow.slot, RunRow.role, RunRow.status, RunRow.fired_at)
            return list(s.execute(q.where(RunRow.slot >= lo, RunRow.slot < hi)))
    finally:
        registry.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--per-second", type=float, default=0.02,
                    help="share of jobs firing every second (default 0.02)")
    ap.add_argument("--pool", default="threads", help="worker pool (default threads)")
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--quick", action="store_true", help="200 jobs for 2 minutes")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "soak.json"))
    args = ap.parse_args()
    if args.quick:
        args.jobs, args.minutes = 200, 2.0

    tmp = Path(tempfile.mkdtemp(prefix="bridge-soak-"))
    port = free_port()
    redis_proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
         "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    redis_url = f"redis://127.0.0.1:{port}/0"
    db_url = args.database_url or f"sqlite:///{tmp / 'registry.db'}"
    sys.path.insert(0, str(ROOT))
    t_setup = time.perf_counter()
    specs = setup_registry(db_url, args.jobs, args.per_second)
    setup_s = time.perf_counter() - t_setup
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update(BRIDGE_REDIS_URL=redis_url, BRIDGE_DATABASE_URL=db_url, PYTHONPATH=str(ROOT),
               BRIDGE_HEALTH_INTERVAL="3600", XDG_DATA_HOME=str(tmp / "xdg"))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for name, argv in (
        ("worker", [CELERY, "-A", "legacy_wrappers.tasks", "worker", "-P", args.pool, "-c",
                    str(args.concurrency), "-Q", "bridge", "--without-gossip",
                    "--without-mingle", "--without-heartbeat", "-l", "WARNING"]),
        ("beat", [CELERY, "-A", "bridge.celery_app", "beat", "-S",
                  "bridge.scheduler:BridgeScheduler", "-l", "WARNING", "-s",
                  str(tmp / "beat-schedule")]),
    ):
        with (tmp / f"{name}.log").open("wb") as log:
            procs[name] = subprocess.Popen(argv, env=env, cwd=tmp, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True)
    started = time.time()
    lo = datetime.fromtimestamp((int(started + 30) // 60 + 1) * 60, UTC)
    hi = lo + timedelta(seconds=int(args.minutes * 60))
    print(f"soak: {args.jobs} jobs ({max(1, round(args.jobs * args.per_second))} per-second), "
          f"window {lo:%H:%M:%S}..{hi:%H:%M:%S}Z, logs in {tmp}", flush=True)
    samples: list[dict[str, float]] = []
    try:
        while time.time() < hi.timestamp() + 2:
            beat = proc_sample(procs["beat"].pid)
            if procs["beat"].poll() is not None or procs["worker"].poll() is not None:
                raise SystemExit(f"a process died; see {tmp}")
            if beat:
                samples.append({"t": round(time.time() - started, 1), "beat_cpu_s": beat[0],
                                "beat_rss_mb": round(beat[1], 1),
                                "worker_rss_mb": round(group_rss(procs["worker"].pid), 1)})
            time.sleep(5)
        procs["beat"].send_signal(signal.SIGTERM)
        procs["beat"].wait(timeout=30)
        expected = expected_slots(specs, lo, hi)
        deadline = time.time() + 120
        while True:  # let the worker finish the queue
            rows = read_runs(db_url, lo, hi)
            executed = {(r.job_id, r.slot) for r in rows
                        if r.role == "authoritative" and r.status == "succeeded"}
            if expected <= executed or time.time() > deadline:
                break
            time.sleep(2)
    finally:
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        redis_proc.kill()

    auth = [r for r in rows if r.role == "authoritative" and r.status == "succeeded"]
    per_slot: dict[tuple[str, datetime], int] = {}
    for r in auth:
        per_slot[(r.job_id, r.slot)] = per_slot.get((r.job_id, r.slot), 0) + 1
    fast_ids = {spec.id for spec in specs[:max(1, round(args.jobs * args.per_second))]}

    def lags_of(second: bool) -> list[float]:
        return [(r.fired_at - r.slot).total_seconds() for r in auth
                if r.fired_at is not None and (r.job_id in fast_ids) == second]

    def lag_summary(values: list[float]) -> dict[str, Any]:
        return {"n": len(values), "p50": percentile(values, 0.5),
                "p99": percentile(values, 0.99), "max": max(values) if values else None}

    lags_second, lags_minute = lags_of(True), lags_of(False)
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[f"{r.role}/{r.status}"] = statuses.get(f"{r.role}/{r.status}", 0) + 1
    window = [s for s in samples if lo.timestamp() - started <= s["t"]]
    per_minute = []
    for m in range(int(args.minutes)):
        chunk = [s for s in window if m * 60 <= s["t"] - (lo.timestamp() - started) < (m + 1) * 60]
        if len(chunk) >= 2:
            cpu = (chunk[-1]["beat_cpu_s"] - chunk[0]["beat_cpu_s"]) / (chunk[-1]["t"] -
                                                                        chunk[0]["t"])
            per_minute.append({"minute": m + 1, "beat_cpu_pct": round(100 * cpu, 2),
                               "beat_rss_mb": statistics.median(c["beat_rss_mb"] for c in chunk),
                               "worker_rss_mb": statistics.median(c["worker_rss_mb"]
                                                                  for c in chunk)})
    missing = sorted(expected - set(per_slot))
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                 "load_average_1m": round(os.getloadavg()[0], 2)},
        "database": db_url.split(":", 1)[0],
        "jobs": args.jobs, "per_second_jobs": max(1, round(args.jobs * args.per_second)),
        "minutes": args.minutes, "worker": f"{args.pool} -c {args.concurrency}",
        "setup_seconds": round(setup_s, 1),
        "window": [lo.isoformat(), hi.isoformat()],
        "slots_expected": len(expected), "slots_executed": len(set(per_slot) & expected),
        "missing": len(missing), "missing_sample": [f"{j} {s:%H:%M:%S}" for j, s in missing[:10]],
        "duplicates": sum(1 for n in per_slot.values() if n > 1),
        "run_rows": statuses,
        "lag_seconds": {"every_second": lag_summary(lags_second),
                        "every_minute": lag_summary(lags_minute)},
        "throughput_runs_per_s": round(len(auth) / max(1.0, (hi - lo).total_seconds()), 1),
        "beat": {
            "cpu_pct_mean": round(100 * (window[-1]["beat_cpu_s"] - window[0]["beat_cpu_s"]) /
                                  max(1e-9, window[-1]["t"] - window[0]["t"]), 2)
            if len(window) >= 2 else None,
            "rss_mb_first": window[0]["beat_rss_mb"] if window else None,
            "rss_mb_last": window[-1]["beat_rss_mb"] if window else None,
            "rss_growth_mb": round(window[-1]["beat_rss_mb"] - window[0]["beat_rss_mb"], 1)
            if window else None,
        },
        "per_minute": per_minute,
        "samples": samples,
    }
    result["ok"] = (result["missing"] == 0 and result["duplicates"] == 0 and len(expected) > 0
                    and bool(lags_second) and bool(lags_minute))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("samples", "per_minute")},
                     indent=1, default=str))
    for row in per_minute:
        print(f"  minute {row['minute']}: beat CPU {row['beat_cpu_pct']} %, beat RSS "
              f"{row['beat_rss_mb']} MiB, worker RSS {row['worker_rss_mb']} MiB")
    if not result["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
