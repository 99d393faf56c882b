"""One path's records for one slot, read as a *side* (pure; the rules: :mod:`shadow.judge`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from bridge.core.runs import Path, Role, RunRecord, Status

__all__ = ["DECLINED", "STOOD_DOWN", "Side", "build_side", "fold_executions"]

STOOD_DOWN = frozenset({Status.STOOD_DOWN, Status.SUPPRESSED})
DECLINED = frozenset({Status.SKIPPED, Status.MISSED, Status.REJECTED})


class Side(NamedTuple):
    """One path's records for one slot, read (see the module docstring)."""

    path: Path
    records: tuple[RunRecord, ...]
    executions: tuple[RunRecord, ...]
    stood_down: RunRecord | None
    observed: RunRecord | None
    fire_time: datetime | None
    lost: RunRecord | None = None  # a run whose outcome is unknown, not superseded

    @property
    def present(self) -> bool:
        return (bool(self.executions) or self.stood_down is not None
                or self.observed is not None or self.lost is not None)

    @property
    def main(self) -> RunRecord | None:
        """The record that speaks for this side: the lost run, else the last execution, else
        stand-down, observe..."""
        if self.lost is not None:
            return self.lost
        if self.executions:
            return self.executions[-1]
        return self.stood_down or self.observed or (self.records[-1] if self.records else None)

    def lag(self, slot: datetime) -> float | None:
        return None if self.fire_time is None else (self.fire_time - slot).total_seconds()


def build_side(path: Path, records: Sequence[RunRecord]) -> Side:
    if len(records) == 1:  # the common case, kept cheap
        r = records[0]
        st = r.status
        return Side(path, (r,), (r,) if r.executed else (), r if st in STOOD_DOWN else None,
                    r if st is Status.OBSERVED and r.role is Role.OBSERVE else None,
                    None if st in DECLINED else r.fired_at or r.started_at,
                    r if st is Status.LOST else None)
    stood = next((r for r in records if r.status in STOOD_DOWN), None)
    observed = next(
        (r for r in records if r.role is Role.OBSERVE and r.status is Status.OBSERVED), None
    )
    times = [t for r in records if r.status not in DECLINED and (t := r.fire_time) is not None]
    executions = fold_executions(records)
    return Side(path, tuple(records), executions, stood, observed,
                min(times) if times else None, _lost(records, executions))


def _lost(records: Sequence[RunRecord],
          executions: Sequence[RunRecord]) -> RunRecord | None:
    """The newest ``lost`` record, unless a later attempt executed the slot after it."""
    lost = [r for r in records if r.status is Status.LOST]
    if not lost:
        return None
    last = lost[-1]
    if any(r.attempts > last.attempts for r in executions):
        return None
    return last


def fold_executions(records: Sequence[RunRecord]) -> tuple[RunRecord, ...]:
    """Distinct executions: start markers and retried attempts fold into their final record."""
    runs = [r for r in records if r.executed]
    if len(runs) <= 1:
        return tuple(runs)
    top = max(r.attempts for r in runs)
    out = []
    for r in runs:
        if r.status is Status.RUNNING and any(
            o is not r and o.status is not Status.RUNNING and o.host == r.host
            and o.attempts == r.attempts for o in runs
        ):
            continue
        if r.status in (Status.FAILED, Status.INTERRUPTED) and r.attempts < top:
            continue
        out.append(r)
    out.sort(key=lambda r: (r.attempts, r.finished_at or r.slot, r.row_id or 0))
    return tuple(out)
