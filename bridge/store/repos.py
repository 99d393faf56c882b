"""Repositories: the only code that reads and writes registry rows.

Each takes an open :class:`sqlalchemy.orm.Session` (the caller owns the transaction, so an
import of many jobs is one atomic commit) and speaks in domain values (:class:`JobSpec`, ...).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bridge.errors import NotFoundError
from bridge.spec import SPEC_VERSION, JobSpec
from bridge.store.models import (
    AuditRow,
    AuthorityEventRow,
    JobRow,
    RunRow,
    utcnow,
)


class Owner(StrEnum):
    LEGACY = "legacy"
    CELERY = "celery"


def current_actor() -> str:
    """The OS user running this process (``--actor`` overrides it in the CLI)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


@dataclass(frozen=True)
class StoredJob:
    spec: JobSpec
    spec_hash: str
    paused: bool
    paused_reason: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def id(self) -> str:
        return self.spec.id


def _stored(row: JobRow) -> StoredJob:
    return StoredJob(
        spec=JobSpec.from_json(row.spec),
        spec_hash=row.spec_hash,
        paused=row.paused,
        paused_reason=row.paused_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


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

    def list(self, *, source_file: str | None = None) -> list[StoredJob]:
        query = select(JobRow).where(JobRow.deleted_at.is_(None)).order_by(JobRow.id)
        if source_file is not None:
            query = query.where(JobRow.source_file == source_file)
        return [_stored(r) for r in self.s.scalars(query)]

    def ids_from_source(self, source_file: str) -> set[str]:
        query = select(JobRow.id).where(
            JobRow.deleted_at.is_(None), JobRow.source_file == source_file
        )
        return set(self.s.scalars(query))

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
        row.dialect = spec.schedule.dialect.value
        row.spec = spec.to_json()
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


@dataclass(frozen=True)
class AuthorityEvent:
    job_id: str
    effective_slot: datetime | None  # None = from the beginning of time
    owner: Owner
    actor: str
    reason: str | None
    forced: bool
    at: datetime


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


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    job_id: str | None
    reason: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "job_id": self.job_id,
            "reason": self.reason,
            "before": self.before,
            "after": self.after,
        }


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

    def query(
        self, *, job_id: str | None = None, since: datetime | None = None, limit: int = 1000
    ) -> Sequence[AuditEntry]:
        q = select(AuditRow).order_by(AuditRow.id)
        if job_id is not None:
            q = q.where(AuditRow.job_id == job_id)
        if since is not None:
            q = q.where(AuditRow.at >= since)
        rows = list(self.s.scalars(q.limit(limit)))
        return [
            AuditEntry(r.id, r.at, r.actor, r.action, r.job_id, r.reason, r.before, r.after)
            for r in rows
        ]


class RunRepo:
    """Observations of either path (``shadow.record`` builds on this)."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def add(self, **fields: Any) -> RunRow:
        row = RunRow(**fields)
        self.s.add(row)
        self.s.flush()
        return row

    def for_job(
        self, job_id: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[RunRow]:
        q = select(RunRow).where(RunRow.job_id == job_id)
        if since is not None:
            q = q.where(RunRow.slot >= since)
        if until is not None:
            q = q.where(RunRow.slot <= until)
        return list(self.s.scalars(q.order_by(RunRow.slot, RunRow.id)))

    def count(self) -> int:
        return int(self.s.scalar(select(func.count()).select_from(RunRow)) or 0)

    def celery_watermarks(self) -> dict[str, datetime]:
        """The latest slot the Celery side has on record per job (fired, missed or skipped)."""
        q = select(RunRow.job_id, func.max(RunRow.slot)).where(RunRow.path == "celery")
        rows = self.s.execute(q.group_by(RunRow.job_id)).all()
        return {job_id: slot for job_id, slot in rows if slot is not None}
