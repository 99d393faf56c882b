"""A consolidation group's legacy side: N hosts' records folded into one per slot (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bridge.core.runs import RunRecord
from shadow.group import annotate, fold_members, host_note
from shadow.verdicts import SlotVerdict, Verdict

S1 = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
S2 = S1 + timedelta(minutes=5)
HOSTS = {"web-01.x": "web-01", "web-02.x": "web-02", "web-03.x": "web-03"}


def ran(member: str, slot: datetime, status: str = "succeeded",
        role: str = "authoritative") -> RunRecord:
    return RunRecord(job_id=member, slot=slot, path="legacy", role=role,  # type: ignore[arg-type]
                     status=status, fired_at=slot, started_at=slot, finished_at=slot,  # type: ignore[arg-type]
                     exit_status=0 if status == "succeeded" else None, host=HOSTS.get(member))


def test_one_hosts_records_speak_for_a_slot_every_host_that_ran_is_named() -> None:
    records = [ran("web-02.x", S1), ran("web-01.x", S1), ran("web-03.x", S1),
               ran("web-03.x", S2), ran("web-01.x", S2, "stood-down", "stand-down"),
               ran("other", S1)]
    kept, executed, seen = fold_members(records, HOSTS)
    assert [(r.job_id, r.slot) for r in kept] == [("web-01.x", S1), ("web-03.x", S2)]
    assert executed == {S1: ("web-01", "web-02", "web-03"), S2: ("web-03",)}
    assert seen == {S1: ("web-01", "web-02", "web-03"), S2: ("web-01", "web-03")}


def test_a_slot_no_host_executed_keeps_the_first_hosts_records() -> None:
    kept, executed, _ = fold_members([ran("web-02.x", S1, "stood-down", "stand-down")], HOSTS)
    assert [r.job_id for r in kept] == ["web-02.x"] and executed == {S1: ()}


def test_verdict_details_name_the_hosts_and_the_silent_ones() -> None:
    v = SlotVerdict(S2, Verdict.MATCH, None, None)
    late = SlotVerdict(S1, Verdict.LATE, None, None, detail="celery 90 s late")
    out = annotate([late, v], HOSTS, {S1: ("web-01",), S2: ("web-01", "web-03")},
                   {S1: ("web-01",), S2: ("web-01", "web-03")})
    assert out[0].detail == ("legacy ran on 1 of 3 host(s): web-01; no record from web-02, "
                             "web-03; celery 90 s late")
    assert out[1].detail == "legacy ran on 2 of 3 host(s): web-01, web-03; no record from web-02"
    assert host_note(["a"], (), ()) == "legacy ran on 0 of 1 host(s); no record from a"
