"""Real services for the ops tests: a registry (SQLite file), a Celery client on the private
Redis, and real worker subprocesses (own session, so a test can SIGKILL the whole worker)."""

from __future__ import annotations

import base64
import getpass
import json
import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery import Celery

from bridge.celery_app import make_app
from bridge.core.authority import Owner
from bridge.core.config import Settings
from bridge.core.spec import CommandHandler, Dialect, JobSpec, Policies, ScheduleSpec
from bridge.store.db import Registry
from bridge.store.models import RunRow
from bridge.store.repos import AuthorityRepo, JobRepo
from bridge.store.runs import RunRepo
from tests.support import wait_for

CELERY = str(Path(sys.executable).with_name("celery"))


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def top_of_hour(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return now.replace(minute=0, second=0, microsecond=0)


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path

    def kill_all(self) -> None:
        """SIGKILL the worker's whole process group (MainProcess and pool children)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)

    def wait_task_events(self) -> None:
        """Until a monitor (Flower's ``enable_events`` broadcast, every 5 s) has switched this
        worker's task events on: they are off by default (``BRIDGE_TASK_EVENTS``)."""
        wait_for("task events switched on by Flower",
                 lambda: "Events of group {task} enabled by remote" in self.log.read_text(), 30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill_all()


class OpsHarness:
    def __init__(self, tmp: Path, redis_url: str) -> None:
        self.tmp = tmp
        self.db_url = f"sqlite:///{tmp / 'registry.db'}"
        self.redis_url = redis_url
        self.registry = Registry(self.db_url)
        self.settings = Settings(redis_url=redis_url, database_url=self.db_url)
        self.client: Celery = make_app(self.settings)
        self.workers: list[Worker] = []
        self.env = {"BRIDGE_REDIS_URL": redis_url, "BRIDGE_DATABASE_URL": self.db_url}

    def add_job(self, job_id: str, command: str, *, expression: str = "0 * * * *",
                owner: Owner = Owner.CELERY, **policies: Any) -> None:
        spec = JobSpec(id=job_id, schedule=ScheduleSpec(dialect=Dialect.VIXIE,
                                                        expression=expression),
                       handler=CommandHandler(command=command, user=getpass.getuser()),
                       policies=Policies(**policies))
        with self.registry.session() as s:
            JobRepo(s).upsert(spec)
            AuthorityRepo(s).append(job_id, owner, effective_slot=None, actor="test",
                                    reason="ops test")

    def start_worker(self, *extra_env: tuple[str, str], app: str = "legacy_wrappers.tasks",
                     include: str | None = None) -> Worker:
        n = len(self.workers)
        log = self.tmp / f"worker{n}.log"
        env = {**os.environ, **self.env, "BRIDGE_WORKER_SHUTDOWN_GRACE": "2",
               "BRIDGE_VISIBILITY_TIMEOUT": "3600", **dict(extra_env)}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [CELERY, "-A", app, "worker", "-P", "prefork", "-c", "1", "-Q", "bridge",
                 "-n", f"ops{n}-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
                 "-l", "INFO", *(["--include", include] if include else [])],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.tmp,
                start_new_session=True,
            )
        worker = Worker(proc, log)
        self.workers.append(worker)
        wait_for("the worker to be ready", lambda: "ready." in log.read_text(), 60)
        return worker

    def runs(self, job_id: str) -> list[RunRow]:
        with self.registry.session() as s:
            return RunRepo(s).for_job(job_id)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.client.close()
        self.registry.dispose()


FLOWER_AUTH = "ops:s3cret"


def flower_tasks(port: int, query: str, auth: str = FLOWER_AUTH) -> dict[str, Any]:
    """Flower's ``/api/tasks?QUERY`` with basic auth (``search=…``, ``state=…``)."""
    token = base64.b64encode(auth.encode()).decode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/tasks?{query}",
                                     headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


def flower_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False
