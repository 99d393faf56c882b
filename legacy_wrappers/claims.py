"""Slot claims in a worker: claim a slot, hold the lease while the run lasts, give the verdict.

The "at most one authoritative execution per slot" guard (invariant 4). The decisions are pure
(:mod:`bridge.core.claims`), the statements are :mod:`bridge.store.claims`; this module adds
time (an injected ``clock``) and the lease's life:

* **One winner.** The first claimant inserts the row; every other concurrent claimant gets
  :class:`~bridge.core.claims.AlreadyClaimed` (a value, not an exception) carrying the holder
  and the state, so the caller can record a suppressed duplicate.
* **Never while the lease is alive.** A ``running`` claim is taken over only once its lease
  expired, by a compare-and-swap; two would-be successors cannot both take it.
* **Retries stay in their lineage.** A ``failed`` or ``interrupted`` claim is re-claimed only
  by a :class:`~bridge.core.claims.RetryGrant` of the same lineage (e.g. the Celery task id,
  stable across retries and redeliveries of one message) below ``max_attempts``. A manual
  re-send of the slot is a new lineage: it gets ``AlreadyClaimed``.
* **Completion is fenced.** :meth:`Lease.renew` and :meth:`Lease.complete` change the row only
  while it is still ``running`` under this holder *and this attempt*; after a takeover the old
  holder's calls return ``False`` (the lease was lost) and change nothing.

Hosts must keep their clocks in sync (NTP) to well under the lease duration, since
``expires_at`` is written by one host and compared by another.

Every won lease says how it was won (:attr:`Lease.action`: ``None`` for a fresh claim, else the
:class:`~bridge.core.claims.ClaimAction`) and from which state (:attr:`Lease.took_over_from`),
so the task can settle a dead holder's run before it runs anything
(:mod:`legacy_wrappers.takeover`). ``with lease:`` renews it from the process's heartbeat
thread (:mod:`legacy_wrappers.heartbeat`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType

from bridge.core.claims import (
    AlreadyClaimed,
    ClaimAction,
    ClaimInfo,
    ClaimState,
    Holder,
    LeaseTerms,
    RetryGrant,
    claim_action,
)
from bridge.core.runs import RunRecord
from bridge.store.claims import ClaimStore
from bridge.store.db import Registry
from legacy_wrappers.heartbeat import HEARTBEAT

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_clock() -> datetime:
    return datetime.now(UTC)


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
        self.store = ClaimStore(registry)
        self.clock = clock
        self.terms = terms or LeaseTerms()
        self.takeover_limit = takeover_limit

    def get(self, job_id: str, slot: datetime) -> ClaimInfo | None:
        return self.store.get(job_id, slot)

    def claim(
        self,
        job_id: str,
        slot: datetime,
        holder: Holder,
        *,
        path: str = "celery",
        retry: RetryGrant | None = None,
    ) -> Lease | AlreadyClaimed:
        """Claim ``(job_id, slot)`` for ``holder``: a :class:`Lease` or ``AlreadyClaimed``."""
        for _ in range(5):
            now = self.clock()
            won = self.store.insert(job_id, slot, str(holder), path, now,
                                    now + self.terms.duration)
            if won is not None:
                return Lease(self, won)
            existing = self.store.get(job_id, slot)
            if existing is None:  # deleted between our insert and our read: try again
                continue
            now = self.clock()
            action = claim_action(existing, holder, now, retry, self.takeover_limit)
            if action is ClaimAction.REFUSE:
                return AlreadyClaimed(existing, live=existing.alive(now))
            taken = self.store.take(existing, str(holder), path, action, now,
                                    now + self.terms.duration)
            if taken is not None:
                return Lease(self, taken, action=action, took_over_from=existing)
        final = self.store.get(job_id, slot)
        assert final is not None, "claim row vanished repeatedly"
        return AlreadyClaimed(final, live=final.alive(self.clock()))

    def live_before(self, job_id: str, slot: datetime) -> ClaimInfo | None:
        """The latest earlier slot of ``job_id`` whose run still holds a live lease, if any."""
        return self.store.live_before(job_id, slot, self.clock())

    def abandon_expired(self) -> int:
        """Mark every running claim whose lease expired as ``abandoned``; returns how many."""
        return self.store.abandon_expired(self.clock())


class Lease:
    """A won claim. ``with lease:`` renews it from the heartbeat thread while the block runs.

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
        action: ClaimAction | None = None,
        took_over_from: ClaimInfo | None = None,
    ) -> None:
        self.claims = claims
        self.info = info
        self.action = action  # None: a fresh claim; else how an existing one was won
        self.took_over_from = took_over_from  # the claim as it was before we won it
        self.lost = threading.Event()
        self.completed: ClaimState | None = None
        self.beat_lock = threading.Lock()
        self.active = False
        self.next_beat = 0.0
        self.companions: list[Callable[[], object]] = []

    @property
    def attempts(self) -> int:
        return self.info.attempts

    @property
    def expires_at(self) -> datetime:
        return self.info.expires_at

    def renew(self) -> bool:
        """Push ``expires_at`` to now + duration; ``False`` (and :attr:`lost`) if not ours."""
        now = self.claims.clock()
        expires = now + self.claims.terms.duration
        if not self.claims.store.renew(self.info, now, expires):
            self.lost.set()
            return False
        self.info = replace(self.info, expires_at=expires)
        return True

    def defer(self) -> bool:
        """Park the won claim unrun (state ``deferred``, ``attempts`` kept): only a retry of the
        same lineage resumes it (``ClaimAction.RESUME``); anyone else is refused. ``False``
        (and :attr:`lost`) if the lease was no longer ours."""
        self.halt_heartbeat()
        now = self.claims.clock()
        won = self.claims.store.park(self.info, now)
        if won:
            self.completed = ClaimState.DEFERRED
            self.info = replace(self.info, state=ClaimState.DEFERRED, expires_at=now)
        else:
            self.lost.set()
        return won

    def complete(self, state: ClaimState, *, record: RunRecord | None = None,
                 record_key: str | None = None) -> bool:
        """Record the verdict; ``False`` if the lease was lost. ``record`` (the run's row:
        inserted, or overwriting the row keyed ``record_key``) is written in the same
        transaction, even when the lease was lost, so the caller's record is never dropped."""
        if state is ClaimState.RUNNING:
            raise ValueError("complete() needs a final state")
        self.halt_heartbeat()
        won = self.claims.store.close(self.info, state, self.claims.clock(), record=record,
                                      record_key=record_key)
        if won:
            self.completed = state
        else:
            self.lost.set()
        return won

    # --- heartbeat ----------------------------------------------------------------------------

    def __enter__(self) -> Lease:
        with self.beat_lock:
            self.active = True
            self.next_beat = time.monotonic() + self.claims.terms.renew_every.total_seconds()
        HEARTBEAT.add(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.halt_heartbeat()
        if exc is not None and self.completed is None and not self.lost.is_set():
            try:
                self.complete(ClaimState.FAILED)
            except Exception:  # the original exception matters more
                log.exception("could not mark claim %s failed", self.info.id)

    def halt_heartbeat(self) -> None:
        """Stop renewing; once this returns no renewal of this lease is in flight."""
        with self.beat_lock:
            self.active = False
        HEARTBEAT.discard(self)

    def beat(self) -> None:
        """One heartbeat (called by the process's heartbeat thread when due)."""
        with self.beat_lock:
            if not self.active:
                return
            self.next_beat = time.monotonic() + self.claims.terms.renew_every.total_seconds()
            try:
                if not self.renew():
                    log.warning("lease on %s %s lost", self.info.job_id, self.info.slot)
                    self.active = False
                    return
            except Exception:  # a transient database error: keep trying until expiry
                log.exception("lease renewal failed for claim %s", self.info.id)
                if self.claims.clock() >= self.info.expires_at:
                    log.warning("lease on %s %s ran out unrenewed", self.info.job_id,
                                self.info.slot)
                    self.lost.set()  # someone may take it over now: stop the work
                    self.active = False
                return
            for companion in list(self.companions):
                try:
                    companion()
                except Exception:
                    log.exception("companion renewal failed for claim %s", self.info.id)
