"""Beat's planning memo: entries with the same inputs share one decision and one new meta;
entries whose watermark differs get their own (pure, no services)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bridge.adapters.redbeat_entries import encode_definition
from bridge.beat.planning import ParsedEntry, PlanMemo, parse_definition
from bridge.core.spec import CommandHandler, Dialect, JobSpec, ScheduleSpec

NOW = datetime(2026, 3, 8, 7, 0, 20, tzinfo=UTC)
SLOT = datetime(2026, 3, 8, 7, 0, tzinfo=UTC).timestamp()


def entry(job_id: str) -> ParsedEntry:
    spec = JobSpec(id=job_id, schedule=ScheduleSpec(dialect=Dialect.VIXIE, expression="* * * * *"),
                   handler=CommandHandler(command="true"))
    parsed = parse_definition(encode_definition(spec, "h"), "bridge")
    assert parsed is not None
    return parsed


def meta(last_slot: float) -> str:
    return json.dumps({"last_slot": last_slot})


def test_entries_due_together_share_one_decision_and_one_new_meta() -> None:
    memo = PlanMemo(NOW)
    a, b = entry("job-a"), entry("job-b")
    _, first, asked_a = memo.decide(a, meta(SLOT - 60), SLOT)
    _, second, asked_b = memo.decide(b, meta(SLOT - 60), SLOT)
    assert first is second and asked_a == asked_b
    assert [s.timestamp() for s in first.publish] == [SLOT]
    text = memo.new_meta(meta(SLOT - 60), {"last_slot": SLOT - 60}, first, asked_a, NOW.timestamp())
    assert memo.new_metas == {(meta(SLOT - 60), asked_a): text}
    assert json.loads(text)["last_slot"] == SLOT and json.loads(text)["total_run_count"] == 1


def test_an_entry_whose_watermark_already_holds_the_slot_gets_its_own_decision() -> None:
    memo = PlanMemo(NOW)
    _, fresh, _ = memo.decide(entry("job-a"), meta(SLOT - 60), SLOT)
    _, done, _ = memo.decide(entry("job-b"), meta(SLOT), SLOT)
    assert fresh is not done
    assert len(fresh.publish) == 1 and done.publish == ()  # the watermark: never twice
