"""What beat makes of a due entry, before any I/O: its definition parsed and compiled (cached
per definition text; entries sharing a schedule share one evaluator), and a chunk's decisions
and new metas computed once per distinct input (:class:`PlanMemo`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from bridge.adapters.beat_store import parse_meta
from bridge.adapters.redbeat_entries import decode_schedule
from bridge.core.dispatch import DueSlots, EntryPolicy, due_slots, epoch_to_slot
from bridge.core.schedules import Evaluator, compile_schedule

META_JSON = json.JSONEncoder(separators=(",", ":"))  # one encoder for every entry's meta


@dataclass(frozen=True)
class ParsedEntry:
    job_id: str
    queue: str
    policy: EntryPolicy
    evaluator: Evaluator


class MemoEvaluator:
    """A dialect evaluator with its recent answers remembered.

    Evaluators are pure (``bridge.core.schedules`` reads no clock and does no I/O), so an answer
    can be
    reused: when thousands of entries sharing a schedule are due in the same second (the top of
    the hour in a migrated crontab), they all ask the same two questions.
    """

    __slots__ = ("_next", "_prev", "ev")
    size = 1024

    def __init__(self, ev: Evaluator) -> None:
        self.ev = ev
        self._next: dict[datetime, datetime | None] = {}
        self._prev: dict[datetime, datetime | None] = {}

    def next_after(self, t: datetime) -> datetime | None:
        return self._ask(self._next, self.ev.next_after, t)

    def prev_at_or_before(self, t: datetime) -> datetime | None:
        return self._ask(self._prev, self.ev.prev_at_or_before, t)

    def _ask(self, memo: dict[datetime, datetime | None], fn: Any, t: datetime) -> datetime | None:
        if t in memo:
            return memo[t]
        if len(memo) >= self.size:
            memo.clear()
        answer: datetime | None = fn(t)
        memo[t] = answer
        return answer


@lru_cache(maxsize=20_000)
def compiled(schedule: tuple[tuple[str, Any], ...]) -> Evaluator:
    """One evaluator per distinct schedule (jobs sharing a schedule share the evaluator)."""
    return MemoEvaluator(compile_schedule(decode_schedule(dict(schedule))))


@lru_cache(maxsize=20_000)
def parse_definition(text: str, default_queue: str) -> ParsedEntry | None:
    """A bridge entry's definition, compiled (cached per definition text); None: not a bridge
    entry (a stock RedBeat entry). Raises on anything unusable."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("definition is not a JSON object")
    schedule = data.get("schedule")
    typed = isinstance(schedule, dict) and schedule.get("__type__") == "bridge"
    if "bridge" not in data and not typed:
        return None
    if not isinstance(schedule, dict):
        raise ValueError("bridge entry without a schedule object")
    evaluator = compiled(tuple(sorted(schedule.items())))
    options = data.get("options") or {}
    return ParsedEntry(
        job_id=str(data["name"]),
        queue=str(options.get("queue") or default_queue),
        policy=EntryPolicy.from_definition(data.get("bridge") or {}),
        evaluator=evaluator,
    )


class PlanMemo:
    """One chunk's answers, by their inputs. Entries due together mostly share a schedule, a
    policy, a score and a watermark (thousands of jobs at the top of the hour): their meta is
    parsed once, :func:`~bridge.core.dispatch.due_slots` (pure) runs once, their new meta is
    encoded once."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.metas: dict[str | None, tuple[dict[str, Any], datetime | None]] = {}
        self.decisions: dict[tuple[Any, ...], DueSlots] = {}
        self.new_metas: dict[tuple[Any, ...], str] = {}

    def decide(self, parsed: ParsedEntry, meta_text: str | None,
               score: float) -> tuple[dict[str, Any], DueSlots, tuple[Any, ...]]:
        """The entry's meta, its decision, and the decision's inputs (a key)."""
        known = self.metas.get(meta_text)
        if known is None:
            meta = parse_meta(meta_text)
            known = self.metas[meta_text] = (meta, last_slot_of(meta))
        meta, last_slot = known
        asked = (parsed.evaluator, parsed.policy, score, last_slot)
        decision = self.decisions.get(asked)
        if decision is None:
            decision = self.decisions[asked] = due_slots(
                parsed.evaluator, parsed.policy, score=epoch_to_slot(score), last_slot=last_slot,
                now=self.now)
        return meta, decision, asked

    def new_meta(self, meta_text: str | None, meta: dict[str, Any], decision: DueSlots,
                 asked: tuple[Any, ...], now: float) -> str:
        key = (meta_text, asked)
        text = self.new_metas.get(key)
        if text is None:
            text = self.new_metas[key] = new_meta(meta, decision, now)
        return text


def last_slot_of(meta: dict[str, Any]) -> datetime | None:
    value = meta.get("last_slot")
    if value is None:
        return None
    return epoch_to_slot(float(value))


def new_meta(meta: dict[str, Any], decision: DueSlots, now: float) -> str:
    out = dict(meta)
    if decision.watermark is not None:
        out["last_slot"] = decision.watermark.timestamp()
    out.setdefault("last_slot", None)
    if decision.publish:
        out["last_run_at"] = now
        out["total_run_count"] = int(out.get("total_run_count") or 0) + len(decision.publish)
    return META_JSON.encode(out)
