"""The evaluator interface every dialect implements (pure: no clock, no I/O)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable


@runtime_checkable
class Evaluator(Protocol):
    """Fire times of one schedule.

    All instants are timezone-aware. Results are UTC datetimes with whole seconds (the *slot*).
    ``None`` means there is no such slot (the schedule ended, is exhausted, or never fires).
    """

    def next_after(self, t: datetime) -> datetime | None:
        """The first slot strictly after ``t``."""
        ...

    def prev_at_or_before(self, t: datetime) -> datetime | None:
        """The last slot at or before ``t``."""
        ...


def require_aware(t: datetime) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError("evaluators take timezone-aware datetimes only")
    return t


def slots_between(ev: Evaluator, after: datetime, until: datetime) -> Iterator[datetime]:
    """Slots ``s`` with ``after < s <= until``, in order."""
    t = ev.next_after(after)
    while t is not None and t <= until:
        yield t
        t = ev.next_after(t)


def take(ev: Evaluator, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` slots strictly after ``after``."""
    out: list[datetime] = []
    t: datetime | None = after
    while len(out) < count and t is not None:
        t = ev.next_after(t)
        if t is not None:
            out.append(t)
    return out


def to_utc_slot(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(microsecond=0)
