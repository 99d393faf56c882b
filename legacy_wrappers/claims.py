"""Slot claims: the durable "at most one authoritative execution per slot" guard (invariant 4).

A claim is one row of ``claims`` per ``(job_id, slot)`` (unique constraint) leased to one
*holder* until ``expires_at``. Guarantees, identical on SQLite and PostgreSQL:

* **One winner.** The first claimant inserts the row; every other concurrent claimant hits the
  unique constraint and gets :class:`AlreadyClaimed` (a value, not an exception) carrying the
  holder and the state, so the caller can record a suppressed duplicate.
* **Never while the lease is alive.** A ``running`` claim is taken over only by a conditional
  ``UPDATE ... WHERE state='running' AND expires_at < now AND attempts = <seen>``; ``rowcount``
  says who won, so two would-be successors cannot both take it.
* **Retries stay in their lineage.** A ``failed`` or ``interrupted`` claim is re-claimed only by
  a caller that says it is a retry (:class:`RetryGrant`) *of the same lineage* (a holder's
  lineage is e.g. the Celery task id, stable across retries and redeliveries of one message)
  and only while ``attempts < max_attempts``. A manual re-send of the slot is a new lineage:
  it gets :class:`AlreadyClaimed`.
* **Completion is fenced.** :meth:`Lease.renew` and :meth:`Lease.complete` update the row only
  while it is still ``running`` under this holder *and this attempt*; after a takeover the old
  holder's calls return ``False`` (the lease was lost) and change nothing.
* **Short transactions.** Every operation is a single statement in its own transaction (no
  read-then-write upgrade, which SQLite would answer with ``database is locked``).

Time is injected (``clock``); hosts must keep their clocks in sync (NTP) to well under the
lease duration, since ``expires_at`` is written by one host and compared by another.

States (stored legibly, :class:`ClaimState`): ``running``; terminal ``succeeded`` and
``skipped`` (an overlap-forbid skip, sticky for the slot); ``failed`` and ``interrupted``
(re-claimable by the lineage's retry); ``abandoned`` (an expired lease declared dead by
:meth:`Claims.abandon_expired`; it may be taken over like any expired lease); ``deferred``
(won but parked unrun by :meth:`Lease.defer`, e.g. while the job's group is at its
``max_concurrency``: only the same lineage resumes it, with ``attempts`` unchanged since nothing
ran); ``lost`` (terminal: a holder died after its command started and before its outcome was
recorded, and the job's ``on_lost`` policy is ``skip``; never taken over automatically, only
released by ``bridge trigger --rerun``).

Every won lease says how it was won (:attr:`Lease.action`: ``None`` for a fresh claim, else the
:class:`Action`) and from which state (:attr:`Lease.took_over_from`), so the task can settle a
dead holder's run before it runs anything (:mod:`legacy_wrappers.takeover`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import TracebackType
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from bridge.store.db import Registry, unreachable
from bridge.store.models import ClaimRow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
CLAIMS = cast(Table, ClaimRow.__table__)
LINEAGE_SEPARATOR = "@"


def utc_clock() -> datetime:
    return datetime.now(UTC)


class ClaimState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABANDONED = "abandoned"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"
    DEFERRED = "deferred"
    LOST = "lost"  # the holder died mid-run, outcome unknown, on_lost=skip: terminal


RETRYABLE_STATES = frozenset({ClaimState.FAILED, ClaimState.INTERRUPTED})


@dataclass(frozen=True)
class LeaseTerms:
    """A lease lasts ``duration`` after each renewal; the heartbeat renews every ``renew_every``.

    Short by default so a crashed run's slot is taken over within about 30 s.
    """

    duration: timedelta = timedelta(seconds=30)
    renew_every: timedelta = timedelta(seconds=10)

    def __post_init__(self) -> None:
        if self.renew_every >= self.duration or self.renew_every.total_seconds() <= 0:
            raise ValueError("renew_every must be positive and shorter than the lease duration")


@dataclass(frozen=True)
class Holder:
    """Who holds a claim: ``lineage`` (stable across retries/redeliveries) and ``instance``."""

    lineage: str
    instance: str = ""

    def __post_init__(self) -> None:
        if not self.lineage or LINEAGE_SEPARATOR in self.lineage:
            raise ValueError(f"a holder lineage must be non-empty without '@': {self.lineage!r}")

    def __str__(self) -> str:
        return f"{self.lineage}{LINEAGE_SEPARATOR}{self.instance}"[:255]


def lineage_of(holder: str) -> str:
    return holder.split(LINEAGE_SEPARATOR, 1)[0]


@dataclass(frozen=True)
class RetryGrant:
    """Presented by a retry: may re-claim its own lineage's failed claim below ``max_attempts``."""

    max_attempts: int


