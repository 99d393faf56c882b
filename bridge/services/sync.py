"""Make RedBeat match the registry (SQL is the source of truth; Redis is a runtime index).

An import is all-or-nothing across SQL and RedBeat by being **resumable**: the import commits
its jobs together with a ``sync_pending`` mark in ``registry_meta`` (what was imported, when,
by whom); only a RedBeat sync that completes removes it. A sync that fails or is killed half
way leaves the mark, ``bridge sync --check`` reports it (exit 1) next to the entries that
differ, and ``bridge sync`` (or beat's own rebuild) finishes the job and clears it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import redis

from bridge.adapters import redis_conn
from bridge.adapters.redbeat_entries import EntryStore, SyncReport, desired_from
from bridge.core import prefix_owner
from bridge.core.config import Settings
from bridge.core.errors import InfraError
from bridge.core.spec import JobSpec
from bridge.store import sync_mark
from bridge.store.db import Registry, Session
from bridge.store.fleet import FleetRepo
from bridge.store.repos import JobRepo
from bridge.store.runs import RunRepo


def mark_pending(session: Session, info: Mapping[str, Any]) -> None:
    """Record, in the caller's transaction, that RedBeat must still be synced."""
    sync_mark.mark(session, info)


def pending(registry: Registry) -> dict[str, Any] | None:
    """The import whose RedBeat sync has not completed, if any."""
    with registry.session() as s:
        return sync_mark.read(s)


def _clear_pending(registry: Registry, started: datetime) -> None:
    """A completed sync that began after the mark was written clears it."""
    with registry.session() as s:
        sync_mark.clear_before(s, started)


def sync_registry(
    registry: Registry,
    settings: Settings,
    *,
    apply: bool = True,
    now: datetime | None = None,
    known: Iterable[JobSpec] = (),
    take_over: bool = False,
) -> SyncReport:
    """``known``: specs the caller just wrote (spares decoding them again). Jobs consolidated
    into a fleet group (:mod:`bridge.services.fleet`) get no entry: Celery runs their group.

    Refused (:class:`bridge.core.prefix_owner.PrefixOwnedError`) when another registry holds the
    RedBeat prefix, unless ``take_over``. A completed applying sync clears the ``sync_pending``
    mark of an import (see the module doc)."""
    started = datetime.now(UTC)
    client = redis_conn.client(settings)
    store = EntryStore(client, settings.redbeat_key_prefix)
    me = registry_owner(registry)
    # The registry is read while RedBeat is written, a partition of jobs at a time: however
    # many jobs there are, only one chunk of them is encoded and in flight.
    with registry.session() as s:
        watermarks = RunRepo(s).celery_watermarks()
        consolidated = FleetRepo(s).group_of()  # Celery runs their group job, not them
        jobs = (j for j in JobRepo(s).scheduled(known=known) if j.spec.id not in consolidated)
        try:
            if apply:
                prefix_owner.claim(client, settings.redbeat_key_prefix, me, take_over=take_over)
            elif not take_over:
                prefix_owner.check(client, settings.redbeat_key_prefix, me)
            when = now or datetime.now(UTC)
            report = store.sync(desired_from(jobs, watermarks), when, apply=apply)
        except redis.ResponseError as e:  # reachable, but it refused a write (OOM, READONLY...)
            raise InfraError(
                f"RedBeat sync failed at {redis_conn.mask_url(settings.redis_url)}: {e}",
                url=redis_conn.mask_url(settings.redis_url),
                hint="fix Redis, then run `bridge sync`",
            ) from e
        except (redis.RedisError, OSError) as e:
            raise redis_conn.unreachable(settings.redis_url, e) from e
    if apply:
        _clear_pending(registry, started)
    return report


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
