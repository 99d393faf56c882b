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
  :meth:`~ClaimStore.close` may write the run's row in the same transaction.

An unreachable database is an :class:`~bridge.core.errors.InfraError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, CursorResult, Table, and_, bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bridge.core.claims import ClaimAction, ClaimInfo, ClaimState
from bridge.core.runs import RunRecord
from bridge.store.db import Registry, in_transaction
from bridge.store.models import ClaimRow
from bridge.store.run_rows import insert_record, replace_record

CLAIMS = cast(Table, ClaimRow.__table__)
T = TypeVar("T")
C = CLAIMS.c
RUNNING = ClaimState.RUNNING.value
# Built once and executed with bound parameters (no per-call statement construction).
GET = select(CLAIMS).where(C.job_id == bindparam("job_id_"), C.slot == bindparam("slot_"))
INSERT = insert(CLAIMS)
SEEN = and_(C.id == bindparam("id_"), C.attempts == bindparam("seen_attempts_"))
TAKE_EXPIRED = update(CLAIMS).where(SEEN, or_(
    and_(C.state == RUNNING, C.expires_at < bindparam("now_")),
    C.state == ClaimState.ABANDONED.value,
))
TAKE_AS_SEEN = update(CLAIMS).where(SEEN, C.state == bindparam("seen_state_"),
                                    C.holder == bindparam("seen_holder_"))
FENCED = update(CLAIMS).where(SEEN, C.holder == bindparam("seen_holder_"), C.state == RUNNING)
LIVE_BEFORE = (
    select(CLAIMS)
    .where(C.job_id == bindparam("job_id_"), C.slot < bindparam("slot_"), C.state == RUNNING,
           C.expires_at >= bindparam("now_"))
    .order_by(C.slot.desc())
    .limit(1)
)
ABANDON_EXPIRED = (update(CLAIMS).where(C.state == RUNNING, C.expires_at < bindparam("now_"))
                   .values(state=ClaimState.ABANDONED.value))


def info_of(row: Any) -> ClaimInfo:
    return ClaimInfo(
        id=row.id,
        job_id=row.job_id,
        slot=row.slot,
        holder=row.holder,
        path=row.path,
        state=ClaimState(row.state),
        attempts=row.attempts,
        expires_at=row.expires_at,
    )


def fence(info: ClaimInfo) -> dict[str, Any]:
    """The parameters of :data:`FENCED`: still running under this holder and attempt."""
    return {"id_": info.id, "seen_attempts_": info.attempts, "seen_holder_": info.holder}


class ClaimStore:
    """The claims of one registry. Thread-safe; one instance per process is enough."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def _tx(self, work: Callable[[Connection], T]) -> T:
        return in_transaction(self.registry, work)

    def get(self, job_id: str, slot: datetime) -> ClaimInfo | None:
        row = self._tx(lambda c: c.execute(GET, {"job_id_": job_id, "slot_": slot}).first())
        return None if row is None else info_of(row)

    def insert(self, job_id: str, slot: datetime, holder: str, path: str, now: datetime,
               expires: datetime) -> ClaimInfo | None:
        """A fresh ``running`` claim; ``None`` if the slot is claimed already."""
        values = {"job_id": job_id, "slot": slot, "holder": holder, "path": path,
                  "state": RUNNING, "attempts": 1, "expires_at": expires, "created_at": now,
                  "updated_at": now}
        try:
            result = self._tx(lambda c: c.execute(INSERT, values))
        except IntegrityError:
            return None
        key = result.inserted_primary_key
        assert key is not None
        return ClaimInfo(int(key[0]), job_id, slot, holder, path, ClaimState.RUNNING, 1, expires)

    def take(self, existing: ClaimInfo, holder: str, path: str, action: ClaimAction,
             now: datetime, expires: datetime) -> ClaimInfo | None:
        """Compare-and-swap ``existing`` to ``running`` for ``holder``; None if someone beat us."""
        attempts = existing.attempts if action is ClaimAction.RESUME else existing.attempts + 1
        params: dict[str, Any] = {
            "id_": existing.id, "seen_attempts_": existing.attempts, "holder": holder,
            "path": path, "state": RUNNING, "attempts": attempts, "expires_at": expires,
            "updated_at": now,
        }
        if action is ClaimAction.TAKEOVER:
            stmt, params["now_"] = TAKE_EXPIRED, now
        else:
            stmt = TAKE_AS_SEEN
            params.update(seen_state_=existing.state.value, seen_holder_=existing.holder)
        if self._tx(lambda conn: conn.execute(stmt, params).rowcount) != 1:
            return None
        return replace(existing, holder=holder, path=path, state=ClaimState.RUNNING,
                       attempts=attempts, expires_at=expires)

    def live_before(self, job_id: str, slot: datetime, now: datetime) -> ClaimInfo | None:
        """The latest earlier slot of ``job_id`` whose run still holds a live lease, if any."""
        params = {"job_id_": job_id, "slot_": slot, "now_": now}
        row = self._tx(lambda conn: conn.execute(LIVE_BEFORE, params).first())
        return None if row is None else info_of(row)

    def abandon_expired(self, now: datetime) -> int:
        """Mark every running claim whose lease expired as ``abandoned``; returns how many."""
        params = {"now_": now, "updated_at": now}
        return int(self._tx(lambda conn: conn.execute(ABANDON_EXPIRED, params).rowcount))

    def renew(self, info: ClaimInfo, now: datetime, expires: datetime) -> bool:
        params = {**fence(info), "expires_at": expires, "updated_at": now}
        return bool(self._tx(lambda c: c.execute(FENCED, params).rowcount) == 1)

    def park(self, info: ClaimInfo, now: datetime) -> bool:
        """Set the held claim ``deferred`` (attempts kept); ``False`` if it was not held."""
        params = {**fence(info), "state": ClaimState.DEFERRED.value, "expires_at": now,
                  "updated_at": now}
        return bool(self._tx(lambda c: c.execute(FENCED, params).rowcount) == 1)

    def close(self, info: ClaimInfo, state: ClaimState, now: datetime, *,
              record: RunRecord | None = None, record_key: str | None = None) -> bool:
        """Give the held claim its verdict; ``False`` if it was not held. ``record`` (if any)
        is written in the same transaction whether or not the claim was held: inserted, or
        overwriting the row keyed ``record_key``."""
        params = {**fence(info), "state": state.value, "expires_at": now, "updated_at": now}

        def work(conn: Connection) -> int:
            count = int(conn.execute(FENCED, params).rowcount)
            if record is not None and record_key is None:
                insert_record(conn, record)
            elif record is not None and record_key is not None:
                replace_record(conn, record_key, record)
            return count

        return self._tx(work) == 1


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
