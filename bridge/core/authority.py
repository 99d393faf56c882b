"""Who owns a slot: a pure function of a job's append-only authority history.

The history is a list of events ``(effective_slot, owner)`` in the order they were appended; the
first (written at import) is ``legacy`` from the beginning of time (``effective_slot=None``). The
owner of slot ``S`` is the owner named by the last event whose effective slot is at or before
``S``. Flips only ever take effect in the future, so any process that asks "who owns slot S of
job J?" gets the same answer whenever it asks. A job with no history is legacy-owned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Owner(StrEnum):
    LEGACY = "legacy"
    CELERY = "celery"


@dataclass(frozen=True)
class AuthorityEvent:
    job_id: str
    effective_slot: datetime | None  # None = from the beginning of time
    owner: Owner
    actor: str
    reason: str | None
    forced: bool
    at: datetime


def owner_at(history: Sequence[AuthorityEvent], slot: datetime) -> Owner:
    owner = Owner.LEGACY
    for event in history:
        if event.effective_slot is None or event.effective_slot <= slot:
            owner = event.owner
    return owner


def last_flip(history: Sequence[AuthorityEvent]) -> AuthorityEvent | None:
    """The newest event that changed the owner (None while the job never left legacy)."""
    flips = [e for e in history if e.effective_slot is not None]
    return flips[-1] if flips else None
