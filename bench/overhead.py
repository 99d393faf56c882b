"""Per-run overhead of the idempotent wrapper against a bare Celery task.

Both tasks run the same no-op command (``true`` through ``/bin/sh -c``) in the same real
worker (prefork, one child, so they never compete), interleaved message by message:

* ``bridge.run_job`` — parse and validate the message, read the job and its authority history,
  claim the slot (insert + lease heartbeat thread), run the command through the cron-faithful
  runner (environment, pipes, watchdog), write the verdict and the runs row in one transaction;
* ``bench.bare_true`` — ``subprocess.run(["/bin/sh", "-c", "true"])``.

Durations are the worker's own task runtimes (Celery's "succeeded in X s" log lines), so the
broker round trip, identical for both, is left out. **Added by the wrapper** is computed per
pair: the i-th wrapper run minus the i-th bare run (sent back to back, run one after the other
by the single worker process), and its p50 / p99 are percentiles of those differences — not the
difference of two percentiles, which mixes unrelated runs. A private redis-server and a fresh SQLite
registry (or ``--database-url``) are used. Results: ``bench/results/overhead.json`` + a table.

    python bench/overhead.py [--runs 300] [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from legacy_wrappers.tasks import app  # registers bridge.run_job on the bridge app

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "overhead.json"
LINE = re.compile(r"Task (bridge\.run_job|bench\.bare_true)\[[^\]]+\] succeeded in ([0-9.e-]+)s")
WARMUP = 10


@app.task(name="bench.bare_true", acks_late=True, ignore_result=True)
def bare_true() -> int:
    """The baseline: the same command, no claim, no record, no cron environment."""
    return subprocess.run(["/bin/sh", "-c", "true"], check=False).returncode


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": percentile(values, 0.5) * 1000,
            "p99_ms": percentile(values, 0.99) * 1000, "mean_ms": statistics.fmean(values) * 1000}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    binary = shutil.which("redis-server") or sys.exit("redis-server is not installed")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc, f"redis://127.0.0.1:{port}/0"


def prepare_registry(url: str) -> None:
    from bridge.core.authority import Owner
    from bridge.core.spec import CommandHandler, Dialect, JobSpec, ScheduleSpec
    from bridge.store.db import Registry
    from bridge.store.repos import AuthorityRepo, JobRepo

    registry = Registry(url)
    spec = JobSpec(id="bench-true", schedule=ScheduleSpec(Dialect.VIXIE, expression="* * * * *"),
                   handler=CommandHandler(command="true"))
    with registry.session() as s:
        JobRepo(s).upsert(spec)
        AuthorityRepo(s).append("bench-true", Owner.CELERY, effective_slot=None,
                                actor="bench", reason="overhead benchmark")
    registry.dispose()


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    celery = str(Path(sys.executable).with_name("celery"))
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [celery, "-A", "overhead", "worker", "-P", "prefork", "-c", "1", "-Q", "bridge",
             "-n", f"bench-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
             "-l", "INFO"], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=HERE)
    deadline = time.monotonic() + 60
    while "ready." not in log.read_text():
        if time.monotonic() > deadline or proc.poll() is not None:
            sys.exit(f"worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return proc


def drive(client: Any, runs: int, log: Path) -> dict[str, list[float]]:
    base = datetime(2030, 1, 1, tzinfo=UTC)
    for i in range(runs + WARMUP):
        slot = (base + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        client.send_task("bridge.run_job", args=["bench-true", slot], queue="bridge")
        client.send_task("bench.bare_true", queue="bridge")
    deadline = time.monotonic() + 60 + runs
    times: dict[str, list[float]] = {"bridge.run_job": [], "bench.bare_true": []}
    while time.monotonic() < deadline:
        times = {"bridge.run_job": [], "bench.bare_true": []}
        for name, seconds in LINE.findall(log.read_text()):
            times[name].append(float(seconds))
        if all(len(v) >= runs + WARMUP for v in times.values()):
            break
        time.sleep(0.5)
    return {name: values[WARMUP:] for name, values in times.items()}


def table(result: dict[str, Any]) -> str:
    rows = [("bridge.run_job (wrapper)", result["wrapper"]), ("bare subprocess task",
                                                             result["bare"])]
    out = [f"{'task':<26}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}"]
    for name, s in rows:
        out.append(f"{name:<26}{s['n']:>6}{s['p50_ms']:>10.2f}{s['p99_ms']:>10.2f}"
                   f"{s['mean_ms']:>10.2f}")
    out.append(f"{'added per pair (w - b)':<26}{'':>6}{result['overhead_p50_ms']:>10.2f}"
               f"{result['overhead_p99_ms']:>10.2f}{result['overhead_mean_ms']:>10.2f}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bridge-bench-"))
    redis, redis_url = start_redis(work)
    db_url = args.database_url or f"sqlite:///{work / 'registry.db'}"
    worker = None
    try:
        prepare_registry(db_url)
        env = {**os.environ, "BRIDGE_REDIS_URL": redis_url, "BRIDGE_DATABASE_URL": db_url,
               "XDG_DATA_HOME": str(work / "data"), "PYTHONPATH": str(HERE)}
        worker = start_worker(env, work / "worker.log")
        from bridge.celery_app import make_app
        from bridge.core.config import Settings

        client = make_app(Settings(redis_url=redis_url, database_url=db_url))
        times = drive(client, args.runs, work / "worker.log")
        client.close()
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=60)
        redis.kill()
        redis.wait()
    w_times, b_times = times["bridge.run_job"], times["bench.bare_true"]
    if len(w_times) < args.runs or len(b_times) < args.runs:
        sys.exit(f"degenerate workload: {len(w_times)} wrapper and {len(b_times)} bare runs "
                 f"measured, {args.runs} each expected")
    wrapper, bare = summary(w_times), summary(b_times)
    added = summary([w - b for w, b in zip(w_times, b_times, strict=False)])
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                 "machine": platform.machine(), "load_average_1m": os.getloadavg()[0]},
        "database": db_url.split(":", 1)[0], "worker": "prefork -c 1", "runs": args.runs,
        "wrapper": wrapper, "bare": bare,
        "overhead_definition": "percentiles of per-pair differences (i-th wrapper run minus "
                               "i-th bare run)",
        "overhead_p50_ms": added["p50_ms"], "overhead_p99_ms": added["p99_ms"],
        "overhead_mean_ms": added["mean_ms"],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"written to {RESULTS}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
