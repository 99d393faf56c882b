"""Exactly-once across authority flips, measured over N per-second slots (real processes).

The world of ``tests/e2e/test_flip_boundary.py`` at a larger scale: a private ``redis-server``,
a SQLite registry, a real ``celery beat -S bridge.scheduler:BridgeScheduler`` and worker, and
the legacy side fired once per second through ``bridge-cron-shell`` (:class:`LegacyLoop`). The
per-second Quartz job (``* * * * * ?``) starts legacy-owned; ``bridge authority flip --to
celery --at`` moves it at ``--celery-from`` of the window and ``--to legacy --at`` back at
``--celery-until``. Afterwards every slot of the window is checked: executed exactly once
(one authoritative ``runs`` row + one side-effect line inside it), missing, doubled, and who
stood down; the shadow report's verdict counts over the window are added.

    python bench/boundary.py [--slots 1000] [--celery-from 0.33] [--celery-until 0.67]
                             [--out bench/results/boundary.json]

Exit status 0 when every slot ran exactly once and nothing else is wrong, 1 otherwise.
Takes about N + 30 seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bridge.core.spec import CommandHandler, Dialect, JobSpec, ScheduleSpec  # noqa: E402
from tests.e2e.harness import (  # noqa: E402
    SIDE_EFFECT,
    LegacyLoop,
    World,
    analyse_boundary,
    flip,
    iso,
    shadow_verdicts,
    sleep_until,
    utc,
    wait_for,
)

JOB = "bench.flip-boundary"
RESULTS = HERE / "results" / "boundary.json"


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def run(slots: int, celery_from: float, celery_until: float, keep: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bridge-boundary-"))
    redis_proc, redis_url = start_redis(tmp)
    world = World(tmp, redis_url)
    out = tmp / "side-effects.txt"
    command = SIDE_EFFECT + str(out)
    began = time.monotonic()
    try:
        from bridge.store.db import Registry, upgrade

        reg = Registry(world.db_url, check_schema=False)
        upgrade(reg.engine)
        reg.dispose()
        world.add_jobs(JobSpec(
            id=JOB, schedule=ScheduleSpec(dialect=Dialect.QUARTZ, expression="* * * * * ?",
                                          timezone="UTC"),
            handler=CommandHandler(command=command, user="root"),
        ))
        synced = world.cli("sync", "--json")
        if synced.code != 0:
            raise SystemExit(f"bridge sync failed: {synced.err}")
        world.worker()
        world.beat()
        loop = LegacyLoop(world, JOB, command)
        loop.start()
        try:
            wait_for("both paths to record slots",
                     lambda: {r.path for r in world.runs(JOB)} >= {"legacy", "celery"}, 90,
                     world.tail_logs)
            first = utc(math.floor(time.time()) + 8)  # the flip needs now + margin (5 s) < S1
            to_celery = first + timedelta(seconds=max(8, round(slots * celery_from)))
            back = first + timedelta(seconds=max(round(slots * celery_until),
                                                 (to_celery - first).seconds + 15))
            last = first + timedelta(seconds=slots - 1)
            flipped = flip(world, JOB, "celery", to_celery)
            if flipped.code != 0:
                raise SystemExit(f"flip to celery refused: {flipped.out}{flipped.err}")
            sleep_until(min(to_celery.timestamp() + 5, back.timestamp() - 7))
            returned = flip(world, JOB, "legacy", back)
            if returned.code != 0:
                raise SystemExit(f"flip back refused: {returned.out}{returned.err}")
            progress = first.timestamp()
            while time.time() < last.timestamp() + 1.5:
                sleep_until(min(progress + 60, last.timestamp() + 1.5))
                progress = time.time()
                done = min(slots, max(0, int(progress - first.timestamp())))
                print(f"  {done}/{slots} slots", file=sys.stderr, flush=True)
        finally:
            loop.finish()
        wait_for("the Celery side to catch up",
                 lambda: any(r.slot > last and r.path == "celery" for r in world.runs(JOB))
                 and world.queue_length() == 0, 120, world.tail_logs)
        time.sleep(2)
        b = analyse_boundary(world, JOB, out, first, last, to_celery, back)
        report = world.cli("shadow", "report", "--json", "--job", JOB, "--since",
                           iso(first - timedelta(seconds=1)), "--until", iso(last))
        [job] = report.json()["jobs"]
        verdicts = shadow_verdicts(world, JOB, first - timedelta(seconds=1), last)
        sides = {"legacy_stood_down_while_celery_owned": 0, "celery_stood_down_after_back": 0,
                 "celery_observed_before_flip": 0}
        for v in verdicts:
            if to_celery <= v.slot < back and v.legacy and v.legacy.role.value == "stand-down":
                sides["legacy_stood_down_while_celery_owned"] += 1
            if v.slot >= back and v.celery and v.celery.role.value == "stand-down":
                sides["celery_stood_down_after_back"] += 1
            if v.slot < to_celery and v.celery and v.celery.role.value == "observe":
                sides["celery_observed_before_flip"] += 1
        summary = b.summary()
        result: dict[str, Any] = {
            "benchmark": "boundary",
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": {"machine": platform.machine(), "python": platform.python_version(),
                     "cpus": __import__("os").cpu_count()},
            "window": {"first": iso(first), "last": iso(last), "to_celery": iso(to_celery),
                       "back_to_legacy": iso(back)},
            **summary,
            "ok": not summary["missing"] and not summary["doubles"] and not summary["problems"]
            and not summary["unmatched_side_effect_lines"] and b.executed_once == len(b.slots),
            "shadow_report": {"exit": report.code, "counts": job["counts"],
                              "expected_slots": job["expected_slots"],
                              "unresolved": job["unresolved"], **sides},
            "legacy_loop": {"fired": len(loop.fired), "late_firings": len(loop.late),
                            "nonzero_shim_exits": sum(1 for _, c in loop.statuses if c != 0)},
            "seconds": round(time.monotonic() - began, 1),
        }
        if not result["ok"]:
            result["logs"] = world.tail_logs(15)
        return result
    finally:
        world.close()
        redis_proc.kill()
        redis_proc.wait(timeout=10)
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slots", type=int, default=1000)
    ap.add_argument("--celery-from", type=float, default=1 / 3,
                    help="fraction of the window where Celery takes over")
    ap.add_argument("--celery-until", type=float, default=2 / 3,
                    help="fraction of the window where legacy takes back")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    if args.slots < 40:
        ap.error("--slots must be at least 40")
    result = run(args.slots, args.celery_from, args.celery_until, args.keep)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "logs"}, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
