"""Real processes for the chaos tests: a registry, a Celery client, real ``celery worker`` /
``celery beat`` subprocesses (each in its own session so a test can SIGKILL / SIGSTOP it whole)
and the side-effect file every job appends ``<job> <slot>`` to (see ``sidefx.py``)."""

from __future__ import annotations

import getpass
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from celery import Celery

from bridge.celery_app import make_app
from bridge.core.authority import Owner
from bridge.core.config import Settings
from bridge.core.spec import (
    CallableHandler,
    CommandHandler,
    Dialect,
    JobSpec,
    Policies,
    ScheduleSpec,
)
from bridge.store.db import Registry
from bridge.store.models import RunRow
from bridge.store.repos import AuthorityRepo, JobRepo
from tests.support.procs import Proc, Procs
from tests.support.services import broker_idle

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "{bridge}:"
CHAOS_APP = "tests.chaos.chaos_app"


def parse_slot(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def slot_text(slot: datetime) -> str:
    return slot.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def contiguous(slots: list[datetime], step: timedelta = timedelta(seconds=1)) -> list[datetime]:
    """The slots missing between the first and the last (empty when contiguous)."""
    if not slots:
        return []
    have, gaps, t = set(slots), [], min(slots)
    while t < max(slots):
        if t not in have:
            gaps.append(t)
        t += step
    return gaps


class Chaos:
    def __init__(self, tmp: Path, redis_url: str, db_url: str | None = None) -> None:
        self.tmp = tmp
        self.redis_url = redis_url
        self.db_url = db_url or f"sqlite:///{tmp / 'registry.db'}"
        self.registry = Registry(self.db_url)
        self.record = tmp / "effects.txt"
        self.client: Celery = make_app(Settings(redis_url=redis_url, database_url=self.db_url))
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        env.update(
            BRIDGE_REDIS_URL=redis_url, BRIDGE_DATABASE_URL=self.db_url,
            BRIDGE_REDBEAT_LOCK_TIMEOUT="3", BRIDGE_WORKER_SHUTDOWN_GRACE="2",
            BRIDGE_VISIBILITY_TIMEOUT="3600", BRIDGE_HEALTH_INTERVAL="3600",
            XDG_DATA_HOME=str(tmp / "xdg-data"), XDG_CONFIG_HOME=str(tmp / "xdg-config"),
            PYTHONPATH=str(ROOT), RECORDING_FILE=str(self.record), TZ="UTC",
        )
        self.env = env
        self.processes = Procs(tmp, env)

    # --- registry -------------------------------------------------------------------------------

    def add_job(self, job_id: str, expression: str = "* * * * * ?", *, dialect: str = "quartz",
                timezone: str = "UTC", owner: Owner | None = Owner.CELERY, delay: float = 0.0,
                hold: float = 0.0,
                start: datetime | None = None, end: datetime | None = None,
                **policies: Any) -> JobSpec:
        spec = JobSpec(
            id=job_id,
            schedule=ScheduleSpec(dialect=Dialect(dialect), expression=expression,
                                  timezone=timezone, start=start, end=end),
            handler=CallableHandler(target="tests.chaos.sidefx:append",
                                    kwargs=(("path", str(self.record)), ("delay", delay),
                                            ("hold", hold))),
            policies=Policies(**policies),
        )
        with self.registry.session() as s:
            JobRepo(s).upsert(spec)
            if owner is not None:
                AuthorityRepo(s).append(job_id, owner, effective_slot=None, actor="chaos",
                                        reason="chaos test")
        return spec

    def add_command_job(self, job_id: str, command: str, expression: str = "0 * * * *") -> None:
        """A Celery-owned vixie job running ``command`` as the current user."""
        spec = JobSpec(id=job_id, schedule=ScheduleSpec(dialect=Dialect.VIXIE,
                                                        expression=expression),
                       handler=CommandHandler(command=command, user=getpass.getuser()))
        with self.registry.session() as s:
            JobRepo(s).upsert(spec)
            AuthorityRepo(s).append(job_id, Owner.CELERY, effective_slot=None, actor="chaos",
                                    reason="chaos test")

    def runs(self, job_id: str | None = None) -> list[RunRow]:
        with self.registry.session() as s:
            q = s.query(RunRow)
            if job_id is not None:
                q = q.filter(RunRow.job_id == job_id)
            return list(q.order_by(RunRow.id))

    # --- processes ------------------------------------------------------------------------------

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        return self.processes.spawn(name, argv, env)

    @property
    def procs(self) -> list[Proc]:
        return self.processes.all

    def worker(self, concurrency: int = 2, app: str = "legacy_wrappers.tasks",
               env: dict[str, str] | None = None, wait: bool = True,
               queues: str = "bridge") -> Proc:
        return self.processes.celery_worker(app, concurrency=concurrency, queues=queues, env=env,
                                            wait=wait, timeout=60)

    def beat(self, env: dict[str, str] | None = None, prefix: list[str] | None = None,
             app: str = "bridge.celery_app") -> Proc:
        return self.processes.celery_beat(app, env=env, prefix=prefix)

    def close(self) -> None:
        self.processes.close()
        self.client.close()
        self.registry.dispose()

    def tail_logs(self, lines: int = 30) -> str:
        return self.processes.tail_logs(lines)

    # --- side effects ---------------------------------------------------------------------------

    def effects(self) -> list[tuple[str, datetime]]:
        if not self.record.exists():
            return []
        out = []
        for line in self.record.read_text().splitlines():
            if line.strip():
                job_id, slot = line.split()
                out.append((job_id, parse_slot(slot)))
        return out

    def slots_of(self, job_id: str) -> list[datetime]:
        return sorted(s for j, s in self.effects() if j == job_id)

    def duplicates(self) -> dict[tuple[str, datetime], int]:
        return {k: n for k, n in Counter(self.effects()).items() if n > 1}

    def queue_empty(self) -> bool:
        import redis

        r = redis.Redis.from_url(self.redis_url)
        try:
            return int(r.llen("bridge")) == 0
        finally:
            r.close()

    def broker_idle(self) -> bool:
        return broker_idle(self.redis_url)
