"""CPU per run of ``bridge.run_job`` in a real ``bridge worker`` (the start-lag budget).

    .venv/bin/python bench/worker_cpu.py                    # 400 jobs, 3 rounds, SQLite
    .venv/bin/python bench/worker_cpu.py --jobs 1000 --rounds 2 --registry postgresql

A private ``redis-server`` and registry with N every-minute jobs owned by Celery (the jobs of
``bench/firelag.py``: ``date +%s.%N >> FILE``), one ``bridge worker`` (its recommended line,
``--pool threads --concurrency 200``, ``--processes`` unset: its default; or as told; the line
is printed and recorded). Each round publishes one message per job for one past minute while the
worker's process group is stopped (SIGSTOP), then resumes it (SIGCONT): the worker meets the
whole burst at once, as after beat's publish. It waits until every job's command has run; the
figure is the CPU time of ``bridge worker`` and its worker processes (and their reaped
children's: the commands) over the round, divided by N, and the wall time from the resume until
every command had started. CPU
time, unlike wall time, means something on a busy machine: it is the work a burst costs, which
bounds how fast the workers can start a minute's jobs. The first round warms the processes
(imports, connections, decoded specs) and is reported but not counted. Exits 1 unless
every job ran exactly once per round (a degenerate workload never produces a figure).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from firelag import (
    BRIDGE,
    ROOT,
    default_processes,
    free_port,
    setup_registry,
    worker_cpu_seconds,
    worker_line,
)

SETTLE_SECONDS = 3.0  # after the last command, for the last records and acks


def started(out: Path) -> dict[str, int]:
    return {p.name: len(p.read_text().splitlines()) for p in out.iterdir()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--jobs", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pool", default="threads")
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--processes", type=int, default=None,
                    help="bridge worker --processes (default: unset, its default)")
    ap.add_argument("--registry", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "worker_cpu.json"),
                    help="write the result here (JSON; default bench/results/worker_cpu.json)")
    args = ap.parse_args()
    if args.rounds < 2:
        raise SystemExit("worker_cpu: --rounds must be at least 2 (the first one warms up)")
    work = Path(tempfile.mkdtemp(prefix="worker-cpu-"))  # kept when the bench fails
    if args.registry == "postgresql":
        from pgtemp import disposable_pg

        with disposable_pg("workercpu") as url:
            result = measure(args, work, url)
    else:
        result = measure(args, work, f"sqlite:///{work}/registry.db")
    shutil.rmtree(work, ignore_errors=True)
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["host"] = {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)}
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


def measure(args: argparse.Namespace, work: Path, db_url: str) -> dict[str, object]:
    out = work / "out"
    out.mkdir()
    setup_registry(db_url, args.jobs, out)
    port = free_port()
    redis_proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(work)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update(BRIDGE_REDIS_URL=f"redis://127.0.0.1:{port}/0", BRIDGE_DATABASE_URL=db_url,
               PYTHONPATH=str(ROOT), BRIDGE_HEALTH_INTERVAL="3600")
    os.environ.update(env)
    from bridge.celery_app import make_app
    from bridge.core.config import load_settings

    app = make_app(load_settings())
    line = worker_line(args.pool, args.concurrency, args.processes)
    print(f"worker: bridge worker {' '.join(line)}", file=sys.stderr, flush=True)
    with (work / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [BRIDGE, "worker", *line, "--",
             "-Q", "bridge", "-l", "WARNING", "-n", f"cpu{os.getpid()}@%h"],
            env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    rounds: list[dict[str, float]] = []
    try:
        time.sleep(10)  # worker start-up is not a run's cost
        minute = int(time.time()) // 60 * 60
        for r in range(args.rounds):
            slot = datetime.fromtimestamp(minute - 60 * (args.rounds - r), UTC)
            os.killpg(worker.pid, signal.SIGSTOP)  # the burst is all there when it wakes
            cpu0 = worker_cpu_seconds(worker.pid)
            with app.producer_or_acquire() as producer:
                for i in range(args.jobs):
                    app.send_task("bridge.run_job", queue="bridge", producer=producer,
                                  args=[f"firelag-{i:05d}", slot.strftime("%Y-%m-%dT%H:%M:%SZ")])
            t0 = time.monotonic()
            os.killpg(worker.pid, signal.SIGCONT)
            while (time.monotonic() - t0 < 300 and
                   sum(started(out).values()) < args.jobs * (r + 1)):
                time.sleep(0.1)
            elapsed = time.monotonic() - t0
            time.sleep(SETTLE_SECONDS)
            cpu1 = worker_cpu_seconds(worker.pid)
            counts = started(out)
            wrong = {name: n for name, n in counts.items() if n != r + 1}
            if len(counts) != args.jobs or wrong:
                raise SystemExit(f"worker_cpu: round {r}: {args.jobs - len(counts)} jobs never "
                                 f"ran, {len(wrong)} ran a wrong number of times; see {work}")
            per_run = [round(1000 * (cpu1[k] - cpu0[k]) / args.jobs, 2) for k in (0, 1)]
            rounds.append({"worker_cpu_ms_per_run": per_run[0],
                           "commands_cpu_ms_per_run": per_run[1],
                           "all_started_s": round(elapsed, 2)})
            print(f"round {r}: {rounds[-1]}", file=sys.stderr, flush=True)
    finally:
        for proc in (worker, redis_proc):
            stop(proc)
    counted = rounds[1:]
    return {"jobs": args.jobs, "worker": f"bridge worker {' '.join(line)}",
            "processes": args.processes or default_processes(),
            "pool": args.pool, "concurrency": args.concurrency,
            "registry": args.registry, "rounds": rounds,
            "worker_cpu_ms_per_run": round(sum(r["worker_cpu_ms_per_run"] for r in counted)
                                           / len(counted), 2),
            "all_started_s_median": round(statistics.median(r["all_started_s"]
                                                            for r in counted), 2)}


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


if __name__ == "__main__":
    main()
