"""Import throughput: parse + plan + apply (SQLite) + RedBeat sync of big cron.d files, side by
side with python-crontab parsing the same files.

Each case runs in a fresh subprocess so its peak RSS is its own. A private redis-server (free
loopback port, no persistence) and a temporary SQLite registry are used.

    python bench/import.py            # 1k and 10k lines
    python bench/import.py --big      # also 100k lines (past the default --max-lines: raised)
Writes bench/results/import.json and prints a table. Checks its own workload, counted where
it lands, not as the import reports it: every job line of the generated file must be a live job
in the registry and an entry in RedBeat (its hash, its place in the schedule and in the bridge's
index), nothing may be left pending or in error, and python-crontab must see the same number of
jobs; otherwise it exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

SCHEDULES = [
    "*/5 * * * *",
    "0 * * * *",
    "30 2 * * *",
    "15 4 * * 1-5",
    "0 0 1 * *",
    "*/15 9-17 * * mon-fri",
    "0 6,18 * * *",
    "45 23 * * 0",
    "0 0 1,15 * 5",
    "@daily",
]


ENV_LINES = ["SHELL=/bin/sh", "PATH=/usr/bin:/bin", "MAILTO=ops@example.com"]


def make_file(path: Path, lines: int) -> int:
    """Write ``lines`` lines; returns the number of job lines."""
    rnd = random.Random(lines)
    out = list(ENV_LINES)
    for i in range(lines - len(out)):
        sched = rnd.choice(SCHEDULES)
        out.append(f"{sched} root /usr/bin/env echo job-{i} --batch {rnd.randint(1, 999)}")
    path.write_text("\n".join(out) + "\n")
    return lines - len(ENV_LINES)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bridge_case(path: str, redis_url: str, db_url: str) -> dict[str, float]:
    from bridge.adapters import redis_conn
    from bridge.adapters.redbeat_entries import index_key, schedule_key
    from bridge.core.config import load_settings
    from bridge.services.importer import run_import
    from bridge.services.sync import pending
    from bridge.store.db import Registry
    from bridge.store.repos import JobRepo
    from crontab_import.crontab import parse_file

    settings = load_settings({"BRIDGE_REDIS_URL": redis_url, "BRIDGE_DATABASE_URL": db_url})
    registry = Registry(db_url)
    t0 = time.perf_counter()
    result = parse_file(path, timezone="UTC", kind="cron.d", max_lines=1_000_000)
    t1 = time.perf_counter()
    outcome = run_import(registry, settings, [result], actor="bench")
    t2 = time.perf_counter()
    if outcome.applied is None or outcome.sync is None or outcome.plan.errors:
        raise SystemExit(f"bench: nothing imported: {outcome.plan.errors[:3]} {outcome.sync_error}")
    # what landed, counted in the registry and in Redis (outside the timed part)
    with registry.session() as s:
        stored = JobRepo(s).count()
    client = redis_conn.client(settings)
    prefix = settings.redbeat_key_prefix
    keys = sum(1 for _ in client.scan_iter(match=f"{prefix}etc-cron.d-*", count=10_000))
    return {
        "parse_s": t1 - t0,
        "plan_apply_sync_s": t2 - t1,
        "total_s": t2 - t0,
        "jobs": float(outcome.applied.created),
        "registry_jobs": float(stored),
        "redbeat_created": float(len(outcome.sync.created)),
        "redbeat_entries": float(keys),
        "redbeat_scheduled": float(client.zcard(schedule_key(prefix))),
        "redbeat_indexed": float(client.scard(index_key(prefix))),
        "sync_pending": float(pending(registry) is not None),
    }


def stock_case(path: str) -> dict[str, float]:
    from crontab import CronTab

    t0 = time.perf_counter()
    tab = CronTab(tabfile=path, user=False)
    jobs = sum(1 for _ in tab)
    return {"total_s": time.perf_counter() - t0, "jobs": float(jobs)}


def child(kind: str, path: str, redis_url: str, db_url: str) -> None:
    result = bridge_case(path, redis_url, db_url) if kind == "bridge" else stock_case(path)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_child(kind: str, path: Path, redis_url: str, db_url: str) -> dict[str, float]:
    r = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path), redis_url, db_url],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if r.returncode != 0:
        raise SystemExit(f"{kind} case failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--big", action="store_true", help="also 100,000 lines")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sizes = [1_000, 10_000] + ([100_000] if args.big else [])
    work = Path(tempfile.mkdtemp(prefix="bench-import-"))
    port = free_port()
    redis = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    rows = []
    try:
        for n in sizes:
            path = work / f"bench-{n}"
            expected = make_file(path, n)
            db_url = f"sqlite:///{work / f'registry-{n}.db'}"
            redis_url = f"redis://127.0.0.1:{port}/{sizes.index(n)}"
            bridge = run_child("bridge", path, redis_url, db_url)
            stock = run_child("stock", path, redis_url, db_url)
            counted = ("jobs", "registry_jobs", "redbeat_created", "redbeat_entries",
                       "redbeat_scheduled", "redbeat_indexed")  # fmt: skip
            seen = {k: bridge[k] for k in counted} | {"python_crontab": stock["jobs"]}
            if set(seen.values()) != {expected} or bridge["sync_pending"]:
                raise SystemExit(
                    f"bench: degenerate workload at {n} lines: expected {expected} jobs "
                    f"everywhere and nothing pending, got {seen}, "
                    f"sync_pending={bool(bridge['sync_pending'])}"
                )
            rows.append(
                {
                    "lines": n,
                    "bridge": bridge,
                    "python_crontab": stock,
                    "bridge_lines_per_s": n / bridge["total_s"],
                    "stock_lines_per_s": n / stock["total_s"],
                }
            )
    finally:
        redis.kill()
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{'lines':>8} {'bridge parse':>13} {'plan+apply+sync':>16} {'bridge total':>13} "
        f"{'lines/s':>9} {'RSS MB':>7} | {'python-crontab parse':>21} {'lines/s':>9} {'RSS MB':>7}"
    )
    for r in rows:
        b, s = r["bridge"], r["python_crontab"]
        print(
            f"{r['lines']:>8} {b['parse_s']:>12.2f}s {b['plan_apply_sync_s']:>15.2f}s "
            f"{b['total_s']:>12.2f}s {r['bridge_lines_per_s']:>9.0f} {b['peak_rss_mb']:>7.0f} | "
            f"{s['total_s']:>20.2f}s {r['stock_lines_per_s']:>9.0f} {s['peak_rss_mb']:>7.0f}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "import.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
