"""Repositories: the only code that reads and writes registry rows.

Each takes an open :class:`sqlalchemy.orm.Session` (the caller owns the transaction, so an
import of many jobs is one atomic commit) and speaks in domain values (:class:`JobSpec`, ...).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bridge.core.audit import AuditEntry
from bridge.core.authority import AuthorityEvent, Owner
from bridge.core.errors import NotFoundError, SpecError
from bridge.core.jobs import SourceOwner, StoredJob
from bridge.core.spec import SPEC_VERSION, JobSpec
from bridge.store.models import (
    AuditRow,
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


def _hinted(row: Any, hints: Mapping[str, JobSpec]) -> JobSpec | None:
    hint = hints.get(row.spec_hash)
    return hint if hint is not None and hint.id == row.id else None


def _row_values(spec: JobSpec, now: datetime) -> dict[str, Any]:
    return {
        "id": spec.id,
        "source_file": spec.source.file,
        "source_line": spec.source.line,
        "source_kind": spec.source.kind.value,
        "host": spec.host,
        "dialect": spec.schedule.dialect.value,
        "spec": spec.canonical_json(),
        "spec_version": SPEC_VERSION,
        "spec_hash": spec.spec_hash(),
        "mapped": spec.mapped,
        "updated_at": now,
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


WRITE_CHUNK = 2000  # rows per executemany on the bulk import path


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
        """Jobs in id order. ``known``: specs the caller already holds; a row whose hash equals
        one of theirs is not read nor decoded again (the hash covers the whole spec).
        ``source_file`` / ``host``: only the jobs of that file / that host."""
        columns = (
            JobRow.id,
            JobRow.spec_hash,
            JobRow.paused,
            JobRow.paused_reason,
            JobRow.created_at,
            JobRow.updated_at,
        )
        hints = {spec.spec_hash(): spec for spec in known}
        live = JobRow.deleted_at.is_(None)
        if not hints:
            full = select(JobRow.spec, *columns).where(live).order_by(JobRow.id)
            return [_stored(r) for r in self.s.execute(_narrowed(full, source_file, host))]
        light = _narrowed(select(*columns).where(live).order_by(JobRow.id), source_file, host)
        rows = list(self.s.execute(light))
        missing = [r.id for r in rows if _hinted(r, hints) is None]
        texts: dict[str, str] = {}
        for i in range(0, len(missing), 500):
            chunk = select(JobRow.id, JobRow.spec).where(JobRow.id.in_(missing[i : i + 500]))
            texts.update((r.id, r.spec) for r in self.s.execute(chunk))
        out = []
        for r in rows:
            spec = _hinted(r, hints)
            out.append(
                StoredJob(
                    spec=spec if spec is not None else _decode(texts[r.id]),
                    spec_hash=r.spec_hash,
                    paused=r.paused,
                    paused_reason=r.paused_reason,
                    created_at=r.created_at,
                    updated_at=r.updated_at,
                )
            )
        return out

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
        # Core executemany in chunks (no ORM bulk machinery, and only one chunk of row dicts
        # alive at a time): the import path stays linear and bounded at 100k jobs.
        conn = self.s.connection()
        table = JobRow.__table__
        for i in range(0, len(specs), WRITE_CHUNK):
            inserts, updates = [], []
            for spec in specs[i : i + WRITE_CHUNK]:
                values = _row_values(spec, now)
                if spec.host is not None or host is not None:
                    values["source_host"] = spec.host or host
                if spec.id not in deleted:
                    inserts.append({**values, "created_at": now, "paused": False})
                else:
                    revived = {"created_at": now} if deleted[spec.id] is not None else {}
                    updates.append({**values, **revived, "deleted_at": None})
            if inserts:
                conn.execute(table.insert(), inserts)  # type: ignore[attr-defined]
            if updates:
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
        have = set(self.histories(ids)) if ids else set()
        now = utcnow()
        rows = [
            {
                "job_id": j,
                "effective_slot": None,
                "owner": Owner.LEGACY.value,
                "actor": actor,
                "reason": reason,
                "forced": False,
                "at": now,
                "job_host": (hosts or {}).get(j),
            }
            for j in ids
            if j not in have
        ]
        table = AuthorityEventRow.__table__
        for i in range(0, len(rows), WRITE_CHUNK):
            self.s.connection().execute(table.insert(), rows[i : i + WRITE_CHUNK])  # type: ignore[attr-defined]

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


class AuditRepo:
    """Append-only by construction: there is no update or delete here."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def append(
        self,
        action: str,
        *,
        actor: str,
        job_id: str | None = None,
        reason: str | None = None,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> None:
        self.s.add(
            AuditRow(
                at=utcnow(),
                actor=actor,
                action=action,
                job_id=job_id,
                reason=reason,
                before=before,
                after=after,
            )
        )

    def names_task(self, job_id: str, task_id: str, actions: Sequence[str]) -> bool:
        """Whether one of the job's latest 500 records of ``actions`` names ``task_id``
        (``after.task_id``: a trigger, backfill or repair published that message)."""
        rows: Any = self.s.scalars(
            select(AuditRow).where(AuditRow.job_id == job_id, AuditRow.action.in_(actions))
            .order_by(AuditRow.id.desc()).limit(500)
        )
        return any((row.after or {}).get("task_id") == task_id for row in rows)

    def append_many(self, records: Iterable[dict[str, Any]], *, actor: str) -> None:
        """Many records at once; each dict has action, job_id, reason, before, after. Consumed
        a chunk at a time (a generator keeps only one chunk of records alive)."""
        now = utcnow()
        table = AuditRow.__table__
        it = iter(records)
        while rows := [{"at": now, "actor": actor, **r} for r in islice(it, WRITE_CHUNK)]:
            self.s.connection().execute(table.insert(), rows)  # type: ignore[attr-defined]

    def query(
        self,
        *,
        job_id: str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
        host: str | None = None,
    ) -> Sequence[AuditEntry]:
        q = select(AuditRow).order_by(AuditRow.id)
        if job_id is not None:
            q = q.where(AuditRow.job_id == job_id)
        if host is not None:
            q = q.where(AuditRow.job_host == host)
        if since is not None:
            q = q.where(AuditRow.at >= since)
        rows = list(self.s.scalars(q.limit(limit)))
        return [
            AuditEntry(r.id, r.at, r.actor, r.action, r.job_id, r.reason, r.before, r.after,
                       r.job_host)
            for r in rows
        ]