@dataclass(frozen=True)
class ClaimInfo:
    """A snapshot of one claim row."""

    id: int
    job_id: str
    slot: datetime
    holder: str
    path: str
    state: ClaimState
    attempts: int
    expires_at: datetime

    def alive(self, now: datetime) -> bool:
        return self.state is ClaimState.RUNNING and self.expires_at >= now

    @property
    def lineage(self) -> str:
        return lineage_of(self.holder)


@dataclass(frozen=True)
class AlreadyClaimed:
    """The result of losing a claim: who holds it and in what state (the caller records it)."""

    claim: ClaimInfo
    live: bool  # the lease was alive when we looked

    @property
    def holder(self) -> str:
        return self.claim.holder

    @property
    def state(self) -> ClaimState:
        return self.claim.state

    @property
    def reason(self) -> str:
        return f"already claimed by {self.claim.holder}"


class Action(StrEnum):
    TAKEOVER = "takeover"
    RECLAIM = "reclaim"
    RESUME = "resume"
    REFUSE = "refuse"


def decide(
    existing: ClaimInfo,
    holder: Holder,
    now: datetime,
    grant: RetryGrant | None,
    takeover_limit: int,
) -> Action:
    """Pure: what may a newcomer do with an existing claim?"""
    state = existing.state
    if state is ClaimState.RUNNING and existing.expires_at >= now:
        return Action.REFUSE
    if state is ClaimState.RUNNING or state is ClaimState.ABANDONED:
        return Action.TAKEOVER if existing.attempts < takeover_limit else Action.REFUSE
    if state is ClaimState.DEFERRED:  # parked unrun: its own lineage's retry picks it up
        return Action.RESUME if existing.lineage == holder.lineage else Action.REFUSE
    if (
        state in RETRYABLE_STATES
        and grant is not None
        and existing.lineage == holder.lineage
        and existing.attempts < grant.max_attempts
    ):
        return Action.RECLAIM
    return Action.REFUSE


def _primary_key(result: Any) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _info(row: Any) -> ClaimInfo:
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


