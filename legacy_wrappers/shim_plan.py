"""What the shim does with one firing (pure): its slot, who owns it, run / stand down / skip.

:func:`plan_firing` is the rule (guarantees: :mod:`legacy_wrappers.shim`); :class:`EventTimeline`
answers "who owns this slot" from the registry's authority rows exactly as
:func:`bridge.core.authority.owner_at` does, and :class:`CachedSlots` answers "the latest slot at
or before now" from the shim's slot cache exactly as the job's evaluator does. Standard library
only (``datetime``): this module is on the shim's hot path.
"""

from __future__ import annotations

import os

from bridge.store.bare import UTC, datetime  # the C classes (see bridge.store.bare)

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the hot path
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Protocol

    class SlotSource(Protocol):
        def prev_at_or_before(self, t: datetime) -> datetime | None: ...

    class OwnerSource(Protocol):
        def owner_at(self, slot: datetime) -> str: ...

TOLERANCE_SECONDS = 90
DEFAULT_OWNER = "legacy"


class FiringPlan:
    """What to do with this firing: ``run`` (claimed when ``claim``), ``stand-down`` (Celery owns
    the slot) or ``skip`` (the job is paused: `bridge pause`)."""

    __slots__ = ("action", "claim", "note", "slot")

    def __init__(self, action: str, slot: datetime, claim: bool = False,
                 note: str | None = None) -> None:
        self.action, self.slot, self.claim, self.note = action, slot, claim, note

    def __repr__(self) -> str:
        return (f"FiringPlan(action={self.action!r}, slot={self.slot!r}, claim={self.claim!r}, "
                f"note={self.note!r})")


def minute_of(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(second=0, microsecond=0)


def plan_firing(
    now: datetime,
    evaluator: SlotSource | None,
    authority: OwnerSource | None,
    *,
    reachable: bool,
    tolerance: float = TOLERANCE_SECONDS,
    unknown: str = "schedule unknown",
    paused: str | None = None,
) -> FiringPlan:
    """Slot, owner and action for a firing at ``now`` (rules: :mod:`legacy_wrappers.shim`)."""
    if evaluator is None:
        return FiringPlan("run", minute_of(now), note=f"{unknown}: slot estimated from the clock")
    slot = evaluator.prev_at_or_before(now)
    if slot is None or (now - slot).total_seconds() > tolerance:
        latest = "none" if slot is None else slot.isoformat()
        note = f"no slot within tolerance ({tolerance:g} s; latest slot {latest})"
        return FiringPlan("run", minute_of(now), note=note)
    owner = authority.owner_at(slot) if authority is not None else DEFAULT_OWNER
    if owner == "celery":
        return FiringPlan("stand-down", slot)
    if paused is not None:
        return FiringPlan("skip", slot, note=f"paused: {paused or 'no reason given'}")
    unsure = None if authority else "authority unknown (no cached authority file): ran as legacy"
    return FiringPlan("run", slot, claim=reachable, note=unsure)


def firing_key(job_id: str, slot: datetime, host: str, fired: datetime) -> str:
    """Unique per firing (two hosts firing one slot get two records), fixed before the first
    write attempt (a record that reached the registry and the spool is stored once)."""
    from legacy_wrappers.shim_os import sha256

    seed = f"{job_id}\0{slot.isoformat()}\0{host}\0{os.getpid()}\0{fired.isoformat()}"
    return "legacy:" + sha256(seed.encode()).hexdigest()[:40]


class EventTimeline:
    """A job's authority rows ``(effective slot or None, owner)`` in append order, read with the
    registry's rule: the last row effective at or before the slot (or effective at once) wins;
    legacy when there is none (:func:`bridge.core.authority.owner_at`)."""

    __slots__ = ("events",)

    def __init__(self, events: Sequence[tuple[datetime | None, str]]) -> None:
        self.events = events

    def owner_at(self, slot: datetime) -> str:
        owner = DEFAULT_OWNER
        for when, who in self.events:
            if when is None or when <= slot:
                owner = who
        return owner


class CachedSlots:
    """The slot a :class:`legacy_wrappers.shim_cache.JobCache` holds for ``now`` (built only
    after the cache said it can answer)."""

    __slots__ = ("slot",)

    def __init__(self, slot: int | None) -> None:
        self.slot = slot

    def prev_at_or_before(self, t: datetime) -> datetime | None:
        return None if self.slot is None else datetime.fromtimestamp(self.slot, UTC)
