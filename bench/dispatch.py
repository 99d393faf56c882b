"""Dispatch benchmark: stock RedBeat vs BridgeScheduler, N entries due in the same second.

    .venv/bin/python bench/dispatch.py            # N = 1,000 and 10,000
    .venv/bin/python bench/dispatch.py --big      # also N = 100,000
    .venv/bin/python bench/dispatch.py --no-worker

For each N, on a private ``redis-server`` (free loopback port, no persistence) started here:

* **stock**: N entries saved with RedBeat's own ``RedBeatSchedulerEntry(...).save()`` (interval
  schedule, never run, so due now); ``RedBeatScheduler.tick()`` until all N messages are queued.
* **bridge**: N every-minute bridge entries written by ``EntryStore.sync`` as if synced during
  the previous minute (watermark = the previous slot), so each entry's score is the current
  minute's slot and it is due now; ``BridgeScheduler.tick()`` (sleeping what ``tick()`` returns)
  until all N messages are queued. Every queued message must carry the current slot: a bench
  that dispatched the next minute's slot, or fewer than N messages, exits non-zero.
* **ceiling**: N kombu-wrapped protocol-2 messages of the same size as the bridge's (about
  1 KB) pushed by pipelined ``LPUSH``, 1,000 per round trip: what Redis itself accepts from one
  client on this machine, the upper bound for any scheduler.

Each N up to 10,000 runs ``--repeat`` times (default 3), stock and bridge interleaved; the table
shows medians of wall time and of this process's CPU time (the machine is shared: wall times of
single runs are noisy; CPU time shows the work each scheduler does). Timing starts at the first
tick of a freshly created scheduler, so it includes connecting the producer and compiling the
schedules (all N bridge jobs share one schedule, so one evaluator serves them all).

Both use the same Celery app (``bridge.celery_app.make_app``: JSON, ``task_send_sent_event`` on,
so both publish a ``task-sent`` event per message) and hold the beat lock as in production.
Every queued bridge message is then decoded from Redis (kombu envelope -> protocol 2 headers and
body) and checked: task name, one message per (job, slot), the same header set ``send_task``
produces. Unless ``--no-worker``, a real ``celery worker`` (``tests.integration.recording_app``)
then drains the smallest bridge run and every (job, slot) must come back exactly once.

Prints a table and writes ``bench/results/dispatch.json``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
QUEUE = "bridge"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
         "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def hold_lock(scheduler: Any) -> None:
    from redbeat.schedulers import acquire_distributed_beat_lock

    acquire_distributed_beat_lock(sender=SimpleNamespace(scheduler=scheduler))


def tick_until(scheduler: Any, r: Any, n: int, timeout: float) -> tuple[float, float]:
    """Tick until ``n`` messages are queued; (wall, CPU) seconds of this process from the first
    tick (CPU time is what the scheduler itself spent, whatever else the machine is doing).
    Sleeps what ``tick()`` asks (as beat does), so a scheduler with nothing due does not spin."""
    started, cpu = time.perf_counter(), time.process_time()
    while r.llen(QUEUE) < n:
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"degenerate workload: only {r.llen(QUEUE)}/{n} messages queued "
                             f"after {timeout}s")
        delay = scheduler.tick()
        if delay and r.llen(QUEUE) < n:
            time.sleep(min(float(delay), 1.0))
    return time.perf_counter() - started, time.process_time() - cpu


def run_stock(app: Any, r: Any, n: int) -> tuple[float, float]:
    from celery.schedules import schedule
    from redbeat.schedulers import RedBeatScheduler, RedBeatSchedulerEntry

    r.flushall()
    every = schedule(timedelta(hours=1))
    last = datetime.now(UTC) - timedelta(hours=1, seconds=1)  # ran an hour ago: due now
    for i in range(n):
        RedBeatSchedulerEntry(f"job-{i:06d}", "bridge.run_job", every, args=[f"job-{i:06d}"],
                              options={"queue": QUEUE}, last_run_at=last, app=app).save()
    scheduler = RedBeatScheduler(app=app)
    hold_lock(scheduler)
    try:
        timing = tick_until(scheduler, r, n, timeout=max(120.0, n / 50))
    finally:
        scheduler.close()
    check_stock(r, n)
    return timing


def check_stock(r: Any, n: int) -> None:
    """Stock RedBeat's run queued each of the N jobs exactly once, or the bench stops."""
    jobs = [json.loads(base64.b64decode(json.loads(item)["body"]))[0][0]
            for item in r.lrange(QUEUE, 0, -1)]
    require(len(jobs) == n and len(set(jobs)) == n,
            f"stock RedBeat queued {len(jobs)} messages for {len(set(jobs))} distinct jobs, "
            f"expected {n}")


