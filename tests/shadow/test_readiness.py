"""Readiness to flip: N consecutive matched slots, no unresolved mismatch, the right basis."""

from __future__ import annotations

from datetime import datetime, timedelta

from shadow.compare import Basis, SlotVerdict, Verdict
from shadow.readiness import ReadinessBasis, readiness, required_matches
from tests.shadow.helpers import make_spec, utc

T0 = utc("2026-03-10T00:00:00Z")


def v(hour: int, verdict: str = "match", *, basis: Basis = Basis.OUTCOME,
      ignored_by: str | None = None, minute: int = 0) -> SlotVerdict:
    return SlotVerdict(T0 + timedelta(hours=hour, minutes=minute), Verdict(verdict), None, None,
                       "", ignored_by, basis)


def slots(r) -> list[str]:  # type: ignore[no-untyped-def]
    return [s.strftime("%H:%M") for s in r.evidence]


def test_hourly_job_is_ready_after_three_matched_slots() -> None:
    r = readiness(make_spec(), [v(1, "missing_celery"), v(2), v(3), v(4)])
    assert r.ready and r.required == 3 and r.reasons == ()
    assert r.basis is ReadinessBasis.OUTCOME
    assert slots(r) == ["02:00", "03:00", "04:00"]


def test_two_matches_are_not_enough() -> None:
    r = readiness(make_spec(), [v(1), v(2)])
    assert not r.ready
    assert r.reasons == ("2 decided slot(s) in the window, 3 needed",)


def test_a_mismatch_among_the_last_slots_blocks() -> None:
    r = readiness(make_spec(), [v(1), v(2), v(3, "outcome_mismatch"), v(4)])
    assert not r.ready
    assert "1 of the last 3 slot(s) did not match (newest: outcome_mismatch at" in r.reasons[0]


def test_trailing_pending_slots_are_skipped() -> None:
    r = readiness(make_spec(), [v(1), v(2), v(3), v(4, "pending")])
    assert r.ready and slots(r) == ["01:00", "02:00", "03:00"]


def test_ignored_slots_neither_count_nor_block() -> None:
    ignored = v(3, "outcome_mismatch", ignored_by="verdict=outcome_mismatch")
    r = readiness(make_spec(), [v(1), v(2), ignored, v(4)])
    assert r.ready and slots(r) == ["01:00", "02:00", "04:00"]
    r = readiness(make_spec(), [ignored, v(4)])
    assert not r.ready  # an ignored slot proves nothing


def test_an_unexpected_firing_inside_the_window_blocks() -> None:
    r = readiness(make_spec(), [v(1), v(2), v(2, "unexpected_slot", minute=30), v(3)])
    assert not r.ready
    assert r.reasons == ("1 unresolved mismatch(es) in the window "
                         "(newest: unexpected_slot at 2026-03-10T02:30:00+00:00)",)


def test_an_old_mismatch_before_the_window_does_not_block() -> None:
    r = readiness(make_spec(), [v(0, "duplicate"), v(1, "unexpected_slot", minute=30), v(2),
                                v(3), v(4)])
    assert r.ready


def test_observe_only_job_is_ready_on_timing_alone_and_says_so() -> None:
    spec = make_spec(mode="observe")
    r = readiness(spec, [v(1, basis=Basis.TIMING), v(2, basis=Basis.TIMING),
                         v(3, basis=Basis.TIMING)])
    assert r.ready and r.basis is ReadinessBasis.TIMING_ONLY


def test_unmapped_job_is_timing_only() -> None:
    spec = make_spec(mapped=False, mode="dry-run")
    r = readiness(spec, [v(h, basis=Basis.TIMING) for h in (1, 2, 3)])
    assert r.ready and r.basis is ReadinessBasis.TIMING_ONLY


def test_dry_run_job_compared_on_timing_only_is_not_ready() -> None:
    r = readiness(make_spec(mode="dry-run"), [v(1), v(2, basis=Basis.TIMING), v(3)])
    assert not r.ready
    assert "1 of the last 3 slot(s) were compared on timing only" in r.reasons[0]


def test_jobs_firing_more_often_than_hourly_need_24_matches() -> None:
    spec = make_spec("*/5 * * * *")
    assert required_matches(spec, T0) == 24
    matched = [SlotVerdict(T0 + timedelta(minutes=5 * i), Verdict.MATCH, None, None, "", None,
                           Basis.OUTCOME) for i in range(23)]
    assert not readiness(spec, matched).ready
    more = [*matched, SlotVerdict(T0 + timedelta(minutes=5 * 23), Verdict.MATCH, None, None, "",
                                  None, Basis.OUTCOME)]
    assert readiness(spec, more).ready
    assert required_matches(make_spec("0 * * * *"), T0) == 3  # hourly is not more often
    assert required_matches(make_spec("0 3 * * *", tz="America/New_York"), T0) == 3


def test_ready_after_overrides_the_default() -> None:
    spec = make_spec("*/5 * * * *", ready_after=2)
    assert readiness(spec, [v(1), v(2)]).ready
    assert required_matches(make_spec(ready_after=10), datetime(2026, 1, 1).astimezone()) == 10


def test_a_flipped_job_is_not_asked_again() -> None:
    r = readiness(make_spec(), [v(1), v(2), v(3)], flipped=True)
    assert not r.ready and r.reasons == ("already flipped: celery owns the job",)
