"""What beat does with one due entry: the pure decision (no clock, no I/O).

:func:`due_slots` takes an entry's evaluator, its policy, its score (the slot it is due at), its
``last_slot`` watermark and "now", and returns which slots to publish, which to record as missed
(misfire) or skipped (paused), the new watermark and the next score. The scheduler only carries
this decision out (publish, record, one pipelined write-back).

Guarantees:

* **Watermark.** No slot at or before ``last_slot`` is ever returned, so a slot is published at
  most once by beats that respect the watermark (it is written together with the next score).
* **No slot skipped silently.** Every slot between the watermark (or the score, when there is no
  watermark) and now is returned in exactly one of ``publish``, ``missed`` or ``paused``; the next
  score is the first slot after the last one returned.
* **Bounded work.** At most ``limit`` slots are handled per call; when more are due, ``more`` is
  true and the next score is the first unhandled slot (still due), so the next tick continues.

Misfire (a slot is *late* when it is older than ``now - grace``; on-time slots always publish):

* ``skip``: late slots are recorded missed (cron: a missed minute is not run).
* ``fire_once``: a backlog that contains a late slot yields exactly one run, for the latest due
  slot (Quartz FIRE_ONCE_NOW); every other due slot is recorded missed. When the backlog is larger
  than ``limit`` it is worked off in pieces: the pieces before the last are all recorded missed.
* ``fire_all``: late slots inside the catch-up window (``now - catchup``) are published, older
  ones are recorded missed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.core.schedules.base import Evaluator
from bridge.core.spec import MisfirePolicy

SLOT_LIMIT = 1000
ONE_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class EntryPolicy:
    """The per-entry knobs beat needs (the ``bridge`` section of an entry's definition)."""

    misfire: MisfirePolicy = MisfirePolicy.SKIP
    grace_seconds: int = 60
    catchup_seconds: int = 3600
    jitter_seconds: int = 0
    paused: bool = False

    @classmethod
    def from_definition(cls, section: Mapping[str, Any]) -> EntryPolicy:
        """Read ``definition["bridge"]`` (see
        :func:`bridge.adapters.redbeat_entries.encode_definition`)."""
        return cls(
            misfire=MisfirePolicy(section.get("misfire", MisfirePolicy.SKIP.value)),
            grace_seconds=max(0, int(section.get("grace", 60))),
            catchup_seconds=max(0, int(section.get("catchup", 3600))),
            jitter_seconds=max(0, int(section.get("jitter", 0))),
            paused=bool(section.get("paused", False)),
        )


@dataclass(frozen=True)
class DueSlots:
    publish: tuple[datetime, ...]
    missed: tuple[datetime, ...]
    paused: tuple[datetime, ...]
    watermark: datetime | None  # the new last_slot (unchanged when nothing was handled)
    next_slot: datetime | None  # None: the schedule has no further slot
    more: bool = False  # next_slot is still due (the backlog exceeded the limit)

    @property
    def score(self) -> float:
        """The entry's next zset score: the next slot's UTC epoch, -1 when the schedule ended."""
        return -1.0 if self.next_slot is None else self.next_slot.timestamp()


def epoch_to_slot(value: float) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def slot_iso(slot: datetime) -> str:
    """The slot as it travels in the message: ``2026-03-08T07:00:00Z``."""
    return slot.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def jitter_offset(job_id: str, slot: datetime, jitter_seconds: int) -> float:
    """A deterministic delay in ``[0, jitter_seconds)`` for ``(job_id, slot)``, ms resolution.

    The same job and slot always get the same offset (on any beat, after any restart); different
    slots of a job are spread over the interval.
    """
    if jitter_seconds <= 0:
        return 0.0
    digest = hashlib.sha256(f"{job_id}|{slot_iso(slot)}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") % (jitter_seconds * 1000)) / 1000.0


def _lower_bound(score: datetime | None, last_slot: datetime | None) -> datetime | None:
    """Slots strictly after this are candidates: at/after the score, after the watermark."""
    bounds = [b for b in (score - ONE_SECOND if score else None, last_slot) if b is not None]
    return max(bounds) if bounds else None


def _collect_due(
    ev: Evaluator, after: datetime, now: datetime, limit: int
) -> tuple[list[datetime], datetime | None]:
    """Up to ``limit`` slots in ``(after, now]`` and the first slot after those."""
    due: list[datetime] = []
    t = ev.next_after(after)
    while t is not None and t <= now and len(due) < limit:
        due.append(t)
        t = ev.next_after(t)
    return due, t


def _classify(
    due: list[datetime], policy: EntryPolicy, now: datetime, complete: bool
) -> tuple[list[datetime], list[datetime]]:
    """Split due slots into (publish, missed) by the misfire policy."""
    late_cut = now - timedelta(seconds=policy.grace_seconds)
    late = [s for s in due if s < late_cut]
    if not late:
        return list(due), []
    if policy.misfire is MisfirePolicy.SKIP:
        return [s for s in due if s >= late_cut], late
    if policy.misfire is MisfirePolicy.FIRE_ALL:
        window_cut = now - timedelta(seconds=policy.catchup_seconds)
        return [s for s in due if s >= window_cut], [s for s in due if s < window_cut]
    if not complete:  # fire_once, and the latest due slot lies beyond this piece
        return [], list(due)
    return [due[-1]], list(due[:-1])


def due_slots(
    ev: Evaluator,
    policy: EntryPolicy,
    *,
    score: datetime | None,
    last_slot: datetime | None,
    now: datetime,
    limit: int = SLOT_LIMIT,
) -> DueSlots:
    """Decide what to do with an entry that is due (``score <= now``); see the module doc.

    ``score`` is the slot the entry was scored at (None when unknown, then ``last_slot`` must be
    set); slots before it are never considered, so a changed schedule does not replay its past.
    """
    after = _lower_bound(score, last_slot)
    if after is None:
        nxt = ev.next_after(now)
        return DueSlots((), (), (), None, nxt)
    due, nxt = _collect_due(ev, after, now, limit)
    more = nxt is not None and nxt <= now
    watermark = due[-1] if due else last_slot
    if policy.paused:
        return DueSlots((), (), tuple(due), watermark, nxt, more)
    publish, missed = _classify(due, policy, now, complete=not more)
    return DueSlots(tuple(publish), tuple(missed), (), watermark, nxt, more)