def bridge_entries(app: Any, r: Any, n: int) -> float:
    """Write n every-minute bridge entries due at the current minute slot; return that slot.

    ``EntryStore.sync`` stamps a new entry's watermark at the ``now`` it is given and scores it
    at the next slot after it; syncing "one minute ago" makes the current minute the next slot
    (checked below), exactly what beat meets when N jobs fall due in the same minute."""
    from bridge.adapters.redbeat_entries import Desired, EntryStore, encode_definition, schedule_key
    from bridge.core.spec import CommandHandler, Dialect, JobSpec, Policies, ScheduleSpec

    store = EntryStore(r, app.conf.redbeat_key_prefix)
    schedule = ScheduleSpec(dialect=Dialect.VIXIE, expression="* * * * *", timezone="UTC")
    policies = Policies(queue=QUEUE, misfire_grace_seconds=3600)
    desired = []
    for i in range(n):
        spec = JobSpec(id=f"job-{i:06d}", schedule=schedule,
                       handler=CommandHandler(command="true"), policies=policies)
        desired.append(Desired(spec.id, encode_definition(spec, "bench"), spec))
    slot = float(int(time.time()) // 60 * 60)
    store.sync(desired, datetime.fromtimestamp(slot - 60, UTC))
    scores = r.zrange(schedule_key(store.prefix), 0, -1, withscores=True)
    wrong = [(k, s) for k, s in scores if s != slot]
    if len(scores) != n or wrong:
        raise SystemExit(f"degenerate workload: {len(scores)}/{n} entries, {len(wrong)} not due "
                         f"at the current slot {slot:.0f} (e.g. {wrong[:2]})")
    return slot


def run_bridge(app: Any, r: Any, n: int) -> tuple[tuple[float, float], float]:
    from bridge.beat.scheduler import BridgeScheduler

    r.flushall()
    # a run crossing the minute would also publish the next slot: start early in a minute
    budget = 40 if n <= 10000 else 5
    if time.time() % 60 > budget:
        time.sleep(60 - time.time() % 60 + 0.1)
    slot = bridge_entries(app, r, n)
    scheduler = BridgeScheduler(app=app)
    hold_lock(scheduler)
    try:
        return tick_until(scheduler, r, n, timeout=max(120.0, n / 50)), slot
    finally:
        scheduler.close()


def run_ceiling(app: Any, r: Any, n: int, slot: float) -> tuple[float, float, int]:
    """N messages exactly as large as the bridge's, pushed by pipelined LPUSH (1,000 commands
    per round trip): what Redis accepts from one client, nothing built per message."""
    from bridge.beat.publish import BatchPublisher, SlotMessage

    r.flushall()
    # one real bridge message as the template (about 1 KB): the ceiling pushes bytes of the
    # same size, so the comparison is about the scheduler's work, not the payload
    BatchPublisher(app).publish(_producer(app), [SlotMessage("job-000000", datetime.fromtimestamp(
        slot, UTC), QUEUE)])
    template = r.rpop(QUEUE)
    require(template is not None, "the ceiling's template message was not queued")
    r.flushall()
    started, cpu = time.perf_counter(), time.process_time()
    with r.pipeline(transaction=False) as pipe:
        for i in range(n):
            pipe.lpush(QUEUE, template)
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
    wall, spent = time.perf_counter() - started, time.process_time() - cpu
    queued = r.llen(QUEUE)
    if queued != n:
        raise SystemExit(f"degenerate workload: ceiling queued {queued}/{n}")
    return wall, spent, len(template)


def _producer(app: Any) -> Any:
    return app.amqp.Producer(app.connection_for_write().default_channel)


def reference_headers(app: Any, r: Any) -> set[str]:
    """The header names of a message made by ``app.send_task`` (the standard path)."""
    r.delete("ref")
    app.send_task("bridge.run_job", ["ref", "2026-01-01T00:00:00Z"], queue="ref")
    envelope = json.loads(r.rpop("ref"))
    return set(envelope["headers"])


def require(condition: bool, what: str) -> None:
    """A bench check that holds under ``python -O`` too: exit non-zero, saying what failed."""
    if not condition:
        raise SystemExit(f"degenerate workload: {what}")


def check_messages(app: Any, r: Any, n: int, slot: float) -> dict[str, Any]:
    """Decode every queued message: exactly N, one per job, each for the current slot, each
    the protocol 2 message ``send_task`` makes (exits non-zero on the first that is not)."""
    expected_slot = datetime.fromtimestamp(slot, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    raw = r.lrange(QUEUE, 0, -1)
    want = reference_headers(app, r)
    pairs = set()
    for item in raw:
        env = json.loads(item)
        headers, props = env["headers"], env["properties"]
        require(env["content-type"] == "application/json", f"content-type {env['content-type']}")
        require(headers["task"] == "bridge.run_job" and headers["lang"] == "py",
                f"task {headers['task']}")
        require(set(headers) >= want, f"headers missing {want - set(headers)}")
        require(props["correlation_id"] == headers["id"], "correlation_id is not the task id")
        require(props["delivery_info"]["routing_key"] == QUEUE, "routed elsewhere")
        args, kwargs, embed = json.loads(base64.b64decode(env["body"]))
        require(kwargs == {} and set(embed) == {"callbacks", "errbacks", "chain", "chord"},
                f"body {kwargs} {embed}")
        require(args[1] == expected_slot, f"a message for {args}, not the slot {expected_slot}")
        pairs.add((args[0], args[1]))
    require(len(raw) == n and len(pairs) == n,
            f"{len(raw)} messages for {len(pairs)} (job, slot) pairs, expected {n}")
    return {"messages": len(raw), "distinct_job_slot": len(pairs), "protocol": 2,
            "headers_match_send_task": True}


def drain_with_worker(r: Any, n: int, env: dict[str, str], workdir: Path) -> dict[str, Any]:
    """Let a real ``celery worker`` consume the queued messages; every one must run once."""
    record = workdir / "worker-record.txt"
    record.unlink(missing_ok=True)
    wenv = {**env, "RECORDING_FILE": str(record), "PYTHONPATH": str(ROOT)}
    celery = str(Path(sys.executable).with_name("celery"))
    proc = subprocess.Popen(
        [celery, "-A", "tests.integration.recording_app", "worker", "-Q", QUEUE, "-P", "threads",
         "-c", "8", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"],
        env=wenv, cwd=str(workdir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    started = time.monotonic()
    try:
        while time.monotonic() - started < 120:
            lines = record.read_text().splitlines() if record.exists() else []
            if len(lines) >= n:
                break
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    lines = record.read_text().splitlines() if record.exists() else []
    require(len(lines) == n and len(set(lines)) == n,
            f"the worker ran {len(lines)} messages ({len(set(lines))} distinct), expected {n}")
    return {"consumed_by_stock_worker": len(lines), "seconds": round(time.monotonic() - started, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", action="store_true", help="also N = 100,000")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per N up to 10,000 (the median is reported)")
    parser.add_argument("--no-worker", action="store_true", help="skip the real-worker drain")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "dispatch.json"))
    opts = parser.parse_args()
    sizes = [1000, 10000] + ([100000] if opts.big else [])

    workdir = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
    redis_proc, url = start_redis(workdir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update(BRIDGE_REDIS_URL=url, BRIDGE_DATABASE_URL=f"sqlite:///{workdir}/registry.db",
               XDG_DATA_HOME=str(workdir / "data"), XDG_CONFIG_HOME=str(workdir / "config"))
    os.environ.clear()
    os.environ.update(env)
    try:
        results = run_all(sizes, opts.repeat, opts.no_worker, env, workdir)
    finally:
        redis_proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(results["rows"])
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten {out}")


def run_all(sizes: list[int], repeats: int, no_worker: bool, env: dict[str, str],
            workdir: Path) -> dict[str, Any]:
    import celery
    import redbeat
    import redis

    from bridge.celery_app import make_app

    app = make_app()
    app.conf.bridge_rehydrate_interval = 0  # no registry here: entries are written directly
    r = redis.Redis.from_url(env["BRIDGE_REDIS_URL"])
    rows, checks = [], {}
    for n in sizes:
        repeat = repeats if n <= 10000 else 1
        stock_runs, bridge_runs, ceiling_runs = [], [], []
        for _ in range(repeat):  # interleaved, so machine noise hits all three alike
            stock_runs.append(run_stock(app, r, n))
            timing, slot = run_bridge(app, r, n)
            bridge_runs.append(timing)
            checks[str(n)] = check_messages(app, r, n, slot)  # every run, not only the last
            if n == min(sizes) and not no_worker and len(bridge_runs) == 1:
                checks[str(n)].update(drain_with_worker(r, n, env, workdir))
            wall, cpu, size = run_ceiling(app, r, n, slot)
            ceiling_runs.append((wall, cpu))
            checks[str(n)]["message_bytes"] = size
        rows.append(summarize(n, stock_runs, bridge_runs, ceiling_runs))
        print(f"N={n}: stock {stock_runs}, bridge {bridge_runs}, ceiling {ceiling_runs}",
              flush=True)
    return {
        "rows": rows, "checks": checks,
        "env": {"python": platform.python_version(), "celery": celery.__version__,
                "redbeat": getattr(redbeat, "__version__", "?"), "cpus": os.cpu_count(),
                "redis_server": r.info("server")["redis_version"],
                "when": datetime.now(UTC).isoformat(timespec="seconds")},
    }


def summarize(n: int, stock: list[tuple[float, float]], bridge: list[tuple[float, float]],
              ceiling: list[tuple[float, float]]) -> dict[str, Any]:
    def med(runs: list[tuple[float, float]], i: int) -> float:
        return statistics.median(run[i] for run in runs)

    stock_s, bridge_s = med(stock, 0), med(bridge, 0)
    stock_cpu, bridge_cpu = med(stock, 1), med(bridge, 1)
    ceiling_s = med(ceiling, 0)
    return {
        "ceiling_s": round(ceiling_s, 3), "ceiling_msg_s": round(n / ceiling_s),
        "bridge_of_ceiling": round(ceiling_s / bridge_s, 3),
        "n": n, "runs": len(stock),
        "stock_s": round(stock_s, 3), "stock_msg_s": round(n / stock_s),
        "bridge_s": round(bridge_s, 3), "bridge_msg_s": round(n / bridge_s),
        "speedup": round(stock_s / bridge_s, 1),
        "stock_cpu_s": round(stock_cpu, 3), "bridge_cpu_s": round(bridge_cpu, 3),
        "cpu_speedup": round(stock_cpu / bridge_cpu, 1),
        "stock_runs": [[round(w, 3), round(c, 3)] for w, c in stock],
        "bridge_runs": [[round(w, 3), round(c, 3)] for w, c in bridge],
        "ceiling_runs": [[round(w, 3), round(c, 3)] for w, c in ceiling],
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'N':>7} {'stock s':>8} {'stock msg/s':>11} {'bridge s':>8} {'bridge msg/s':>12} "
          f"{'speed-up':>8} | {'stock cpu':>9} {'bridge cpu':>10} {'cpu x':>6} | "
          f"{'LPUSH msg/s':>11} {'of ceiling':>10}")
    for row in rows:
        print(f"{row['n']:>7} {row['stock_s']:>8.3f} {row['stock_msg_s']:>11} "
              f"{row['bridge_s']:>8.3f} {row['bridge_msg_s']:>12} {row['speedup']:>7.1f}x | "
              f"{row['stock_cpu_s']:>9.3f} {row['bridge_cpu_s']:>10.3f} "
              f"{row['cpu_speedup']:>5.1f}x | {row['ceiling_msg_s']:>11} "
              f"{100 * row['bridge_of_ceiling']:>9.0f}%")


if __name__ == "__main__":
    main()
