"""Make RedBeat match the registry (SQL is the source of truth; Redis is a runtime index)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import redis

from bridge import redis_conn
from bridge.config import Settings
from bridge.redbeat import EntryStore, SyncReport, desired_from
from bridge.spec import JobSpec
from bridge.store.db import Registry
from bridge.store.repos import JobRepo, RunRepo


def sync_registry(
    registry: Registry,
    settings: Settings,
    *,
    apply: bool = True,
    now: datetime | None = None,
    known: Iterable[JobSpec] = (),
) -> SyncReport:
    """``known``: specs the caller just wrote (spares decoding them again)."""
    with registry.session() as s:
        jobs = JobRepo(s).list(known=known)
        watermarks = RunRepo(s).celery_watermarks()
    store = EntryStore(redis_conn.client(settings), settings.redbeat_key_prefix)
    try:
        return store.sync(desired_from(jobs, watermarks), now or datetime.now(UTC), apply=apply)
    except (redis.RedisError, OSError) as e:
        raise redis_conn.unreachable(settings.redis_url, e) from e
