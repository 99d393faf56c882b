"""The audit log's rows: append-only records of who did what to which job."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.core.audit import AuditEntry
from bridge.store.bulk import insert_many
from bridge.store.models import AuditRow, utcnow


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
        constants = {"at": utcnow(), "actor": actor}
        insert_many(self.s.connection(), AuditRow.__table__, records, constants)

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
