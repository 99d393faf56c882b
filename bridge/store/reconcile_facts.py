"""What reconciliation reads from the registry, as :mod:`bridge.core.reconcile` values.

One statement per table: the jobs, their authority histories, the runs and claims of the window
(:func:`load_facts`), and the repairs on the audit log (:func:`repairs_since`). Whether a
claim's holder process is gone is not the registry's to say: claims come back with
``holder_gone=False`` and the service asks :mod:`bridge.adapters.processes`.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from bridge.core.reconcile import ClaimFact, ReconcileInputs, RepairRecord, RunFact, Window
from bridge.store.fleet import FleetRepo
from bridge.store.models import AuditRow, ClaimRow, RunRow
from bridge.store.repos import AuthorityRepo, JobRepo

RUNS = cast(Table, RunRow.__table__)
CLAIMS = cast(Table, ClaimRow.__table__)
REPAIR_ACTION = "repair"  # the audit action of a repair (bridge.services.reconcile.repair)


def load_facts(session: Session, window: Window, *, job_id: str | None = None) -> ReconcileInputs:
    """Jobs, authority, runs, claims and recent repairs of the window (one statement each).
    A job consolidated into a fleet group is left out: Celery's side of its slots is its
    group job's (:mod:`bridge.services.fleet`)."""
    jobs = [JobRepo(session).require(job_id)] if job_id else JobRepo(session).list()
    consolidated = FleetRepo(session).group_of()
    jobs = [j for j in jobs if j.id not in consolidated]
    histories = AuthorityRepo(session).histories([j.id for j in jobs])
    runs = [run_fact(r) for r in session.execute(in_window(RUNS, window, job_id))]
    claims = [claim_fact(r) for r in session.execute(in_window(CLAIMS, window, job_id))]
    repaired = {(r.job_id, r.slot): r.at
                for r in repairs_since(session, window.since, [job_id] if job_id else None)}
    return ReconcileInputs(jobs, histories, runs, claims, repaired)


def in_window(table: Table, window: Window, job_id: str | None) -> Any:
    c = table.c
    query = select(table).where(c.slot > window.since, c.slot <= window.until)
    return query.where(c.job_id == job_id) if job_id else query


def run_fact(row: Any) -> RunFact:
    return RunFact(row.job_id, aware(row.slot), row.path, row.role, row.status,
                   aware(row.started_at), int(row.attempts or 1), row.error)


def claim_fact(row: Any) -> ClaimFact:
    return ClaimFact(row.job_id, aware(row.slot), row.holder, row.state, int(row.attempts),
                     aware(row.expires_at))


def aware(value: Any) -> Any:
    """A naive timestamp read back from SQLite is UTC."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def repairs_since(
    session: Session, since: datetime, job_ids: Collection[str] | None = None
) -> list[RepairRecord]:
    """Every repair recorded at or after ``since`` (of ``job_ids`` only, if given), oldest
    first; an audit row without a slot is not a repair anyone can act on and is left out."""
    query = select(AuditRow).where(AuditRow.action == REPAIR_ACTION, AuditRow.at >= since)
    if job_ids is not None:
        query = query.where(AuditRow.job_id.in_(sorted(job_ids)))
    out = []
    for row in session.scalars(query.order_by(AuditRow.id)):
        after = row.after or {}
        text = after.get("slot")
        if row.job_id and isinstance(text, str):
            slot = datetime.fromisoformat(text.replace("Z", "+00:00"))
            out.append(RepairRecord(row.job_id, slot, after.get("kind"), after.get("task_id"),
                                    row.actor, aware(row.at)))
    return out
