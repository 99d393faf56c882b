"""The ``claims`` table: every statement the claim guard (invariant 4) runs.

Guarantees, identical on SQLite and PostgreSQL (the decisions are pure,
:mod:`bridge.core.claims`; the lease's life in a worker is :mod:`legacy_wrappers.claims`):

* **One winner.** :meth:`ClaimStore.insert` returns ``None`` when the unique constraint on
  ``(job_id, slot)`` says someone else inserted first.
* **Never while the lease is alive.** :meth:`ClaimStore.take` is a conditional ``UPDATE ...
  WHERE state='running' AND expires_at < now AND attempts = <seen>`` (or the state and holder
  as seen, for a resume / re-claim); ``rowcount`` says who won.
* **Fenced.** :meth:`ClaimStore.renew`, :meth:`~ClaimStore.park` and
  :meth:`~ClaimStore.close` change the row only while it is still ``running`` under the
  holder *and attempt* of the given snapshot.
* **Short transactions.** Every operation is one statement in its own transaction (no
  read-then-write upgrade, which SQLite would answer with ``database is locked``); a
  :meth:`~ClaimStore.close` may write the run's row in the same transaction. They run on the
  database driver itself (:mod:`bridge.store.direct`: every run pays them).

An unreachable database is an :class:`~bridge.core.errors.InfraError`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Table, update
from sqlalchemy.orm import Session

from bridge.core.claims import ClaimAction, ClaimInfo, ClaimState
from bridge.core.runs import RunRecord
from bridge.store.db import Registry
from bridge.store.direct import Cursor, Duplicate, Statement, read_time
from bridge.store.models import ClaimRow
from bridge.store.run_rows import insert_record, replace_record

CLAIMS = cast(Table, ClaimRow.__table__)
RUNNING = ClaimState.RUNNING.value
ABANDONED = ClaimState.ABANDONED.value
# The statements, run on the driver (bridge.store.direct): the columns are the models'.
FIELDS = "id, job_id, slot, holder, path, state, attempts, expires_at"
GET = Statement(f"SELECT {FIELDS} FROM claims WHERE job_id = :job_id AND slot = :slot")
INSERT = Statement(
    "INSERT INTO claims (job_id, slot, holder, path, state, attempts, expires_at, created_at, "
    "updated_at) VALUES (:job_id, :slot, :holder, :path, :state, 1, :expires_at, :now, :now) "
    "RETURNING id")
SET_HELD = ("holder = :holder, path = :path, state = :state, attempts = :attempts, "
            "expires_at = :expires_at, updated_at = :now")
SEEN = "id = :id AND attempts = :seen_attempts"
TAKE_EXPIRED = Statement(
    f"UPDATE claims SET {SET_HELD} WHERE {SEEN} AND ((state = '{RUNNING}' AND expires_at < :now)"
    f" OR state = '{ABANDONED}')")
TAKE_AS_SEEN = Statement(
    f"UPDATE claims SET {SET_HELD} WHERE {SEEN} AND state = :seen_state "
    "AND holder = :seen_holder")
FENCE = f"{SEEN} AND holder = :seen_holder AND state = '{RUNNING}'"
RENEW = Statement(f"UPDATE claims SET expires_at = :expires_at, updated_at = :now WHERE {FENCE}")
VERDICT = Statement(
    f"UPDATE claims SET state = :state, expires_at = :now, updated_at = :now WHERE {FENCE}")
LIVE_BEFORE = Statement(
    f"SELECT {FIELDS} FROM claims WHERE job_id = :job_id AND slot < :slot "
    f"AND state = '{RUNNING}' AND expires_at >= :now ORDER BY slot DESC LIMIT 1")
ABANDON_EXPIRED = Statement(
    f"UPDATE claims SET state = '{ABANDONED}', updated_at = :now "
    f"WHERE state = '{RUNNING}' AND expires_at < :now")


def info_of(row: tuple[Any, ...]) -> ClaimInfo:
    id_, job_id, slot, holder, path, state, attempts, expires_at = row
    slot_at, expires = read_time(slot), read_time(expires_at)
    assert slot_at is not None and expires is not None
    return ClaimInfo(id=int(id_), job_id=job_id, slot=slot_at, holder=holder, path=path,
                     state=ClaimState(state), attempts=int(attempts), expires_at=expires)


def fence(cur: Cursor, info: ClaimInfo, now: datetime) -> dict[str, Any]:
    """The parameters of a fenced update: still running under this holder and attempt."""
    return {"id": info.id, "seen_attempts": info.attempts, "seen_holder": info.holder,
            "now": cur.t(now)}


class ClaimStore:
    """The claims of one registry. Thread-safe; one instance per process is enough."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.sql = registry.direct

    def get(self, job_id: str, slot: datetime) -> ClaimInfo | None:
        rows = self.sql.read(lambda c: c.rows(GET, {"job_id": job_id, "slot": c.t(slot)}))
        return info_of(rows[0]) if rows else None

    def insert(self, job_id: str, slot: datetime, holder: str, path: str, now: datetime,
               expires: datetime) -> ClaimInfo | None:
        """A fresh ``running`` claim; ``None`` if the slot is claimed already."""

        def work(c: Cursor) -> int:
            return c.insert(INSERT, {"job_id": job_id, "slot": c.t(slot), "holder": holder,
                                     "path": path, "state": RUNNING,
                                     "expires_at": c.t(expires), "now": c.t(now)})

        try:
            id_ = self.sql.write(work, one_statement=True)
        except Duplicate:
            return None
        return ClaimInfo(id_, job_id, slot, holder, path, ClaimState.RUNNING, 1, expires)

    def take(self, existing: ClaimInfo, holder: str, path: str, action: ClaimAction,
             now: datetime, expires: datetime) -> ClaimInfo | None:
        """Compare-and-swap ``existing`` to ``running`` for ``holder``; None if someone beat us."""
        attempts = existing.attempts if action is ClaimAction.RESUME else existing.attempts + 1

        def work(c: Cursor) -> int:
            params: dict[str, Any] = {
                "id": existing.id, "seen_attempts": existing.attempts, "holder": holder,
                "path": path, "state": RUNNING, "attempts": attempts,
                "expires_at": c.t(expires), "now": c.t(now),
            }
            if action is ClaimAction.TAKEOVER:
                return c.execute(TAKE_EXPIRED, params)
            params.update(seen_state=existing.state.value, seen_holder=existing.holder)
            return c.execute(TAKE_AS_SEEN, params)

        if self.sql.write(work, one_statement=True) != 1:
            return None
        return replace(existing, holder=holder, path=path, state=ClaimState.RUNNING,
                       attempts=attempts, expires_at=expires)

    def live_before(self, job_id: str, slot: datetime, now: datetime) -> ClaimInfo | None:
        """The latest earlier slot of ``job_id`` whose run still holds a live lease, if any."""
        rows = self.sql.read(lambda c: c.rows(LIVE_BEFORE, {
            "job_id": job_id, "slot": c.t(slot), "now": c.t(now)}))
        return info_of(rows[0]) if rows else None

    def abandon_expired(self, now: datetime) -> int:
        """Mark every running claim whose lease expired as ``abandoned``; returns how many."""
        return self.sql.write(lambda c: c.execute(ABANDON_EXPIRED, {"now": c.t(now)}),
                              one_statement=True)

    def renew(self, info: ClaimInfo, now: datetime, expires: datetime) -> bool:
        return self.sql.write(lambda c: c.execute(RENEW, {
            **fence(c, info, now), "expires_at": c.t(expires)}), one_statement=True) == 1

    def park(self, info: ClaimInfo, now: datetime) -> bool:
        """Set the held claim ``deferred`` (attempts kept); ``False`` if it was not held."""
        return self.sql.write(lambda c: c.execute(VERDICT, {
            **fence(c, info, now), "state": ClaimState.DEFERRED.value}), one_statement=True) == 1

    def close(self, info: ClaimInfo, state: ClaimState, now: datetime, *,
              record: RunRecord | None = None, record_key: str | None = None) -> bool:
        """Give the held claim its verdict; ``False`` if it was not held. ``record`` (if any)
        is written in the same transaction whether or not the claim was held: inserted, or
        overwriting the row keyed ``record_key``."""

        def work(c: Cursor) -> int:
            count = c.execute(VERDICT, {**fence(c, info, now), "state": state.value})
            if record is not None and record_key is None:
                insert_record(c, record)
            elif record is not None and record_key is not None:
                replace_record(c, record_key, record)
            return count

        return self.sql.write(work) == 1


def release_for_rerun(session: Session, claim: ClaimInfo, now: datetime) -> bool:
    """Release a finished claim for one rerun (``bridge trigger --rerun``): a compare-and-swap
    of that exact row, state and attempt as seen, to ``abandoned``, in the caller's transaction
    (which also writes the audit record). False when the row changed meanwhile."""
    c = CLAIMS.c
    stmt = (update(CLAIMS)
            .where(c.id == claim.id, c.attempts == claim.attempts, c.state == claim.state.value)
            .values(state=ClaimState.ABANDONED.value, updated_at=now))
    result = cast(CursorResult[Any], session.execute(stmt))
    return result.rowcount == 1
