"""Consolidation groups in the registry (``fleet_members``, migration 0006; the rules are in
:mod:`bridge.services.fleet`)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.store.models import FleetMemberRow, utcnow


class FleetRepo:
    """Consolidation groups: which host-bound jobs a group job stands for (0006)."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def members(self, group_id: str | None = None) -> dict[str, list[tuple[str, str | None]]]:
        """group id -> its members as (member id, host), in host order; one group or all."""
        query = select(FleetMemberRow).order_by(FleetMemberRow.host, FleetMemberRow.member_id)
        if group_id is not None:
            query = query.where(FleetMemberRow.group_id == group_id)
        out: dict[str, list[tuple[str, str | None]]] = {}
        for row in self.s.scalars(query):
            out.setdefault(row.group_id, []).append((row.member_id, row.host))
        return out

    def group_of(self) -> dict[str, str]:
        """member id -> its group id, for every consolidated job."""
        query = select(FleetMemberRow.member_id, FleetMemberRow.group_id)
        return {m: g for m, g in self.s.execute(query)}

    def add(self, group_id: str, members: Sequence[tuple[str, str | None]], actor: str) -> None:
        now = utcnow()
        for member_id, host in members:
            self.s.add(FleetMemberRow(member_id=member_id, group_id=group_id, host=host,
                                      actor=actor, created_at=now))
        self.s.flush()

    def remove(self, group_id: str) -> int:
        rows = list(self.s.scalars(
            select(FleetMemberRow).where(FleetMemberRow.group_id == group_id)))
        for row in rows:
            self.s.delete(row)
        self.s.flush()
        return len(rows)
