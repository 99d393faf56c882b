"""Measure the broker hand-over window (issue 14.1): kombu's BRPOP vs the bridge's BLMOVE.

For each transport, N rounds of: a fresh private ``redis-server`` and SQLite registry, a real
``celery worker`` (threads pool, 32 threads) ready and idle, a burst of M messages published at once
(one per job, like beat at a minute boundary, each command ``sleep 1``), the whole worker
SIGKILLed a random 0-150 ms later. Then every message is looked for: still queued, in the
``unacked`` hash, in a bridge inflight list, or already claimed in the registry. A message in
none of them is lost for good.

    .venv/bin/python bench/delivery_window.py [--rounds 8] [--messages 150]
"""

from __future__ import annotations

import argparse
import getpass
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.celery_app import make_app  # noqa: E402
from bridge.core.authority import Owner  # noqa: E402
from bridge.core.config import Settings  # noqa: E402
from bridge.core.spec import CommandHandler, Dialect, JobSpec, ScheduleSpec  # noqa: E402
from bridge.store.db import Registry  # noqa: E402
from bridge.store.models import ClaimRow  # noqa: E402
from bridge.store.repos import AuthorityRepo, JobRepo  # noqa: E402

CELERY = str(Path(sys.executable).with_name("celery"))
KOMBU_APP = "bench.delivery_window_kombu_app"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_round(transport: str, messages: int, tmp: Path) -> dict[str, int]:
    port = free_port()
    server = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port",
                               str(port), "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    r = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            r.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    db = f"sqlite:///{tmp / 'registry.db'}"
    registry = Registry(db)
    with registry.session() as s:
        for i in range(messages):
            JobRepo(s).upsert(JobSpec(
                id=f"j{i}", schedule=ScheduleSpec(dialect=Dialect.VIXIE, expression="* * * * *"),
                handler=CommandHandler(command="sleep 1", user=getpass.getuser())))
            AuthorityRepo(s).append(f"j{i}", Owner.CELERY, effective_slot=None, actor="bench",
                                    reason="bench")
    env = {**os.environ, "BRIDGE_REDIS_URL": url, "BRIDGE_DATABASE_URL": db,
           "BRIDGE_HEALTH_INTERVAL": "3600", "PYTHONPATH": str(ROOT)}
    app = KOMBU_APP if transport == "kombu" else "legacy_wrappers.tasks"
    log = (tmp / "worker.log").open("wb")
    worker = subprocess.Popen([CELERY, "-A", app, "worker", "-P", "threads", "-c", "32", "-Q",
                               "bridge", "--without-gossip", "--without-mingle", "-l", "INFO"],
                              env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    while b"ready." not in (tmp / "worker.log").read_bytes():
        time.sleep(0.1)
    time.sleep(1)
    client = make_app(Settings(redis_url=url, database_url=db))
    slot = datetime.now(UTC).replace(second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    with client.producer_or_acquire() as producer:
        for i in range(messages):
            client.send_task("bridge.run_job", args=[f"j{i}", slot], queue="bridge",
                             producer=producer)
    time.sleep(random.uniform(0, 0.15))
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    time.sleep(0.5)
    queued = int(r.llen("bridge"))
    unacked = int(r.hlen("unacked"))
    inflight = sum(int(r.llen(k)) for k in r.scan_iter("_bridge.inflight.*")
                   if k != b"_bridge.inflight.index")
    with registry.session() as s:
        claimed = s.query(ClaimRow).count()
    client.close()
    registry.dispose()
    r.close()
    server.kill()
    server.wait()
    log.close()
    # a claimed message is also in unacked (acks_late): count each message once
    accounted = queued + unacked + inflight
    lost = max(0, messages - accounted)
    return {"queued": queued, "unacked": unacked, "inflight": inflight, "claimed": claimed,
            "lost": lost}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--messages", type=int, default=150)
    args = parser.parse_args()
    for transport in ("kombu", "bridge"):
        lost_total, rounds_with_loss = 0, 0
        for n in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                result = one_round(transport, args.messages, Path(tmp))
            lost_total += result["lost"]
            rounds_with_loss += result["lost"] > 0
            print(f"{transport:6} round {n + 1}: {result}", flush=True)
        print(f"{transport:6}: {lost_total} message(s) lost in {rounds_with_loss} of "
              f"{args.rounds} kills ({args.messages} per burst)", flush=True)


if __name__ == "__main__":
    main()
