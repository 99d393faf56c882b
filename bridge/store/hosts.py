"""The registry by host: a fleet's jobs grouped by the machine their legacy lines live on
(``jobs.host``, :mod:`bridge.core.hosts`)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bridge.store.models import JobRow


def ids_by_source(session: Session, hosts: Iterable[str]) -> dict[tuple[str, str], set[str]]:
    """Live job ids per (host, source file) of the given hosts, one query per 500 hosts (a
    fleet import reads every host's files at once)."""
    wanted = sorted(set(hosts))
    out: dict[tuple[str, str], set[str]] = {}
    for i in range(0, len(wanted), 500):
        query = select(JobRow.id, JobRow.host, JobRow.source_file).where(
            JobRow.deleted_at.is_(None), JobRow.host.in_(wanted[i : i + 500])
        )
        for r in session.execute(query):
            out.setdefault((r.host, r.source_file), set()).add(r.id)
    return out


def jobs_per_host(session: Session) -> dict[str, int]:
    """Live jobs per host (jobs bound to no host are left out)."""
    query = (
        select(JobRow.host, func.count())
        .where(JobRow.deleted_at.is_(None), JobRow.host.is_not(None))
        .group_by(JobRow.host)
    )
    return {str(h): int(n) for h, n in session.execute(query)}
