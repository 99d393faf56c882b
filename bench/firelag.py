"""Fire lag: the same N every-minute jobs under the real Debian cron daemon and under the bridge.

    .venv/bin/python bench/firelag.py                       # N = 100 and 1,000 (needs root)
    .venv/bin/python bench/firelag.py --sizes 1000 --minutes 2
    .venv/bin/python bench/firelag.py --pool prefork --concurrency 2    # an older worker line

What is measured is the start of each job's **command**: every job is ``date +%s.%N >> FILE``
(one file per job), so the figure is the time the command itself read the clock, minus the
minute it was due for. For each N, one after the other in the same run (never at the same time:
each side has the machine's two cores to itself):

* **cron**: the real Debian cron daemon (``cron -f``) in a private mount namespace (``unshare
  --mount``: tmpfs over /etc/cron.d, /run and /var/spool/cron/crontabs, an empty /etc/crontab),
  with one cron.d file of N lines ``* * * * * root date +\\%s.\\%N >> DIR/job-I`` (``\\%``: in a
  cron line ``%`` is a newline). Started 10 s before the first measured minute (Debian cron
  checks the minute only from its second wake-up).
* **bridge**: a private ``redis-server``, a fresh SQLite registry with the same N jobs
  (``CommandHandler("date +%s.%N >> DIR/job-I")``: the command the importer makes of that
  line) owned by Celery, one real ``celery beat`` (``BridgeScheduler``, entries rebuilt from SQL)
  and the worker line ``bridge worker`` recommends (``--pool threads --concurrency 200``,
  ``--processes`` unset: its default; or ``--pool``/``--concurrency``/``--processes``; the
  line used is printed and recorded), every run through the real ``bridge.run_job`` (claim in SQL,
  cron-faithful runner, verdict + runs row).

``--events`` runs the worker with ``--events`` (task events from the first task: what a worker
costs while Flower watches it; without it, task events are off until a monitor asks, as by
default); ``--out bench/results/firelag-events.json`` puts that run beside the default one in
``docs/benchmarks.md``.

Each side runs ``--minutes`` whole minutes (default 1); every job must have started exactly once
in every measured minute, otherwise the bench exits 1 naming what is missing (a degenerate
workload never produces a figure). Reports p50 / p99 / max of command start minus the minute for
both sides and the ratio bridge / cron; writes ``bench/results/firelag.json``.
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
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CELERY = str(Path(sys.executable).with_name("celery"))
BRIDGE = str(Path(sys.executable).with_name("bridge"))
RESULTS = ROOT / "bench" / "results" / "firelag.json"
LEAD_SECONDS = 10.0  # processes start this long before the first measured minute
PROCESSES: int | None = None  # bridge worker --processes (None: its default); set by main()
EVENTS = False  # bridge worker --events (task events from the first task, as with Flower watching)
SETTLE_SECONDS = 30.0  # after the last measured minute, wait at most this for stragglers


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(t: float) -> None:
    while (left := t - time.time()) > 0:
        time.sleep(min(left, 1.0))


def next_start(lead: float) -> float:
    """The first whole minute at least ``lead`` + 5 s away (epoch)."""
    return float((int(time.time() + lead + 5) // 60 + 1) * 60)


def read_starts(out: Path, n: int, minutes: list[float]) -> tuple[list[float], list[str]]:
    """Lags (command start - minute) of every job in every minute; and what is wrong."""
    lags, problems = [], []
    for i in range(n):
        path = out / f"job-{i:05d}"
        stamps = [float(x) for x in path.read_text().split()] if path.exists() else []
        for m in minutes:
            inside = [t - m for t in stamps if m <= t < m + 60]
            if len(inside) != 1:
                problems.append(f"job-{i:05d} started {len(inside)} times in minute "
                                f"{datetime.fromtimestamp(m, UTC):%H:%M}")
            else:
                lags.append(inside[0])
    return lags, problems


def summary(lags: list[float]) -> dict[str, Any]:
    return {"runs": len(lags), "p50_s": round(percentile(lags, 0.5), 3),
            "p99_s": round(percentile(lags, 0.99), 3), "max_s": round(max(lags), 3)}


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


# --- cron --------------------------------------------------------------------------------


def run_cron(n: int, minutes: int, work: Path) -> dict[str, Any]:
    if os.geteuid() != 0:
        raise SystemExit("firelag: the real cron daemon needs root (a private mount namespace)")
    cron = shutil.which("cron") or "/usr/sbin/cron"
    out = work / "cron-out"
    out.mkdir()
    crond = work / "cron.d-file"
    crond.write_text("".join(f"* * * * * root date +\\%s.\\%N >> {out}/job-{i:05d}\n"
                             for i in range(n)))
    script = (
        "set -e; mount --make-rprivate /; "
        "mount -t tmpfs tmpfs /etc/cron.d; mount -t tmpfs tmpfs /run; "
        "mkdir -p /var/spool/cron/crontabs; mount -t tmpfs tmpfs /var/spool/cron/crontabs; "
        f": > {work}/empty; mount --bind {work}/empty /etc/crontab; "
        f"cp {crond} /etc/cron.d/firelag; chmod 644 /etc/cron.d/firelag; exec {cron} -f"
    )
    first = next_start(LEAD_SECONDS)
    wait_until(first - LEAD_SECONDS)
    with (work / "cron.log").open("wb") as log:
        proc = subprocess.Popen(["unshare", "--mount", "--fork", "bash", "-c", script],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    measured = [first + 60 * k for k in range(minutes)]
    try:
        settle(out, n, measured, proc, work / "cron.log")
    finally:
        kill_group(proc)
    return collect("cron", out, n, measured, {"daemon": cron})


# --- bridge --------------------------------------------------------------------------------


def setup_registry(url: str, n: int, out: Path) -> None:
    from bridge.core.authority import Owner
    from bridge.core.spec import CommandHandler, Dialect, JobSpec, ScheduleSpec, SourceLocation
    from bridge.store.db import Registry, upgrade
    from bridge.store.repos import AuthorityRepo, JobRepo

    registry = Registry(url, check_schema=False)
    upgrade(registry.engine)
    schedule = ScheduleSpec(dialect=Dialect.VIXIE, expression="* * * * *")
    with registry.session() as s:
        jobs, authority = JobRepo(s), AuthorityRepo(s)
        for i in range(n):
            spec = JobSpec(id=f"firelag-{i:05d}", schedule=schedule,
                           handler=CommandHandler(command=f"date +%s.%N >> {out}/job-{i:05d}"),
                           source=SourceLocation("/etc/cron.d/firelag", i + 1))
            jobs.upsert(spec)
            authority.append(spec.id, Owner.CELERY, effective_slot=None, actor="firelag",
                             reason="fire lag benchmark")
    registry.dispose()


def default_processes() -> int:
    from bridge.cli.worker_supervisor import default_processes as bridge_default

    return bridge_default()


def worker_line(pool: str, concurrency: int, processes: int | None) -> list[str]:
    """The ``bridge worker`` options (``processes`` None: its default)."""
    line = ["--pool", pool, "--concurrency", str(concurrency)]
    return line if processes is None else [*line, "--processes", str(processes)]


def run_bridge(n: int, minutes: int, work: Path, pool: str, concurrency: int,
               workers: int, registry: str) -> dict[str, Any]:
    if registry == "postgresql":
        sys.path.insert(0, str(ROOT / "bench"))
        from pgtemp import disposable_pg

        with disposable_pg("firelag") as url:
            return _run_bridge(n, minutes, work, pool, concurrency, workers, url)
    return _run_bridge(n, minutes, work, pool, concurrency, workers,
                       f"sqlite:///{work / 'registry.db'}")


def _run_bridge(n: int, minutes: int, work: Path, pool: str, concurrency: int,
                workers: int, db_url: str) -> dict[str, Any]:
    out = work / "bridge-out"
    out.mkdir()
    port = free_port()
    redis_proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
         "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(work)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    setup_registry(db_url, n, out)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update(BRIDGE_REDIS_URL=f"redis://127.0.0.1:{port}/0", BRIDGE_DATABASE_URL=db_url,
               PYTHONPATH=str(ROOT), BRIDGE_HEALTH_INTERVAL="3600",
               XDG_DATA_HOME=str(work / "xdg"), XDG_CONFIG_HOME=str(work / "xdg-config"))
    line = worker_line(pool, concurrency, PROCESSES) + (["--events"] if EVENTS else [])
    worker_argv = [BRIDGE, "worker", *line, "--", "-Q", "bridge", "-l", "WARNING"]
    print(f"bridge side: {workers} x `bridge worker {' '.join(line)}`", flush=True)
    first = next_start(30.0)  # beat and workers need a few seconds to start on a busy machine
    procs: list[subprocess.Popen[bytes]] = []
    measured = [first + 60 * k for k in range(minutes)]
    try:
        for k in range(workers):
            with (work / f"worker-{k}.log").open("wb") as log:
                procs.append(subprocess.Popen(
                    [*worker_argv, "-n", f"firelag{k}-{os.getpid()}@%h"], env=env, cwd=work,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        with (work / "beat.log").open("wb") as log:
            procs.append(subprocess.Popen(
                [CELERY, "-A", "bridge.celery_app", "beat", "-S",
                 "bridge.scheduler:BridgeScheduler", "-l", "INFO", "-s",
                 str(work / "beat-schedule")], env=env, cwd=work, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True))
        if time.time() > first - 5:
            raise SystemExit("firelag: set-up overran the first measured minute")
        for proc in procs:
            if proc.poll() is not None:
                raise SystemExit(f"firelag: a bridge process died at start-up; see {work}")
        wait_until(first - 2)  # worker start-up is not the burst's cost
        cpu_before = [worker_cpu_seconds(p.pid) for p in procs[:workers]]
        settle(out, n, measured, procs[-1], work / "beat.log")
        time.sleep(2)  # the last runs' records
        cpu_after = [worker_cpu_seconds(p.pid) for p in procs[:workers]]
        worker_cpu = {"worker_cpu_s_per_run_ms": round(1000 * sum(
            a[0] - b[0] for a, b in zip(cpu_after, cpu_before, strict=True)) / (n * minutes), 2),
            "children_cpu_s_per_run_ms": round(1000 * sum(
                a[1] - b[1] for a, b in zip(cpu_after, cpu_before, strict=True)) /
                (n * minutes), 2)}
    finally:
        for proc in procs:
            kill_group(proc)
        redis_proc.kill()
        redis_proc.wait()
    return collect("bridge", out, n, measured,
                   {"worker": f"bridge worker {' '.join(line)}",
                    "worker_processes": PROCESSES or default_processes(),
                    "workers": workers, "registry": db_url.split(":", 1)[0].split("+")[0],
                    "breakdown": {**breakdown(db_url, work / "beat.log", measured),
                                  **worker_cpu}})


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(own, reaped children's) CPU seconds of a process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def worker_cpu_seconds(pid: int) -> tuple[float, float]:
    """:func:`cpu_seconds` of ``bridge worker``'s process plus its direct children (the Celery
    workers under ``--processes N``; their commands are their reaped children)."""
    own, reaped = cpu_seconds(pid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text.rsplit(")", 1)[1].split()[1]) == pid:
            with contextlib.suppress(OSError, ValueError):
                child = cpu_seconds(int(stat.parent.name))
                own, reaped = own + child[0], reaped + child[1]
    return own, reaped


def breakdown(db_url: str, beat_log: Path, measured: list[float]) -> dict[str, Any]:
    """Where the bridge's lag goes: beat's publishing (its log), the task's start (the runs
    row's ``fired_at``), the claim + spawn until the command ran (``started_at``)."""
    import re

    from sqlalchemy import create_engine, text

    published = []
    for line in beat_log.read_text(errors="replace").splitlines():
        m = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}): INFO/[^\]]*\] "
                     r"beat: published (\d+)", line)
        if m:
            t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            published.append((t.timestamp() + int(m.group(2)) / 1000, int(m.group(3))))
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT slot, fired_at, started_at FROM runs WHERE role = "
                                 "'authoritative'")).fetchall()
    engine.dispose()

    def epoch(value: Any) -> float:
        t = datetime.fromisoformat(value) if isinstance(value, str) else value
        return float(t.replace(tzinfo=UTC).timestamp())

    task = [epoch(f) - epoch(s) for s, f, _ in rows if f and epoch(s) in measured]
    spawn = [epoch(st) - epoch(f) for s, f, st in rows if f and st and epoch(s) in measured]
    out: dict[str, Any] = {}
    for m in measured:
        batch = [(t - m, k) for t, k in published if m <= t < m + 60]
        if batch:
            out.setdefault("beat_published_s", []).append(
                {"first": round(batch[0][0], 3), "last": round(batch[-1][0], 3),
                 "messages": sum(k for _, k in batch)})
    if task:
        out["task_start_minus_slot"] = summary(task)
    if spawn:
        out["command_started_minus_task_start"] = summary(spawn)
    return out


