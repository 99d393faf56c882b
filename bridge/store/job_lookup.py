"""What a worker reads about a job for each message: the stored job and its authority history.

One statement on the database driver (the job joined to its events;
:mod:`bridge.store.direct`), and each stored spec decoded once per
process and ``spec_hash`` (a job whose spec changes gets a new hash, so a cached decode is
never stale). Speaks domain values: :class:`~bridge.core.jobs.StoredJob`,
:class:`~bridge.core.authority.AuthorityEvent`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

from bridge.core.authority import AuthorityEvent, Owner
from bridge.core.errors import SpecError
from bridge.core.jobs import StoredJob
from bridge.core.spec import JobSpec
from bridge.store.db import Registry
from bridge.store.direct import Statement, read_time

# the job's row once per authority event (or once, with no event), events in order; run on the
# driver (bridge.store.direct): the columns are the models'
JOB_AND_HISTORY = Statement(
    "SELECT jobs.id, jobs.spec, jobs.spec_hash, jobs.paused, jobs.paused_reason, "
    "jobs.created_at, jobs.updated_at, authority_events.id, authority_events.effective_slot, "
    "authority_events.owner, authority_events.actor, authority_events.reason, "
    "authority_events.forced, authority_events.at "
    "FROM jobs LEFT OUTER JOIN authority_events ON authority_events.job_id = jobs.id "
    "WHERE jobs.id = :id AND jobs.deleted_at IS NULL ORDER BY authority_events.id")
CACHED_SPECS = 10_000  # decoded specs kept per process (then the cache starts over)


class JobLookup:
    """Reads jobs for one worker process (thread-safe)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.sql = registry.direct
        self.specs: dict[tuple[str, str], JobSpec] = {}
        self.lock = threading.Lock()

    def read(self, job_id: str) -> tuple[StoredJob | None, list[AuthorityEvent]]:
        """The job (None: unknown or deleted) and, for a known job, its authority history."""
        rows = self.sql.read(lambda c: c.rows(JOB_AND_HISTORY, {"id": job_id}))
        if not rows:
            return None, []
        row = rows[0]
        created, updated = read_time(row[5]), read_time(row[6])
        assert created is not None and updated is not None
        job = StoredJob(spec=self.spec(row[0], row[1], row[2]), spec_hash=row[2],
                        paused=bool(row[3]), paused_reason=row[4], created_at=created,
                        updated_at=updated)
        return job, [event_of(row[0], r) for r in rows if r[7] is not None]

    def prime(self, jobs: Iterable[StoredJob]) -> None:
        """Keep these jobs' decoded specs (a worker's start: its first burst decodes none)."""
        with self.lock:
            for job in jobs:
                if len(self.specs) >= CACHED_SPECS:
                    break
                self.specs[(job.id, job.spec_hash)] = job.spec

    def spec(self, job_id: str, text: str, spec_hash: str) -> JobSpec:
        key = (job_id, spec_hash)
        spec = self.specs.get(key)
        if spec is None:
            try:
                spec = JobSpec.from_json(json.loads(text))
            except ValueError as e:
                raise SpecError(f"stored job spec is not valid JSON: {e}") from e
            with self.lock:
                if len(self.specs) >= CACHED_SPECS:
                    self.specs.clear()
                self.specs[key] = spec
        return spec


def event_of(job_id: str, row: tuple[Any, ...]) -> AuthorityEvent:
    at = read_time(row[13])
    assert at is not None
    return AuthorityEvent(job_id=job_id, effective_slot=read_time(row[8]), owner=Owner(row[9]),
                          actor=row[10], reason=row[11], forced=bool(row[12]), at=at)