class Claims:
    """Claim slots in a registry. Thread-safe; one instance per process is enough."""

    def __init__(
        self,
        registry: Registry,
        *,
        clock: Clock = utc_clock,
        terms: LeaseTerms | None = None,
        takeover_limit: int = 5,
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.terms = terms or LeaseTerms()
        self.takeover_limit = takeover_limit

    # --- transactions -------------------------------------------------------------------------

    def _tx(self, work: Callable[[Connection], Any]) -> Any:
        try:
            with self.registry.engine.begin() as conn:
                return work(conn)
        except OperationalError as e:
            raise unreachable(self.registry.url, e) from e

    def get(self, job_id: str, slot: datetime) -> ClaimInfo | None:
        query = select(CLAIMS).where(CLAIMS.c.job_id == job_id, CLAIMS.c.slot == slot)
        row = self._tx(lambda c: c.execute(query).first())
        return None if row is None else _info(row)

    # --- claiming -----------------------------------------------------------------------------

    def claim(
        self,
        job_id: str,
        slot: datetime,
        holder: Holder,
        *,
        path: str = "celery",
        retry: RetryGrant | None = None,
    ) -> Lease | AlreadyClaimed:
        """Claim ``(job_id, slot)`` for ``holder``: a :class:`Lease` or :class:`AlreadyClaimed`."""
        for _ in range(5):
            lease = self._insert(job_id, slot, holder, path)
            if lease is not None:
                return lease
            existing = self.get(job_id, slot)
            if existing is None:  # deleted between our insert and our read: try again
                continue
            now = self.clock()
            action = decide(existing, holder, now, retry, self.takeover_limit)
            if action is Action.REFUSE:
                return AlreadyClaimed(existing, live=existing.alive(now))
            lease = self._take(existing, holder, path, action, now)
            if lease is not None:
                return lease
        final = self.get(job_id, slot)
        assert final is not None, "claim row vanished repeatedly"
        return AlreadyClaimed(final, live=final.alive(self.clock()))

    def _insert(self, job_id: str, slot: datetime, holder: Holder, path: str) -> Lease | None:
        now = self.clock()
        expires = now + self.terms.duration
        stmt = insert(CLAIMS).values(
            job_id=job_id, slot=slot, holder=str(holder), path=path,
            state=ClaimState.RUNNING.value, attempts=1, expires_at=expires,
            created_at=now, updated_at=now,
        )
        try:
            claim_id = int(self._tx(lambda c: _primary_key(c.execute(stmt))))
        except IntegrityError:
            return None
        info = ClaimInfo(claim_id, job_id, slot, str(holder), path, ClaimState.RUNNING, 1, expires)
        return Lease(self, info)

    def _take(
        self, existing: ClaimInfo, holder: Holder, path: str, action: Action, now: datetime
    ) -> Lease | None:
        """Compare-and-swap the row to ``running`` for ``holder``; None if someone beat us."""
        c = CLAIMS.c
        if action is Action.TAKEOVER:
            allowed = or_(
                and_(c.state == ClaimState.RUNNING.value, c.expires_at < now),
                c.state == ClaimState.ABANDONED.value,
            )
        else:
            allowed = and_(c.state == existing.state.value, c.holder == existing.holder)
        expires = now + self.terms.duration
        attempts = existing.attempts if action is Action.RESUME else existing.attempts + 1
        stmt = (
            update(CLAIMS)
            .where(c.id == existing.id, c.attempts == existing.attempts, allowed)
            .values(holder=str(holder), path=path, state=ClaimState.RUNNING.value,
                    attempts=attempts, expires_at=expires, updated_at=now)
        )
        if self._tx(lambda conn: conn.execute(stmt).rowcount) != 1:
            return None
        info = replace(existing, holder=str(holder), path=path, state=ClaimState.RUNNING,
                       attempts=attempts, expires_at=expires)
        return Lease(self, info, action=action, took_over_from=existing)

    # --- queries for policies and reconciliation ----------------------------------------------

    def live_before(self, job_id: str, slot: datetime) -> ClaimInfo | None:
        """The latest earlier slot of ``job_id`` whose run still holds a live lease, if any."""
        now = self.clock()
        c = CLAIMS.c
        query = (
            select(CLAIMS)
            .where(c.job_id == job_id, c.slot < slot, c.state == ClaimState.RUNNING.value,
                   c.expires_at >= now)
            .order_by(c.slot.desc())
            .limit(1)
        )
        row = self._tx(lambda conn: conn.execute(query).first())
        return None if row is None else _info(row)

    def abandon_expired(self) -> int:
        """Mark every running claim whose lease expired as ``abandoned``; returns how many."""
        now = self.clock()
        c = CLAIMS.c
        stmt = (
            update(CLAIMS)
            .where(c.state == ClaimState.RUNNING.value, c.expires_at < now)
            .values(state=ClaimState.ABANDONED.value, updated_at=now)
        )
        return int(self._tx(lambda conn: conn.execute(stmt).rowcount))


class Lease:
    """A won claim. ``with lease:`` renews it from a heartbeat thread while the block runs.

    :meth:`renew` and :meth:`complete` are fenced on (holder, attempt, state running): they
    return ``False`` once the lease was lost to a takeover. :attr:`lost` is set when the
    heartbeat finds the lease gone, or cannot renew it before it runs out (the caller should
    stop its work: someone may take the slot over). Leaving the block by an
    exception without a verdict completes the claim ``failed``.

    :attr:`companions` are callables the heartbeat calls after each successful renewal (e.g.
    :class:`legacy_wrappers.concurrency.Permit.renew`), so a run's other leases live exactly as
    long as its claim does; an exception in one is logged and does not touch the claim.
    """

    def __init__(
        self,
        claims: Claims,
        info: ClaimInfo,
        *,
        action: Action | None = None,
        took_over_from: ClaimInfo | None = None,
    ) -> None:
        self.claims = claims
        self.info = info
        self.action = action  # None: a fresh claim; else how an existing one was won
        self.took_over_from = took_over_from  # the claim as it was before we won it
        self.lost = threading.Event()
        self.completed: ClaimState | None = None
        self._beat_lock = threading.Lock()
        self._active = False
        self._next_beat = 0.0
        self.companions: list[Callable[[], object]] = []

    @property
    def attempts(self) -> int:
        return self.info.attempts

    @property
    def expires_at(self) -> datetime:
        return self.info.expires_at

    def _fence(self) -> Any:
        c = CLAIMS.c
        return and_(c.id == self.info.id, c.holder == self.info.holder,
                    c.attempts == self.info.attempts, c.state == ClaimState.RUNNING.value)

    def renew(self) -> bool:
        """Push ``expires_at`` to now + duration; ``False`` (and :attr:`lost`) if not ours."""
        now = self.claims.clock()
        expires = now + self.claims.terms.duration
        stmt = update(CLAIMS).where(self._fence()).values(expires_at=expires, updated_at=now)
        if self.claims._tx(lambda c: c.execute(stmt).rowcount) != 1:
            self.lost.set()
            return False
        self.info = replace(self.info, expires_at=expires)
        return True

    def defer(self) -> bool:
        """Park the won claim unrun (state ``deferred``, ``attempts`` kept): only a retry of the
        same lineage resumes it (:attr:`Action.RESUME`); anyone else is refused. ``False`` (and
        :attr:`lost`) if the lease was no longer ours."""
        self._halt_heartbeat()
        now = self.claims.clock()
        stmt = update(CLAIMS).where(self._fence()).values(
            state=ClaimState.DEFERRED.value, expires_at=now, updated_at=now
        )
        won = self.claims._tx(lambda c: c.execute(stmt).rowcount) == 1
        if won:
            self.completed = ClaimState.DEFERRED
            self.info = replace(self.info, state=ClaimState.DEFERRED, expires_at=now)
        else:
            self.lost.set()
        return won

    def complete(
        self, state: ClaimState, *, also: Callable[[Connection], None] | None = None
    ) -> bool:
        """Record the verdict (and run ``also`` in the same transaction); ``False`` if lost.

        ``also`` runs even when the lease was lost, so the caller's record is never dropped.
        """
        if state is ClaimState.RUNNING:
            raise ValueError("complete() needs a final state")
        self._halt_heartbeat()
        now = self.claims.clock()
        stmt = update(CLAIMS).where(self._fence()).values(
            state=state.value, expires_at=now, updated_at=now
        )

        def work(conn: Connection) -> int:
            count = int(conn.execute(stmt).rowcount)
            if also is not None:
                also(conn)
            return count

        won = self.claims._tx(work) == 1
        if won:
            self.completed = state
        else:
            self.lost.set()
        return won

    # --- heartbeat ----------------------------------------------------------------------------

    def __enter__(self) -> Lease:
        with self._beat_lock:
            self._active = True
            self._next_beat = time.monotonic() + self.claims.terms.renew_every.total_seconds()
        HEARTBEAT.add(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._halt_heartbeat()
        if exc is not None and self.completed is None and not self.lost.is_set():
            try:
                self.complete(ClaimState.FAILED)
            except Exception:  # the original exception matters more
                log.exception("could not mark claim %s failed", self.info.id)

    def _halt_heartbeat(self) -> None:
        """Stop renewing; once this returns no renewal of this lease is in flight."""
        with self._beat_lock:
            self._active = False
        HEARTBEAT.discard(self)

    def _beat(self) -> None:
        """One heartbeat (called by the process's heartbeat thread when due)."""
        with self._beat_lock:
            if not self._active:
                return
            self._next_beat = time.monotonic() + self.claims.terms.renew_every.total_seconds()
            try:
                if not self.renew():
                    log.warning("lease on %s %s lost", self.info.job_id, self.info.slot)
                    self._active = False
                    return
            except Exception:  # a transient database error: keep trying until expiry
                log.exception("lease renewal failed for claim %s", self.info.id)
                if self.claims.clock() >= self.info.expires_at:
                    log.warning("lease on %s %s ran out unrenewed", self.info.job_id,
                                self.info.slot)
                    self.lost.set()  # someone may take it over now: stop the work
                    self._active = False
                return
            for companion in list(self.companions):
                try:
                    companion()
                except Exception:
                    log.exception("companion renewal failed for claim %s", self.info.id)


class _Heartbeat:
    """One daemon thread per process renews every active lease when it is due.

    Started on first use and again after a fork (a forked child renews only its own leases);
    no thread is created per run.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.leases: set[Lease] = set()
        self.pid = -1

    def add(self, lease: Lease) -> None:
        with self.lock:
            if self.pid != os.getpid():
                self.pid = os.getpid()
                self.leases = set()
                threading.Thread(target=self._run, name="lease-heartbeat", daemon=True).start()
            self.leases.add(lease)
        self.wake.set()

    def discard(self, lease: Lease) -> None:
        with self.lock:
            self.leases.discard(lease)

    def _run(self) -> None:
        while True:
            self.wake.clear()
            with self.lock:
                leases = list(self.leases)
            now = time.monotonic()
            for lease in leases:
                if lease._next_beat <= now:
                    lease._beat()
            with self.lock:
                soonest = min((lease._next_beat for lease in self.leases), default=now + 1.0)
            self.wake.wait(max(0.01, min(1.0, soonest - time.monotonic())))


HEARTBEAT = _Heartbeat()
