"""The quartz dialect against Quartz 2.3.2 itself: golden vectors, invalid list, live sample.

Vectors come from ``tests/oracle/gen_quartz_vectors.py`` (Quartz's own ``CronExpression`` and
``CronTriggerImpl`` in a JVM); zero differences are allowed.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import sys
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bridge.core.errors import ScheduleError
from bridge.core.schedules import compile_schedule
from bridge.core.schedules.quartz import validate
from bridge.core.spec import Dialect, ScheduleSpec

TESTS = Path(__file__).resolve().parents[1]
VECTORS = TESTS / "vectors" / "quartz_vectors.jsonl.gz"
INVALID = TESTS / "vectors" / "quartz_invalid.json"
sys.path.insert(0, str(TESTS / "oracle"))

import gen_quartz_vectors as gen  # noqa: E402
import quartz_oracle  # noqa: E402

Record = dict[str, Any]


@lru_cache(maxsize=1)
def vectors() -> tuple[Record, ...]:
    with gzip.open(VECTORS, "rt") as f:
        return tuple(json.loads(line) for line in f)


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def bridge_slots(rec: Record, n: int = gen.SLOTS) -> tuple[list[str], bool]:
    """(the bridge's fire times as vector strings, whether it ran out before ``n``)."""
    spec = ScheduleSpec(
        dialect=Dialect.QUARTZ,
        timezone=rec["tz"],
        expression=rec["expr"],
        start=_time(rec.get("trigger_start")),
        end=_time(rec.get("trigger_end")),
    )
    ev = compile_schedule(spec)
    t = _time(rec["start"])
    out: list[str] = []
    while len(out) < n and t is not None:
        t = ev.next_after(t)
        if t is not None:
            out.append(gen.iso(t))
    return out, len(out) < n


def _local(slot: str | None, tz: str) -> str:
    if slot is None:
        return "-"
    return str(_time(slot).astimezone(ZoneInfo(tz)))  # type: ignore[union-attr]


def describe(rec: Record, got: list[str], got_end: bool) -> str:
    want: list[str] = rec["slots"]
    lines = [f"{rec['expr']!r} in {rec['tz']} after {rec['start']}"]
    if "trigger_start" in rec:
        lines[0] += f" (trigger start {rec['trigger_start']}, end {rec['trigger_end']})"
    for i in range(max(len(want), len(got))):
        w = want[i] if i < len(want) else None
        g = got[i] if i < len(got) else None
        mark = "" if w == g else "   <-- differs"
        lines.append(f"    quartz {_local(w, rec['tz']):27} bridge {_local(g, rec['tz']):27}{mark}")
    if rec.get("end", False) != got_end:
        lines.append(f"    quartz ended: {rec.get('end', False)}, bridge ended: {got_end}")
    return "\n".join(lines)


def diff_report(records: list[Record], limit: int = 8) -> list[str]:
    report = []
    for rec in records:
        got, got_end = bridge_slots(rec)
        if got != rec["slots"] or got_end != rec.get("end", False):
            report.append(describe(rec, got, got_end))
    if len(report) > limit:
        return [*report[:limit], f"... and {len(report) - limit} more"]
    return report


def test_vectors_cover_the_zones_and_every_transition() -> None:
    recs = vectors()
    zones = {r["tz"] for r in recs}
    assert len(recs) >= 5000
    assert len(zones) >= 8
    assert {"Australia/Lord_Howe", "Asia/Kolkata", "America/Santiago", "UTC"} <= zones
    starts = {(r["tz"], r["start"]) for r in recs}
    for tz in ("America/New_York", "Australia/Lord_Howe", "Pacific/Auckland"):
        for at in gen.transitions(tz):
            for before in (timedelta(hours=2), timedelta(minutes=10)):
                assert (tz, gen.iso(at - before)) in starts


def test_bridge_matches_every_quartz_vector() -> None:
    report = diff_report(list(vectors()))
    assert not report, f"{len(report)} vectors differ from Quartz:\n" + "\n".join(report)


@lru_cache(maxsize=1)
def invalid() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(INVALID.read_text())
    return data


def _accepted(expression: str) -> str | None:
    try:
        validate(expression)
        if expression.strip():
            compile_schedule(ScheduleSpec(dialect=Dialect.QUARTZ, expression=expression))
    except ScheduleError as e:
        assert str(e).strip(), f"empty message for {expression!r}"
        return None
    return expression


def test_every_expression_quartz_rejects_raises_schedule_error() -> None:
    rejected = invalid()["rejected_by_quartz"]
    assert len(rejected) >= 50
    accepted = [e["expr"] for e in rejected if _accepted(e["expr"]) is not None]
    assert not accepted, f"Quartz rejects these, the bridge accepted them: {accepted}"


def test_expressions_quartz_misreads_are_refused() -> None:
    refused = invalid()["refused_by_bridge"]
    assert refused
    accepted = [e["expr"] for e in refused if _accepted(e["expr"]) is not None]
    assert not accepted, f"the bridge should refuse these (see quartz.py): {accepted}"


# ----------------------------------------------------------------------------------------------
# Live: ask Quartz again, in this JVM, now
# ----------------------------------------------------------------------------------------------

LIVE_SEED = int(os.environ.get("BRIDGE_QUARTZ_SAMPLE_SEED", "7"))
HORIZON = "2100"  # Quartz's own search horizon moves with the JVM's clock: compare before 2100


def _fresh_cases(rng: random.Random, count: int) -> list[quartz_oracle.Case]:
    cases: list[quartz_oracle.Case] = []
    while len(cases) < count:
        expr = gen.random_expression(rng)
        if _accepted(expr) is None:
            continue
        tz = rng.choice(gen.ZONES)
        moments = gen.transitions(tz) or [datetime(2027, 6, 1, tzinfo=UTC)]
        start = rng.choice(moments) - timedelta(minutes=rng.choice((1, 10, 30, 61, 120, 1500)))
        cases.append(quartz_oracle.Case(expr, tz, gen.ms(start), gen.SLOTS))
    return cases


def _case(rec: Record) -> quartz_oracle.Case:
    def millis(key: str) -> int | None:
        value = _time(rec.get(key))
        return None if value is None else gen.ms(value)

    return quartz_oracle.Case(
        rec["expr"],
        rec["tz"],
        millis("start") or 0,
        gen.SLOTS,
        "T" if "trigger_start" in rec else "E",
        millis("trigger_start"),
        millis("trigger_end"),
    )


def _before_horizon(slots: list[str]) -> list[str]:
    return [s for s in slots if s < HORIZON]


@pytest.mark.integration
@pytest.mark.java
def test_live_sample_matches_quartz_now() -> None:
    reason = quartz_oracle.unavailable_reason()
    if reason:
        pytest.skip(f"Quartz oracle not available: {reason}")
    rng = random.Random(LIVE_SEED)
    sample = rng.sample(vectors(), 150)
    cases = [_case(r) for r in sample] + _fresh_cases(rng, 150)
    live = [gen.record(c, a) for c, a in zip(cases, quartz_oracle.run(cases), strict=True)]
    stale = [
        r["expr"]
        for r, now in zip(sample, live, strict=False)
        if _before_horizon(r["slots"]) != _before_horizon(now["slots"])
    ]
    assert not stale, f"Quartz now disagrees with the stored vectors (regenerate?): {stale}"
    report = []
    for rec in live:
        got, got_end = bridge_slots(rec)
        if _before_horizon(got) != _before_horizon(rec["slots"]):
            report.append(describe(rec, got, got_end))
    assert not report, f"{len(report)} live cases differ from Quartz:\n" + "\n".join(report[:8])
