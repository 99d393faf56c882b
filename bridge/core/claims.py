"""Slot claims, the pure part: states, holders, snapshots and what a newcomer may do.

A claim is one row of ``claims`` per ``(job_id, slot)`` leased to one *holder* until
``expires_at`` (the SQL lives in :mod:`bridge.store.claims`, the lease's life in a worker in
:mod:`legacy_wrappers.claims`). This module decides, from values only:

* :class:`ClaimState`: ``running``; terminal ``succeeded`` and ``skipped`` (an overlap-forbid
  skip, sticky for the slot); ``failed`` and ``interrupted`` (re-claimable by the lineage's
  retry); ``abandoned`` (an expired lease declared dead, or released for a rerun: it may be
  taken over like any expired lease); ``deferred`` (won but parked unrun, e.g. while the job's
  group is at its ``max_concurrency``: only the same lineage resumes it, ``attempts``
  unchanged); ``lost`` (terminal: the holder died after its command started and before its
  outcome was recorded, ``on_lost=skip``; released only by ``bridge trigger --rerun``).
* :func:`claim_action`: what a newcomer may do with an existing claim (:class:`ClaimAction`):
  take over an expired or abandoned lease (below the takeover limit), resume its own
  lineage's deferred claim, re-claim its own lineage's failed claim as a retry
  (:class:`RetryGrant`, below ``max_attempts``), or nothing.
* :func:`verdict_for`: the claim state that closes a run with a given outcome status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

LINEAGE_SEPARATOR = "@"


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


class ClaimAction(StrEnum):
    TAKEOVER = "takeover"
    RECLAIM = "reclaim"
    RESUME = "resume"
    REFUSE = "refuse"


def claim_action(
    existing: ClaimInfo,
    holder: Holder,
    now: datetime,
    grant: RetryGrant | None,
    takeover_limit: int,
) -> ClaimAction:
    """What may a newcomer do with an existing claim?"""
    state = existing.state
    if state is ClaimState.RUNNING and existing.expires_at >= now:
        return ClaimAction.REFUSE
    if state is ClaimState.RUNNING or state is ClaimState.ABANDONED:
        return ClaimAction.TAKEOVER if existing.attempts < takeover_limit else ClaimAction.REFUSE
    if state is ClaimState.DEFERRED:  # parked unrun: its own lineage's retry picks it up
        return ClaimAction.RESUME if existing.lineage == holder.lineage else ClaimAction.REFUSE
    if (
        state in RETRYABLE_STATES
        and grant is not None
        and existing.lineage == holder.lineage
        and existing.attempts < grant.max_attempts
    ):
        return ClaimAction.RECLAIM
    return ClaimAction.REFUSE


def verdict_for(status: str) -> ClaimState:
    """The claim state closing a run whose outcome status (a run-row status) is ``status``."""
    if status == ClaimState.SUCCEEDED.value:
        return ClaimState.SUCCEEDED
    if status == ClaimState.INTERRUPTED.value:
        return ClaimState.INTERRUPTED
    return ClaimState.FAILED
