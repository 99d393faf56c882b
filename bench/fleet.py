"""Fleet benchmark: an inventory of 500 hosts x 20 job lines (10,000 jobs) imported, synced to
RedBeat and reported on.

    python bench/fleet.py                       # 500 hosts x 20 lines
    python bench/fleet.py --hosts 50 --out /tmp/fleet.json

Setup (not timed): an inventory tree in a temporary directory, one folder per host as
``ansible -m fetch`` leaves it: ``etc/os-release`` (every fifth host a Rocky Linux host, read in
the cronie dialect, the others Debian), the zone as an ``etc/localtime`` link (Debian hosts:
``etc/timezone`` too), ``etc/cron.d/backup`` (the same 10 lines on every host) and a user
crontab of 10 lines of its own (``var/spool/cron/crontabs/deploy`` on Debian,
``var/spool/cron/deploy`` on Rocky); a private redis-server (free loopback port, no
persistence) and a temporary SQLite registry.

Timed, in a fresh child process (so its peak RSS is its own), each step as the CLI does it:
  read      read the tree (``crontab_import.inventory_fs.read_inventory``) and parse every
            host's files in its dialect and zone (``crontab_import.inventory.host_results``);
  plan      ``bridge.services.importer.plan_import`` with the fleet's hosts (ids qualified per
            host, prune by host and file);
  apply     ``bridge.services.importer.apply_plan`` in one SQL transaction;
  sync      ``bridge.services.sync.sync_registry`` (10,000 RedBeat entries);
  report    after backdating the imports a day and recording one matching legacy + Celery
            observation per slot of the last hour (not timed), ``shadow.report.build_report``
            over every job for that hour, and its per-host totals.
Then the same import again (every job ``unchanged``: the steady state of a nightly re-import).

The bench checks itself and exits non-zero unless: hosts x lines jobs are created in the
registry and in RedBeat, the plan spans every host, the re-import finds every job unchanged,
and the report covers every job with every slot of the hour matched. Writes
``bench/results/fleet.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
ROCKY = 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\n'
ZONES = ["Europe/Paris", "America/New_York", "UTC", "Asia/Tokyo"]
SCHEDULES = ["*/15 * * * *", "0 * * * *", "30 * * * *", "*/5 9-17 * * mon-fri", "15 2 * * *",
             "0 */6 * * *", "45 23 * * 0", "0 0 1 * *", "*/10 * * * *", "20 4 * * 1-5"]


def make_inventory(root: Path, hosts: int, lines: int) -> int:
    """Write the tree; returns the number of job lines in it."""
    shared = lines // 2
    backup = "SHELL=/bin/sh\nMAILTO=ops@example.com\n" + "".join(
        f"{SCHEDULES[k % len(SCHEDULES)]} root /usr/local/bin/backup --part {k}\n"
        for k in range(shared))
    total = 0
    for h in range(hosts):
        name = f"web-{h:03d}" if h % 5 else f"db-{h:03d}"
        rhel = h % 5 == 0
        folder = root / name
        (folder / "etc" / "cron.d").mkdir(parents=True)
        (folder / "etc" / "os-release").write_text(ROCKY if rhel else DEBIAN)
        zone = ZONES[h % len(ZONES)]
        os.symlink(f"../usr/share/zoneinfo/{zone}", folder / "etc" / "localtime")
        if not rhel:
            (folder / "etc" / "timezone").write_text(zone + "\n")
        (folder / "etc" / "cron.d" / "backup").write_text(backup)
        spool = folder / "var" / "spool" / "cron" / ("" if rhel else "crontabs")
        spool.mkdir(parents=True)
        own = "".join(
            f"{SCHEDULES[(h + k) % len(SCHEDULES)]} /home/deploy/bin/task-{h}-{k} --quiet\n"
            for k in range(lines - shared))
        (spool / "deploy").write_text("PATH=/usr/bin:/bin\n" + own)
        total += lines
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def record_hour(registry: Any, jobs: list[Any], since: datetime, until: datetime) -> int:
    """One matching legacy + Celery observation per slot of (since, until]; returns slots."""
    from bridge.core.runs import RunRecord
    from bridge.core.schedules import compile_schedule
    from bridge.store.runs import record_many

    rows, slots = [], 0
    for job in jobs:
        evaluator = compile_schedule(job.spec.schedule)
        slot = evaluator.next_after(since)
        while slot is not None and slot <= until:
            slots += 1
            fired = slot + timedelta(seconds=1)
            for path, role in (("legacy", "authoritative"), ("celery", "shadow")):
                rows.append(RunRecord(job_id=job.id, slot=slot, path=path, role=role,  # type: ignore[arg-type]
                                      status="succeeded", fired_at=fired, started_at=fired,  # type: ignore[arg-type]
                                      finished_at=fired, exit_status=0, host=job.host,
                                      record_key=f"{job.id}/{slot:%Y%m%dT%H%M}/{path}"))
            slot = evaluator.next_after(slot)
    with registry.session() as s:
        record_many(s, rows)
    return slots


def child(inventory: str, redis_url: str, db_url: str) -> None:
    from sqlalchemy import update

    from bridge.core.config import load_settings
    from bridge.services.importer import apply_plan, plan_import
    from bridge.services.sync import sync_registry
    from bridge.store.db import Registry
    from bridge.store.models import JobRow
    from bridge.store.repos import JobRepo
    from crontab_import.inventory import host_results
    from crontab_import.inventory_fs import read_inventory
    from crontab_import.plan import PlanStatus
    from shadow.report import build_report

    settings = load_settings({"BRIDGE_REDIS_URL": redis_url, "BRIDGE_DATABASE_URL": db_url})
    registry = Registry(db_url)
    figures: dict[str, Any] = {}

    def fleet_plan() -> tuple[Any, Any, tuple[float, float]]:
        t0 = time.perf_counter()
        inv = read_inventory(inventory, check_owner=False, max_bytes=1 << 30,
                             max_lines=10_000_000, default_zone=None)
        results = [r for h in inv.hosts for r in host_results(h)]
        t1 = time.perf_counter()
        plan = plan_import(registry, results, prune=True, include_inactive=False,
                           fleet_hosts=inv.readable_hosts)
        t2 = time.perf_counter()
        return inv, plan, (t1 - t0, t2 - t1)

    inv, plan, (read_s, plan_s) = fleet_plan()
    if plan.errors:
        raise SystemExit(f"fleet bench: plan errors: {[str(e) for e in plan.errors[:3]]}")
    t0 = time.perf_counter()
    with registry.session() as s:
        applied = apply_plan(plan, s, actor="bench")
    t1 = time.perf_counter()
    sync = sync_registry(registry, settings, known=[e.job for e in plan.changes if e.job])
    t2 = time.perf_counter()
    figures.update(read_s=read_s, plan_s=plan_s, apply_s=t1 - t0, sync_s=t2 - t1,
                   import_s=read_s + plan_s + (t1 - t0), hosts=len(inv.readable_hosts),
                   plan_hosts=len([h for h in plan.by_host() if h is not None]),
                   created=applied.created, redbeat_created=len(sync.created))
    _, again, (read2_s, plan2_s) = fleet_plan()
    figures.update(reimport_s=read2_s + plan2_s,
                   reimport_unchanged=again.count(PlanStatus.UNCHANGED),
                   reimport_changes=len(again.changes))
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    since = now - timedelta(hours=1)
    with registry.session() as s:
        s.execute(update(JobRow).values(created_at=now - timedelta(days=1)))
        jobs = JobRepo(s).list()
    figures["slots"] = record_hour(registry, jobs, since, now)
    t0 = time.perf_counter()
    with registry.session() as s:
        report = build_report(s, [j.id for j in jobs], since, now, now, timeline_limit=0)
    by_host = report.by_host()
    figures["report_s"] = time.perf_counter() - t0
    totals = report.totals()
    figures.update(report_jobs=totals["jobs"], report_slots=totals["expected_slots"],
                   report_matches=totals["counts"]["match"], report_hosts=len(by_host))
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    registry.dispose()
    print(json.dumps(figures))


def check(figures: dict[str, Any], hosts: int, expected: int) -> list[str]:
    problems = []
    if figures["created"] != expected or figures["redbeat_created"] != expected:
        problems.append(f"{expected} job lines, created registry/redbeat "
                        f"{figures['created']}/{figures['redbeat_created']}")
    if figures["plan_hosts"] != hosts or figures["hosts"] != hosts:
        problems.append(f"{hosts} hosts, plan spans {figures['plan_hosts']}")
    if figures["reimport_unchanged"] != expected or figures["reimport_changes"]:
        problems.append(f"re-import: {figures['reimport_unchanged']} unchanged, "
                        f"{figures['reimport_changes']} changes (want {expected}, 0)")
    if figures["report_jobs"] != expected or figures["report_hosts"] != hosts:
        problems.append(f"report covers {figures['report_jobs']} jobs on "
                        f"{figures['report_hosts']} hosts")
    if not figures["slots"] or figures["report_matches"] != figures["slots"]:
        problems.append(f"report matched {figures['report_matches']} of {figures['slots']} slots")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--lines", type=int, default=20, help="job lines per host")
    parser.add_argument("--out", default=str(RESULTS / "fleet.json"))
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    port = free_port()
    redis = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
         "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        expected = make_inventory(work / "inventory", args.hosts, args.lines)
        time.sleep(0.3)
        r = subprocess.run(
            [sys.executable, __file__, "--child", str(work / "inventory"),
             f"redis://127.0.0.1:{port}/0", f"sqlite:///{work / 'registry.db'}"],
            capture_output=True, text=True, timeout=1800, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        if r.returncode != 0:
            raise SystemExit(f"fleet bench failed: {r.stderr[-3000:]}")
        figures = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        redis.kill()
        shutil.rmtree(work, ignore_errors=True)
    problems = check(figures, args.hosts, expected)
    if problems:
        raise SystemExit("fleet bench: degenerate workload: " + "; ".join(problems))
    load = os.getloadavg()
    doc = {"hosts": args.hosts, "lines_per_host": args.lines, "jobs": expected, **figures,
           "env": {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                   "cpus": os.cpu_count(), "load": [round(x, 2) for x in load]}}
    print(f"{args.hosts} hosts x {args.lines} lines = {expected} jobs")
    for key in ("read_s", "plan_s", "apply_s", "import_s", "sync_s", "reimport_s", "report_s"):
        print(f"  {key:12} {figures[key]:8.2f} s")
    print(f"  report: {figures['report_jobs']} jobs, {figures['report_slots']} slots of the hour, "
          f"{figures['report_hosts']} hosts; peak RSS {figures['peak_rss_mb']:.0f} MiB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
