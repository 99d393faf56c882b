"""Repositories: the only code that reads and writes registry rows.

Each takes an open :class:`sqlalchemy.orm.Session` (the caller owns the transaction, so an
import of many jobs is one atomic commit) and speaks in domain values (:class:`JobSpec`, ...).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bridge.core.authority import AuthorityEvent, Owner
from bridge.core.errors import NotFoundError, SpecError
from bridge.core.jobs import SourceOwner, StoredJob
from bridge.core.spec import SPEC_VERSION, JobSpec
from bridge.store.bulk import WRITE_CHUNK, insert_many
from bridge.store.models import (
    AuthorityEventRow,
    JobRow,
    utcnow,
)


def _stored(row: Any, known: Mapping[str, JobSpec] | None = None) -> StoredJob:
    hint = known.get(row.spec_hash) if known else None
    return StoredJob(
        spec=hint if hint is not None and hint.id == row.id else _decode(row.spec),
        spec_hash=row.spec_hash,
        paused=row.paused,
        paused_reason=row.paused_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class ScheduledJob(NamedTuple):
    """A live job as RedBeat needs it."""

    spec: JobSpec
    spec_hash: str
    paused: bool


def _hinted(hints: Mapping[str, JobSpec], job_id: str, digest: str) -> JobSpec | None:
    hint = hints.get(digest)
    return hint if hint is not None and hint.id == job_id else None


def _spec_values(spec: JobSpec, importer: str | None) -> dict[str, Any]:
    """The columns of a job row that come from its spec (``importer``: the importing host, the
    owner of a job that names no host of its own)."""
    return {
        "id": spec.id,
        "source_host": spec.host or importer,
        "source_file": spec.source.file,
        "source_line": spec.source.line,
        "source_kind": spec.source.kind.value,
        "host": spec.host,
        "dialect": spec.schedule.dialect.value,
        "spec": spec.canonical_json(),
        "spec_hash": spec.spec_hash(),
        "mapped": spec.mapped,
    }


def _narrowed(query: Any, source_file: str | None, host: str | None) -> Any:
    if source_file is not None:
        query = query.where(JobRow.source_file == source_file)
    if host is not None:
        query = query.where(JobRow.host == host)
    return query


def _decode(text: str) -> JobSpec:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise SpecError(f"stored job spec is not valid JSON: {e}") from e
    return JobSpec.from_json(data)




class JobRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    def get(self, job_id: str) -> StoredJob | None:
        row = self.s.get(JobRow, job_id)
        return _stored(row) if row is not None and row.deleted_at is None else None

    def require(self, job_id: str) -> StoredJob:
        job = self.get(job_id)
        if job is None:
            raise NotFoundError(f"no job '{job_id}' in the registry", hint="see `bridge jobs list`")
        return job

    def list(
        self,
        *,
        source_file: str | None = None,
        known: Iterable[JobSpec] = (),
        host: str | None = None,
    ) -> list[StoredJob]:
        """Jobs in id order (see :meth:`each`); ``host``: only that host's jobs."""
        return list(self.each(source_file=source_file, known=known, host=host))

    def each(
        self,
        *,
        source_file: str | None = None,
        known: Iterable[JobSpec] = (),
        host: str | None = None,
    ) -> Iterator[StoredJob]:
        """Jobs in id order, read a partition of rows at a time (the session stays open while
        they are consumed). ``known``: specs the caller already holds; a row whose hash equals
        one of theirs is not read nor decoded again (the hash covers the whole spec)."""
        extra = (JobRow.paused_reason, JobRow.created_at, JobRow.updated_at)
        for spec, digest, paused, (reason, created, updated) in self._specs(
            extra, source_file, known, host
        ):
            yield StoredJob(spec, digest, paused, reason, created, updated)

    def scheduled(self, *, known: Iterable[JobSpec] = ()) -> Iterator[ScheduledJob]:
        """What RedBeat needs of every live job (spec, hash, paused), as :meth:`each` reads
        them, without the columns it does not need."""
        for spec, digest, paused, _ in self._specs((), None, known, None):
            yield ScheduledJob(spec, digest, paused)

    def _specs(
        self,
        extra: Sequence[Any],
        source_file: str | None,
        known: Iterable[JobSpec],
        host: str | None,
    ) -> Iterator[tuple[JobSpec, str, bool, tuple[Any, ...]]]:
        """(spec, hash, paused, the ``extra`` columns) of live jobs in id order."""
        hints = {spec.spec_hash(): spec for spec in known}
        columns = (JobRow.id, JobRow.spec_hash, JobRow.paused, *extra)
        query = select(*columns, *(() if hints else (JobRow.spec,)))
        query = _narrowed(query.where(JobRow.deleted_at.is_(None)), source_file, host)
        result = self.s.execute(query.order_by(JobRow.id).execution_options(yield_per=1000))
        n = len(extra)
        for part in result.partitions():
            if not hints:
                for _id, digest, paused, *rest in part:
                    yield _decode(rest[n]), digest, paused, tuple(rest[:n])
                continue
            specs = [_hinted(hints, job_id, digest) for job_id, digest, *_ in part]
            missing = [r[0] for h, r in zip(specs, part, strict=True) if h is None]
            texts: dict[str, str] = {}
            for i in range(0, len(missing), 500):
                chunk = select(JobRow.id, JobRow.spec).where(JobRow.id.in_(missing[i : i + 500]))
                texts.update((job_id, text) for job_id, text in self.s.execute(chunk))
            for spec, (job_id, digest, paused, *rest) in zip(specs, part, strict=True):
                found = spec if spec is not None else _decode(texts[job_id])
                yield found, digest, paused, tuple(rest)

    def ids_from_source(self, source_file: str) -> set[str]:
        query = select(JobRow.id).where(
            JobRow.deleted_at.is_(None), JobRow.source_file == source_file
        )
        return set(self.s.scalars(query))

    def owners(self) -> dict[str, SourceOwner]:
        """Every live job's owning source: (host, file, kind); host None for rows imported
        before the registry recorded hosts (they match any host)."""
        query = select(
            JobRow.id, JobRow.source_host, JobRow.source_file, JobRow.source_kind
        ).where(JobRow.deleted_at.is_(None))
        return {
            r.id: SourceOwner(r.source_host, r.source_file, r.source_kind)
            for r in self.s.execute(query)
        }

    def count(self) -> int:
        query = select(func.count()).select_from(JobRow).where(JobRow.deleted_at.is_(None))
        return int(self.s.scalar(query) or 0)

    def upsert(self, spec: JobSpec) -> tuple[str, StoredJob | None]:
        """Create or update; returns ("create"|"update"|"unchanged", previous)."""
        row = self.s.get(JobRow, spec.id)
        previous = _stored(row) if row is not None and row.deleted_at is None else None
        digest = spec.spec_hash()
        now = utcnow()
        if row is None:
            row = JobRow(id=spec.id, created_at=now)
            self.s.add(row)
        elif previous is not None and row.spec_hash == digest:
            return "unchanged", previous
        row.source_file = spec.source.file
        row.source_line = spec.source.line
        row.source_kind = spec.source.kind.value
        row.host = spec.host
        if spec.host is not None:
            row.source_host = spec.host
        row.dialect = spec.schedule.dialect.value
        row.spec = spec.canonical_json()
        row.spec_version = SPEC_VERSION
        row.spec_hash = digest
        row.mapped = spec.mapped
        row.updated_at = now
        if row.deleted_at is not None:
            row.deleted_at = None
            row.created_at = now
            previous = None
        self.s.flush()
        return ("update" if previous else "create"), previous

    def write_many(self, specs: Sequence[JobSpec], *, host: str | None = None) -> None:
        """Create, update or revive many jobs in bulk (one SELECT per 500 ids, then one
        INSERT and one UPDATE executemany) — the import path for thousands of lines.
        ``host``: the importing machine, recorded as part of each job's owning source unless
        the job names its own host (``spec.host``: a crontab line's host)."""
        now = utcnow()
        deleted: dict[str, datetime | None] = {}
        ids = [spec.id for spec in specs]
        for i in range(0, len(ids), 500):
            query = select(JobRow.id, JobRow.deleted_at).where(JobRow.id.in_(ids[i : i + 500]))
            deleted.update({row.id: row.deleted_at for row in self.s.execute(query)})
        # Executemany in chunks (no ORM bulk machinery, and only one chunk of row values alive
        # at a time): the import path stays linear and bounded at 100k jobs.
        common: dict[str, Any] = {"spec_version": SPEC_VERSION, "updated_at": now}
        insert_many(
            self.s.connection(),
            JobRow.__table__,
            (_spec_values(spec, host) for spec in specs if spec.id not in deleted),
            {**common, "created_at": now, "paused": False},
        )
        revived = [spec for spec in specs if spec.id in deleted]
        for i in range(0, len(revived), WRITE_CHUNK):
            updates = []
            for spec in revived[i : i + WRITE_CHUNK]:
                created = {"created_at": now} if deleted[spec.id] is not None else {}
                values = _spec_values(spec, host)
                updates.append({**values, **common, **created, "deleted_at": None})
            self.s.execute(update(JobRow), updates)

    def delete_many(self, job_ids: Sequence[str]) -> None:
        now = utcnow()
        if job_ids:
            self.s.execute(update(JobRow), [{"id": j, "deleted_at": now} for j in job_ids])

    def delete(self, job_id: str) -> None:
        """Soft delete: the job's runs and audit history stay."""
        row = self.s.get(JobRow, job_id)
        if row is None or row.deleted_at is not None:
            raise NotFoundError(f"no job '{job_id}' in the registry")
        row.deleted_at = utcnow()

    def set_paused(self, job_id: str, paused: bool, reason: str | None) -> None:
        row = self.s.get(JobRow, job_id)
        if row is None or row.deleted_at is not None:
            raise NotFoundError(f"no job '{job_id}' in the registry")
        row.paused = paused
        row.paused_reason = reason if paused else None


class AuthorityRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    def history(self, job_id: str) -> list[AuthorityEvent]:
        rows = self.s.scalars(
            select(AuthorityEventRow)
            .where(AuthorityEventRow.job_id == job_id)
            .order_by(AuthorityEventRow.id)
        )
        return [_event(r) for r in rows]

    def histories(self, job_ids: Iterable[str] | None = None) -> dict[str, list[AuthorityEvent]]:
        query = select(AuthorityEventRow).order_by(AuthorityEventRow.id)
        if job_ids is not None:
            query = query.where(AuthorityEventRow.job_id.in_(list(job_ids)))
        out: dict[str, list[AuthorityEvent]] = {}
        for row in self.s.scalars(query):
            out.setdefault(row.job_id, []).append(_event(row))
        return out

    def start_legacy(
        self,
        job_ids: Iterable[str],
        *,
        actor: str,
        reason: str,
        hosts: Mapping[str, str | None] | None = None,
    ) -> None:
        """The first event of jobs without history: legacy owns every slot (bulk).
        ``hosts``: each job's host, when the caller knows it (else the registry fills it)."""
        ids = list(job_ids)
        have: set[str] = set()
        for i in range(0, len(ids), 500):  # bounded IN lists (PostgreSQL takes 65535 params)
            query = select(AuthorityEventRow.job_id).where(
                AuthorityEventRow.job_id.in_(ids[i : i + 500])
            )
            have.update(self.s.scalars(query.distinct()))
        constants = {
            "effective_slot": None,
            "owner": Owner.LEGACY.value,
            "actor": actor,
            "reason": reason,
            "forced": False,
            "at": utcnow(),
        }
        known_hosts = hosts or {}
        rows = ({"job_id": j, "job_host": known_hosts.get(j)} for j in ids if j not in have)
        insert_many(self.s.connection(), AuthorityEventRow.__table__, rows, constants)

    def append(
        self,
        job_id: str,
        owner: Owner,
        *,
        effective_slot: datetime | None,
        actor: str,
        reason: str | None,
        forced: bool = False,
    ) -> AuthorityEvent:
        row = AuthorityEventRow(
            job_id=job_id,
            effective_slot=effective_slot,
            owner=owner.value,
            actor=actor,
            reason=reason,
            forced=forced,
            at=utcnow(),
        )
        self.s.add(row)
        self.s.flush()
        return _event(row)


def _event(row: AuthorityEventRow) -> AuthorityEvent:
    return AuthorityEvent(
        job_id=row.job_id,
        effective_slot=row.effective_slot,
        owner=Owner(row.owner),
        actor=row.actor,
        reason=row.reason,
        forced=row.forced,
        at=row.at,
    )