# --- shared --------------------------------------------------------------------------------


def settle(out: Path, n: int, measured: list[float], proc: subprocess.Popen[bytes],
           log: Path) -> None:
    """Wait for the measured minutes, then until every job has started in each (or timeout)."""
    deadline = measured[-1] + 60 + SETTLE_SECONDS
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"firelag: {proc.args!r} exited {proc.returncode}:\n"
                             f"{log.read_text()[-2000:]}")
        if time.time() > measured[-1] + 2 and not read_starts(out, n, measured)[1]:
            return
        time.sleep(1.0)


def collect(side: str, out: Path, n: int, measured: list[float],
            extra: dict[str, Any]) -> dict[str, Any]:
    lags, problems = read_starts(out, n, measured)
    if problems:
        raise SystemExit(f"firelag: degenerate {side} workload, {len(problems)} job-minutes "
                         f"wrong (e.g. {problems[:5]}); files in {out}")
    return {**summary(lags), **extra,
            "minutes": [datetime.fromtimestamp(m, UTC).strftime("%H:%M") for m in measured]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000", help="comma-separated N (default 100,1000)")
    ap.add_argument("--minutes", type=int, default=1, help="measured minutes per side")
    ap.add_argument("--pool", default="threads")
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--workers", type=int, default=1, help="`bridge worker` commands started")
    ap.add_argument("--processes", type=int, default=None,
                    help="bridge worker --processes (default: unset, its default)")
    ap.add_argument("--registry", choices=("sqlite", "postgresql"), default="sqlite",
                    help="the bridge's registry (postgresql: a disposable database on the "
                         "local server, BRIDGE_TEST_PG_ADMIN)")
    ap.add_argument("--events", action="store_true",
                    help="bridge worker --events: task events from the first task, as when "
                         "Flower watches (it switches them on within 5 s)")
    ap.add_argument("--sides", default="cron,bridge",
                    help="which sides to run (default both; one side is for exploring only)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    global PROCESSES, EVENTS
    PROCESSES, EVENTS = args.processes, args.events
    sides = set(args.sides.split(","))
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    if not sizes or min(sizes) < 1 or args.minutes < 1:
        raise SystemExit("firelag: --sizes and --minutes must be positive")
    rows = []
    for n in sizes:
        work = Path(tempfile.mkdtemp(prefix=f"bench-firelag-{n}-"))
        try:
            cron = run_cron(n, args.minutes, work) if "cron" in sides else None
            print(f"N={n} cron:   {cron}", flush=True)
            bridge = run_bridge(n, args.minutes, work, args.pool, args.concurrency,
                                args.workers, args.registry) if "bridge" in sides else None
            print(f"N={n} bridge: {bridge}", flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if cron is None or bridge is None:
            continue
        rows.append({"n": n, "cron": cron, "bridge": bridge,
                     "ratio_p50": round(bridge["p50_s"] / max(cron["p50_s"], 1e-6), 2),
                     "ratio_p99": round(bridge["p99_s"] / max(cron["p99_s"], 1e-6), 2),
                     "bridge_p99_below_cron": bridge["p99_s"] < cron["p99_s"]})
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                 "load_average_1m": round(os.getloadavg()[0], 2)},
        "command": "date +%s.%N >> FILE (one file per job)",
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'N':>6} {'side':<7} {'p50 s':>7} {'p99 s':>7} {'max s':>7}")
    for row in rows:
        for side in ("cron", "bridge"):
            s = row[side]
            print(f"{row['n']:>6} {side:<7} {s['p50_s']:>7.3f} {s['p99_s']:>7.3f} "
                  f"{s['max_s']:>7.3f}")
        print(f"{'':>6} {'ratio':<7} {row['ratio_p50']:>7.2f} {row['ratio_p99']:>7.2f}")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
