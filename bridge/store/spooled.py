"""Spooled legacy records into the ``runs`` table, with the claims they complete.

:func:`store_spooled` stores the records of one spool file (:mod:`legacy_wrappers.spool_flush`)
in one transaction, each in its own savepoint: a ``record_key`` already stored adds nothing; a
record that carries a claim completes it only while that claim is still ``running`` under the
same holder and attempt (a claim taken over meanwhile is left to its new holder); a record the
database refuses (a value too long...) is returned with the reason, never blocking the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from bridge.core.runs import RunRecord
from bridge.store.db import Registry
from bridge.store.models import ClaimRow
from bridge.store.runs import record

__all__ = ["store_spooled"]


def store_spooled(
    registry: Registry, records: Sequence[tuple[int, bytes, RunRecord, dict[str, Any] | None]]
) -> tuple[int, list[tuple[int, bytes, str]]]:
    """Store ``(line number, raw line, record, claim or None)`` tuples: (how many were new,
    ``(line number, raw line, reason)`` of those the database refused)."""
    if not records:
        return 0, []
    added, refused = 0, []
    with registry.session() as session:
        for number, raw, obs, claim in records:
            try:
                with session.begin_nested():
                    added += bool(record(session, obs))
                    if claim is not None:
                        _complete_claim(session, obs, claim)
            except (DataError, IntegrityError) as e:  # not OperationalError: unreachable
                reason = str(getattr(e, "orig", e)).strip().splitlines()[0]
                refused.append((number, raw, f"refused by the database: {reason}"))
    return added, refused


def _complete_claim(session: Session, obs: RunRecord, claim: dict[str, Any]) -> None:
    """Complete the claim the shim held when it spooled ``obs`` (fenced: holder, attempt and
    state ``running`` must still hold)."""
    now = datetime.now(UTC)
    session.execute(
        update(ClaimRow)
        .where(ClaimRow.job_id == obs.job_id, ClaimRow.slot == obs.slot,
               ClaimRow.holder == claim["holder"], ClaimRow.attempts == claim["attempts"],
               ClaimRow.state == "running")
        .values(state=claim["state"], expires_at=now, updated_at=now))
