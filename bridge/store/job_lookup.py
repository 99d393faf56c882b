"""What a worker reads about a job for each message: the stored job and its authority history.

One prebuilt statement (the job joined to its events), and each stored spec decoded once per
process and ``spec_hash`` (a job whose spec changes gets a new hash, so a cached decode is
never stale). Speaks domain values: :class:`~bridge.core.jobs.StoredJob`,
:class:`~bridge.core.authority.AuthorityEvent`.
"""

from __future__ import annotations

import json
import threading
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.exc import OperationalError

from bridge.core.authority import AuthorityEvent, Owner
from bridge.core.errors import SpecError
from bridge.core.jobs import StoredJob
from bridge.core.spec import JobSpec
from bridge.store.db import Registry, unreachable
from bridge.store.models import AuthorityEventRow, JobRow

JOBS = cast(Table, JobRow.__table__)
EVENTS = cast(Table, AuthorityEventRow.__table__)
# the job's row once per authority event (or once, with no event), events in order
JOB_AND_HISTORY = (
    select(JOBS.c.id, JOBS.c.spec, JOBS.c.spec_hash, JOBS.c.paused, JOBS.c.paused_reason,
           JOBS.c.created_at, JOBS.c.updated_at, EVENTS.c.id.label("event_id"),
           EVENTS.c.effective_slot, EVENTS.c.owner, EVENTS.c.actor, EVENTS.c.reason,
           EVENTS.c.forced, EVENTS.c.at)
    .select_from(JOBS.outerjoin(EVENTS, EVENTS.c.job_id == JOBS.c.id))
    .where(JOBS.c.id == bindparam("id_"), JOBS.c.deleted_at.is_(None))
    .order_by(EVENTS.c.id)
)
CACHED_SPECS = 10_000  # decoded specs kept per process (then the cache starts over)


class JobLookup:
    """Reads jobs for one worker process (thread-safe)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.specs: dict[tuple[str, str], JobSpec] = {}
        self.lock = threading.Lock()

    def read(self, job_id: str) -> tuple[StoredJob | None, list[AuthorityEvent]]:
        """The job (None: unknown or deleted) and, for a known job, its authority history."""
        try:
            with self.registry.engine.begin() as conn:
                rows = conn.execute(JOB_AND_HISTORY, {"id_": job_id}).all()
        except OperationalError as e:
            raise unreachable(self.registry.url, e) from e
        if not rows:
            return None, []
        row = rows[0]
        job = StoredJob(spec=self.spec(row), spec_hash=row.spec_hash, paused=row.paused,
                        paused_reason=row.paused_reason, created_at=row.created_at,
                        updated_at=row.updated_at)
        return job, [event_of(r) for r in rows if r.event_id is not None]

    def spec(self, row: Any) -> JobSpec:
        key = (row.id, row.spec_hash)
        spec = self.specs.get(key)
        if spec is None:
            try:
                spec = JobSpec.from_json(json.loads(row.spec))
            except ValueError as e:
                raise SpecError(f"stored job spec is not valid JSON: {e}") from e
            with self.lock:
                if len(self.specs) >= CACHED_SPECS:
                    self.specs.clear()
                self.specs[key] = spec
        return spec


def event_of(row: Any) -> AuthorityEvent:
    return AuthorityEvent(job_id=row.id, effective_slot=row.effective_slot,
                          owner=Owner(row.owner), actor=row.actor, reason=row.reason,
                          forced=row.forced, at=row.at)
