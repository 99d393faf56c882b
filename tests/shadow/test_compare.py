"""The comparator: one verdict per slot, every verdict, roles, DST, ignore rules (pure)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from bridge.core.authority import AuthorityEvent, Owner
from bridge.core.runs import Path, RunRecord
from shadow.compare import (
    Basis,
    IgnoreRuleError,
    Verdict,
    build_side,
    compare_job,
    judge_slot,
    parse_ignore,
    split_paths,
    summarize,
)
from shadow.judge import JudgingContext, quick_match
from tests.shadow.helpers import make_obs, make_spec, utc

AFTER, UNTIL = utc("2026-03-10T09:30:00Z"), utc("2026-03-10T12:30:00Z")  # slots 10:00 11:00 12:00
LATE_NOW = utc("2026-03-10T14:00:00Z")  # every slot is past its grace (60 s + 300 s)
SLOT = "2026-03-10T10:00:00Z"


def run(observations: list[RunRecord], *, now: datetime = LATE_NOW, history=(), **spec_kw):  # type: ignore[no-untyped-def]
    spec = make_spec(**spec_kw)
    legacy, celery = split_paths(observations)
    return compare_job(spec, AFTER, UNTIL, now, legacy, celery, history=history)


def at(verdicts, slot: str = SLOT):  # type: ignore[no-untyped-def]
    [v] = [v for v in verdicts if v.slot == utc(slot)]
    return v


L, C = "legacy", "celery"
FLIP = [AuthorityEvent("etc-crontab-1", None, Owner.LEGACY, "import", None, False, LATE_NOW),
        AuthorityEvent("etc-crontab-1", utc("2026-03-10T09:00:00Z"), Owner.CELERY, "ops", None,
                       False, LATE_NOW)]

CASES = [
    # (name, observations at SLOT, expected verdict, expected basis, words in the detail)
    ("same outcome on time", [make_obs(L, SLOT), make_obs(C, SLOT, lag=3)],
     Verdict.MATCH, Basis.OUTCOME, "same outcome"),
    ("observe record compared on timing only",
     [make_obs(L, SLOT), make_obs(C, SLOT, role="observe", status="observed", exit_status=None)],
     Verdict.MATCH, Basis.TIMING, "celery observed"),
    ("observe record never compared on outcome",
     [make_obs(L, SLOT, exit_status=1, status="failed"),
      make_obs(C, SLOT, role="observe", status="observed", exit_status=None)],
     Verdict.MATCH, Basis.TIMING, "timing only"),
    ("celery never fired", [make_obs(L, SLOT)], Verdict.MISSING_CELERY, Basis.NONE,
     "no celery firing"),
    ("legacy never fired", [make_obs(C, SLOT)], Verdict.MISSING_LEGACY, Basis.NONE,
     "no legacy firing"),
    ("neither path fired", [], Verdict.MISSING_LEGACY, Basis.NONE, "neither path"),
    ("celery only declined (misfire skip)",
     [make_obs(L, SLOT), make_obs(C, SLOT, role="scheduler", status="missed", exit_status=None)],
     Verdict.MISSING_CELERY, Basis.NONE, "scheduler/missed"),
    ("legacy late", [make_obs(L, SLOT, lag=120), make_obs(C, SLOT)], Verdict.LATE,
     Basis.OUTCOME, "legacy late by 120 s"),
    ("celery late", [make_obs(L, SLOT), make_obs(C, SLOT, lag=90)], Verdict.LATE,
     Basis.OUTCOME, "celery late by 90 s"),
    ("celery early", [make_obs(L, SLOT), make_obs(C, SLOT, lag=-75)], Verdict.LATE,
     Basis.OUTCOME, "early by 75 s"),
    ("lag inside tolerance", [make_obs(L, SLOT, lag=59), make_obs(C, SLOT, lag=60)],
     Verdict.MATCH, Basis.OUTCOME, ""),
    ("celery executed twice",
     [make_obs(L, SLOT), make_obs(C, SLOT, host="w1"), make_obs(C, SLOT, host="w2")],
     Verdict.DUPLICATE, Basis.NONE, "celery executed 2 times (w1, w2)"),
    ("both paths authoritative",
     [make_obs(L, SLOT), make_obs(C, SLOT, role="authoritative")],
     Verdict.DUPLICATE, Basis.NONE, "both paths executed the slot as authoritative"),
    ("a suppressed duplicate is not an execution",
     [make_obs(L, SLOT), make_obs(C, SLOT), make_obs(C, SLOT, role="suppressed",
                                                      status="suppressed", exit_status=None)],
     Verdict.MATCH, Basis.OUTCOME, ""),
    ("a retried attempt is one execution",
     [make_obs(L, SLOT), make_obs(C, SLOT, status="failed", exit_status=1, attempts=1),
      make_obs(C, SLOT, lag=40, attempts=2)],
     Verdict.MATCH, Basis.OUTCOME, ""),
    ("a start marker folds into its final record",
     [make_obs(L, SLOT), make_obs(C, SLOT, status="running", exit_status=None),
      make_obs(C, SLOT)],
     Verdict.MATCH, Basis.OUTCOME, ""),
    ("exit status differs", [make_obs(L, SLOT), make_obs(C, SLOT, exit_status=2, status="failed")],
     Verdict.OUTCOME_MISMATCH, Basis.OUTCOME, "exit status legacy=0 celery=2"),
    ("interrupted against succeeded (no exit status)",
     [make_obs(L, SLOT, exit_status=None),
      make_obs(C, SLOT, exit_status=None, status="interrupted")],
     Verdict.OUTCOME_MISMATCH, Basis.OUTCOME, "status legacy=succeeded celery=interrupted"),
    ("output digest ignored unless opted in",
     [make_obs(L, SLOT, output_digest="a" * 64), make_obs(C, SLOT, output_digest="b" * 64)],
     Verdict.MATCH, Basis.OUTCOME, ""),
    ("celery still running after its grace",
     [make_obs(L, SLOT), make_obs(C, SLOT, status="running", exit_status=None)],
     Verdict.PENDING, Basis.OUTCOME, "celery still running"),
    ("legacy stood down and celery only observed: nobody ran it",
     [make_obs(L, SLOT, role="stand-down", status="stood-down", exit_status=None),
      make_obs(C, SLOT, role="observe", status="observed", exit_status=None)],
     Verdict.MISSING_LEGACY, Basis.NONE, "no path executed the slot (owner legacy"),
]


@pytest.mark.parametrize(("name", "observations", "verdict", "basis", "words"), CASES,
                         ids=[c[0] for c in CASES])
def test_slot_verdicts(name, observations, verdict, basis, words) -> None:  # type: ignore[no-untyped-def]
    v = at(run(observations))
    assert (v.verdict, v.basis) == (verdict, basis), v.detail
    assert words in v.detail


def test_output_digest_compared_when_the_job_opts_in() -> None:
    obs = [make_obs(L, SLOT, output_digest="a" * 64), make_obs(C, SLOT, output_digest="b" * 64)]
    v = at(run(obs, fields=("exit_status", "output_digest")))
    assert v.verdict is Verdict.OUTCOME_MISMATCH and v.mismatched == ("output_digest",)
    assert v.legacy is obs[0] and v.celery is obs[1]


def test_after_a_flip_legacy_stands_down_and_celery_is_compared_on_timing() -> None:
    obs = [make_obs(L, SLOT, role="stand-down", status="stood-down", exit_status=None),
           make_obs(C, SLOT, role="authoritative")]
    v = at(run(obs, history=FLIP))
    assert (v.verdict, v.basis) == (Verdict.MATCH, Basis.TIMING)
    assert "legacy stood down" in v.detail
    # after the flip, a celery that only observed leaves the slot unexecuted: celery is missing
    obs[1] = make_obs(C, SLOT, role="observe", status="observed", exit_status=None)
    assert at(run(obs, history=FLIP)).verdict is Verdict.MISSING_CELERY
    # and a slot nobody recorded is missing on the owner's side
    v = at(run([], history=FLIP))
    assert v.verdict is Verdict.MISSING_CELERY and "owner celery" in v.detail


def test_a_missing_side_is_pending_inside_the_grace_window_and_missing_after() -> None:
    obs = [make_obs(L, "2026-03-10T12:00:00Z")]
    inside = utc("2026-03-10T12:05:59Z")  # grace = 60 s tolerance + 300 s run allowance
    assert at(run(obs, now=inside), "2026-03-10T12:00:00Z").verdict is Verdict.PENDING
    after = utc("2026-03-10T12:06:01Z")
    assert at(run(obs, now=after), "2026-03-10T12:00:00Z").verdict is Verdict.MISSING_CELERY
    # a slot not reached yet with no record at all is pending too, never missing
    assert at(run([], now=inside), "2026-03-10T12:00:00Z").verdict is Verdict.PENDING


def test_a_complete_slot_is_judged_even_inside_the_grace_window() -> None:
    obs = [make_obs(L, "2026-03-10T12:00:00Z"), make_obs(C, "2026-03-10T12:00:00Z", exit_status=3)]
    v = at(run(obs, now=utc("2026-03-10T12:00:30Z")), "2026-03-10T12:00:00Z")
    assert v.verdict is Verdict.OUTCOME_MISMATCH


def test_one_verdict_per_expected_slot_plus_unexpected_firings_in_slot_order() -> None:
    obs = [make_obs(p, s) for p in (L, C) for s in ("2026-03-10T10:00:00Z", "2026-03-10T11:00:00Z",
                                                   "2026-03-10T12:00:00Z")]
    obs.append(make_obs(C, "2026-03-10T10:30:00Z"))
    obs.append(make_obs(C, "2026-03-10T13:00:00Z"))  # outside the window: not reported
    verdicts = run(obs)
    assert [(v.slot.strftime("%H:%M"), v.verdict.value) for v in verdicts] == [
        ("10:00", "match"), ("10:30", "unexpected_slot"), ("11:00", "match"), ("12:00", "match")]
    assert "celery fired at an instant the schedule does not contain" in verdicts[1].detail


def test_dst_day_celery_crontab_translation_misses_0300_and_fires_unexpectedly_at_0330() -> None:
    """vixie `30 2 * * *` in New York: Debian runs the skipped 02:30 at 03:00 EDT on 2026-03-08;
    a translation through Celery's crontab fires at 03:30 EDT instead."""
    spec = make_spec("30 2 * * *", tz="America/New_York")
    after, until = utc("2026-03-07T00:00:00Z"), utc("2026-03-10T00:00:00Z")
    debian = ["2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]
    celery_crontab = ["2026-03-07T07:30:00Z", "2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z"]
    legacy = [make_obs(L, s) for s in debian]
    celery = [make_obs(C, s) for s in celery_crontab]
    verdicts = compare_job(spec, after, until, LATE_NOW, legacy, celery)
    assert [(v.slot.isoformat(), v.verdict.value) for v in verdicts] == [
        ("2026-03-07T07:30:00+00:00", "match"),
        ("2026-03-08T07:00:00+00:00", "missing_celery"),  # 03:00 EDT: Debian's catch-up run
        ("2026-03-08T07:30:00+00:00", "unexpected_slot"),  # 03:30 EDT: Celery crontab's firing
        ("2026-03-09T06:30:00+00:00", "match"),
    ]
    assert verdicts[2].celery is celery[1] and verdicts[2].legacy is None


# --- ignore rules -----------------------------------------------------------------------------

RULE = "verdict=outcome_mismatch exit_status legacy=1 celery=0"


def test_ignored_mismatch_keeps_its_verdict_and_is_counted_under_ignored() -> None:
    obs = [make_obs(L, "2026-03-10T10:00:00Z", exit_status=1, status="failed"),
           make_obs(C, "2026-03-10T10:00:00Z", exit_status=0),
           make_obs(L, "2026-03-10T11:00:00Z", exit_status=2, status="failed"),
           make_obs(C, "2026-03-10T11:00:00Z", exit_status=0),
           make_obs(L, "2026-03-10T12:00:00Z"), make_obs(C, "2026-03-10T12:00:00Z")]
    verdicts = run(obs, ignore=(RULE,))
    first, second, _third = verdicts
    assert first.verdict is Verdict.OUTCOME_MISMATCH and first.ignored_by == RULE
    assert not first.unresolved
    assert second.verdict is Verdict.OUTCOME_MISMATCH and second.ignored_by is None
    summary = summarize("etc-crontab-1", verdicts)
    assert summary.counts["ignored"] == 1 and summary.counts["outcome_mismatch"] == 1
    assert summary.counts["match"] == 1 and summary.ignored_rules == {RULE: 1}
    assert summary.unresolved == 1 and summary.last_mismatch is second


@pytest.mark.parametrize(("rule", "ignored"), [
    ("slots=2026-03-10T10:00:00Z..2026-03-10T10:59:59Z", ["10:00"]),
    ("slots=2026-03-10T11:00:00Z..", ["11:00", "12:00"]),
    ("slots=..2026-03-10T11:00:00", ["10:00", "11:00"]),  # naive = UTC, ends inclusive
    ("slots=2026-03-10", ["10:00", "11:00", "12:00"]),  # a date: the whole UTC day
    ("slots=2026-03-10T12:00:00+00:00", ["12:00"]),  # one instant
    ("verdict=missing_celery,late legacy=succeeded", ["10:00", "11:00", "12:00"]),
    ("verdict=late", []),
    ("celery=none", ["10:00", "11:00", "12:00"]),
    ("legacy=0 celery=0", []),
])
def test_ignore_rule_terms(rule: str, ignored: list[str]) -> None:
    obs = [make_obs(L, s) for s in ("2026-03-10T10:00:00Z", "2026-03-10T11:00:00Z",
                                     "2026-03-10T12:00:00Z")]
    verdicts = run(obs, ignore=(rule,))
    assert [v.slot.strftime("%H:%M") for v in verdicts if v.ignored_by == rule] == ignored
    assert all(v.verdict is Verdict.MISSING_CELERY for v in verdicts)


def test_lag_threshold_rule_ignores_small_lateness_only() -> None:
    rule = "verdict=late lag<=300"
    obs = [make_obs(L, "2026-03-10T10:00:00Z"), make_obs(C, "2026-03-10T10:00:00Z", lag=200),
           make_obs(L, "2026-03-10T11:00:00Z"), make_obs(C, "2026-03-10T11:00:00Z", lag=400)]
    a, b, _ = run(obs, ignore=(rule,))
    assert (a.verdict, a.ignored_by) == (Verdict.LATE, rule)
    assert (b.verdict, b.ignored_by) == (Verdict.LATE, None)


def test_first_matching_rule_wins_and_matches_are_never_ignored() -> None:
    rules = ("verdict=missing_celery", "slots=2026-03-10")
    obs = [make_obs(L, SLOT), make_obs(C, SLOT), make_obs(L, "2026-03-10T11:00:00Z")]
    verdicts = run(obs, ignore=rules)
    assert verdicts[0].verdict is Verdict.MATCH and verdicts[0].ignored_by is None
    assert verdicts[1].ignored_by == "verdict=missing_celery"
    assert verdicts[2].ignored_by == "slots=2026-03-10"  # missing legacy: only the 2nd rule


@pytest.mark.parametrize("bad", ["", "verdict=nope", "colour=red", "lag<=soon",
                                 "slots=yesterday..", "field=stdout"])
def test_bad_ignore_rules_are_refused_with_the_rule_named(bad: str) -> None:
    with pytest.raises(IgnoreRuleError, match="ignore rule"):
        parse_ignore(bad)


# --- the fast path is the general path --------------------------------------------------------


def _variants(path: str) -> list[RunRecord]:
    out = []
    roles = ["authoritative", "shadow", "observe", "stand-down", "suppressed", "scheduler"]
    statuses = ["succeeded", "failed", "observed", "stood-down", "running", "missed"]
    for role, status, exit_status, lag in itertools.product(roles, statuses, (0, 1, None),
                                                            (1.0, 61.0, None)):
        out.append(make_obs(path, SLOT, role=role, status=status, exit_status=exit_status,
                            lag=lag, output_digest="d" * 64))
    return out


def test_quick_path_agrees_with_the_general_rules_on_every_single_record_pair() -> None:
    ctx = JudgingContext(LATE_NOW, timedelta(seconds=360), 60.0, ("exit_status",),
                   lambda s: Owner.LEGACY)
    slot = utc(SLOT)
    checked = 0
    for lrec, crec in itertools.product(_variants(L), _variants(C)[::7]):
        quick = quick_match(slot, lrec, crec, ctx)
        if quick is None:
            continue
        full = judge_slot(slot, build_side(Path.LEGACY, [lrec]), build_side(Path.CELERY, [crec]),
                          ctx)
        assert quick == full, (lrec, crec)
        checked += 1
    assert checked > 50


def test_summary_counts_every_verdict_and_first_last_slots() -> None:
    verdicts = run([make_obs(L, SLOT), make_obs(C, SLOT), make_obs(L, "2026-03-10T11:00:00Z")])
    s = summarize("etc-crontab-1", verdicts)
    assert s.compared == 3
    assert {k: n for k, n in s.counts.items() if n} == {
        "match": 1, "missing_celery": 1, "missing_legacy": 1}
    assert s.first_slot == utc(SLOT) and s.last_slot == utc("2026-03-10T12:00:00Z")
    assert s.last_mismatch is not None and s.last_mismatch.verdict is Verdict.MISSING_LEGACY


def test_compare_takes_precomputed_expected_slots() -> None:
    spec = make_spec()
    expected = [datetime(2026, 3, 10, 10, tzinfo=UTC)]
    verdicts = compare_job(spec, AFTER, UNTIL, LATE_NOW, [], [], expected=expected)
    assert [v.slot for v in verdicts] == expected
