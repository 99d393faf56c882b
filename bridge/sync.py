"""Make RedBeat match the registry (SQL is the source of truth; Redis is a runtime index)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import redis

from bridge import prefix_owner, redis_conn
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
    take_over: bool = False,
) -> SyncReport:
    """``known``: specs the caller just wrote (spares decoding them again).

    Refused (:class:`bridge.prefix_owner.PrefixOwnedError`) when another registry holds the
    RedBeat prefix, unless ``take_over``."""
    with registry.session() as s:
        jobs = JobRepo(s).list(known=known)
        watermarks = RunRepo(s).celery_watermarks()
    client = redis_conn.client(settings)
    store = EntryStore(client, settings.redbeat_key_prefix)
    me = registry_owner(registry)
    try:
        if apply:
            prefix_owner.claim(client, settings.redbeat_key_prefix, me, take_over=take_over)
        elif not take_over:
            prefix_owner.check(client, settings.redbeat_key_prefix, me)
        return store.sync(desired_from(jobs, watermarks), now or datetime.now(UTC), apply=apply)
    except (redis.RedisError, OSError) as e:
        raise redis_conn.unreachable(settings.redis_url, e) from e


def registry_owner(registry: Registry) -> prefix_owner.PrefixOwner:
    return prefix_owner.PrefixOwner(registry.identity(), registry.masked_url)


def check_prefix(registry: Registry, settings: Settings) -> None:
    """Refuse early (before an import touches SQL) when another registry holds the prefix.

    An unreachable Redis is not decided here: the import's own sync reports it afterwards."""
    try:
        client = redis_conn.client(settings)
        prefix_owner.check(client, settings.redbeat_key_prefix, registry_owner(registry))
    except (redis.RedisError, OSError):
        return
