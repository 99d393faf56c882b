"""The ``runs`` table as the metrics exporter reads it: new rows in id order, and which jobs
have rows in a window. Plain values out (:class:`RunSample`), timestamps UTC-aware."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, or_, select
from sqlalchemy.orm import Session

from bridge.store.models import RunRow

RUNS = cast(Table, RunRow.__table__)


@dataclass(frozen=True)
class RunSample:
    """What the exporter folds of one ``runs`` row."""

    id: int
    job_id: str
    slot: datetime
    path: str
    role: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None


def runs_after(
    session: Session, after_id: int, also: Collection[int] = (), *, limit: int
) -> list[RunSample]:
    """Rows with an id above ``after_id``, plus the rows ``also`` names (still running when
    last read), in id order, at most ``limit``."""
    c = RUNS.c
    where = c.id > after_id
    if also:
        where = or_(where, c.id.in_(sorted(also)))
    cols = [c.id, c.job_id, c.slot, c.path, c.role, c.status, c.started_at, c.finished_at]
    rows = session.execute(select(*cols).where(where).order_by(c.id).limit(limit))
    return [RunSample(int(r.id), r.job_id, _slot(r.slot), r.path, r.role, r.status,
                      _utc(r.started_at), _utc(r.finished_at)) for r in rows]


def jobs_with_runs(session: Session, since: datetime, until: datetime) -> set[str]:
    """Ids of the jobs with any row for a slot in ``(since, until]``."""
    query = select(RUNS.c.job_id).where(RUNS.c.slot > since, RUNS.c.slot <= until).distinct()
    return set(session.scalars(query))


def _slot(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
