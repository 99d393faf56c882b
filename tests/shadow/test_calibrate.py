"""Noise calibration: what varies between two legacy runs, and clean regexes that absorb it."""

from __future__ import annotations

import uuid
from datetime import timedelta

from bridge.core.runs import clean_text, digest_output
from shadow.calibrate import calibrate, legacy_runs
from shadow.compare import compare_job, split_paths
from tests.shadow.helpers import make_obs, make_spec, utc

T0 = utc("2026-03-01T03:00:00Z")


def output(i: int) -> str:
    """What a typical backup script prints: the same story with self-varying tokens."""
    started = T0 + timedelta(days=i, seconds=i * 7)
    return (
        f"{started.isoformat()} backup[{4000 + i * 13}]: starting run {uuid.UUID(int=i + 1)}\n"
        f"copied 42 files in {1.5 + i * 0.25:.2f}s\n"
        f"Sun Mar  {1 + i} 03:00:{i:02d} EST 2026 done (pid={900 + i})\n"
    )


def runs(n: int = 6, exits: list[int] | None = None) -> list:  # type: ignore[type-arg]
    exits = exits or [0] * n
    return [make_obs("legacy", T0 + timedelta(days=i), output_sample=output(i),
                     exit_status=exits[i], status="succeeded" if exits[i] == 0 else "failed")
            for i in range(n)]


def test_proposed_clean_regexes_make_consecutive_legacy_outputs_equal() -> None:
    cal = calibrate("backup", runs())
    assert cal.runs == 6 and cal.output.pairs == 5
    assert cal.output.differing == 5 and cal.output.rate == 1.0
    names = [p.name for p in cal.proposals if not p.broad]
    assert names[0] == "iso-timestamp"
    assert {"iso-timestamp", "uuid", "duration", "pid", "ctime-timestamp"} <= set(names)
    assert cal.output_differing_after == 0 and cal.residual == ()
    digests = {digest_output(output(i), cal.proposed_clean) for i in range(6)}
    assert len(digests) == 1
    assert "42 files" in clean_text(output(0), cal.proposed_clean)  # real content survives


def test_current_clean_rules_are_kept_and_extended() -> None:
    mine = r"\d{4}-\d{2}-\d{2}T\S+"
    cal = calibrate("backup", runs(), clean=(mine,))
    assert cal.proposed_clean[0] == mine
    assert "iso-timestamp" not in [p.name for p in cal.proposals]
    assert cal.output_differing_after == 0


def test_stable_output_needs_no_clean_rule() -> None:
    obs = [make_obs("legacy", T0 + timedelta(days=i), output_sample="ok\n") for i in range(4)]
    cal = calibrate("quiet", obs)
    assert cal.output.differing == 0 and cal.proposals == () and cal.proposed_clean == ()


def test_a_difference_no_detector_explains_is_left_as_residual() -> None:
    texts = ["rows: 10\nstatus green", "rows: 10\nstatus amber", "rows: 10\nstatus green"]
    obs = [make_obs("legacy", T0 + timedelta(days=i), output_sample=t) for i, t in enumerate(texts)]
    cal = calibrate("job", obs)
    assert cal.output_differing_after == 2
    assert cal.residual[0] == ("status green", "status amber")
    assert all(not p.broad for p in cal.proposals) or cal.proposed_clean == ()


def test_a_broad_number_rule_is_reported_but_never_added() -> None:
    texts = [f"processed {n} rows" for n in (10, 11, 12)]
    obs = [make_obs("legacy", T0 + timedelta(days=i), output_sample=t) for i, t in enumerate(texts)]
    cal = calibrate("job", obs)
    assert [(p.name, p.broad) for p in cal.proposals] == [("number", True)]
    assert cal.proposed_clean == ()


def test_exit_status_noise_explains_a_celery_exit_the_legacy_side_also_produces() -> None:
    legacy = runs(6, exits=[0, 1, 0, 0, 1, 0])
    cal = calibrate("flaky", legacy)
    assert (cal.exit_status.pairs, cal.exit_status.differing) == (5, 4)
    assert cal.exit_status.values == ("0", "1")
    spec = make_spec("0 3 * * *", job_id="etc-crontab-1")
    after, until = T0 - timedelta(seconds=1), T0 + timedelta(days=5)
    celery = [make_obs("celery", T0 + timedelta(days=i), exit_status=e, output_sample=output(i),
                       status="succeeded" if e == 0 else "failed")
              for i, e in enumerate([1, 1, 0, 2, 1, 0])]
    legacy_obs, _ = split_paths(legacy)
    verdicts = compare_job(spec, after, until, until + timedelta(days=1), legacy_obs, celery)
    cal = calibrate("flaky", legacy, mismatches=verdicts)
    judged = {m.slot[:10]: m.within_noise for m in cal.mismatches}
    assert judged == {"2026-03-01": True, "2026-03-04": False}  # exit 1 is noise, exit 2 is not
    assert "is not among legacy's own varying values" in cal.mismatches[1].why


def test_output_mismatch_within_noise_when_proposed_clean_equalises_samples() -> None:
    legacy = runs(4)
    spec = make_spec("0 3 * * *", fields=("exit_status", "output_digest"))
    after, until = T0 - timedelta(seconds=1), T0 + timedelta(days=3)
    same = output(9).replace(output(9).splitlines()[1], "copied 42 files in 0.01s")
    other = "copied 41 files in 1.00s\n"
    celery = [make_obs("celery", T0, output_sample=same, output_digest="c" * 64),
              make_obs("celery", T0 + timedelta(days=1), output_sample=other,
                       output_digest="d" * 64)]
    legacy = [make_obs("legacy", o.slot, output_sample=o.output_sample, output_digest="a" * 64)
              for o in legacy]
    verdicts = compare_job(spec, after, until, until + timedelta(days=1), legacy, celery)
    cal = calibrate("backup", legacy, mismatches=verdicts)
    assert [m.within_noise for m in cal.mismatches] == [True, False]
    assert cal.mismatches[0].why == "outputs equal under the proposed clean"


def test_only_final_legacy_executions_are_used() -> None:
    obs = [make_obs("legacy", T0, status="failed", exit_status=1, attempts=1),
           make_obs("legacy", T0, attempts=2, lag=30),
           make_obs("legacy", T0 + timedelta(days=1), role="stand-down", status="stood-down"),
           make_obs("celery", T0 + timedelta(days=1)),
           make_obs("legacy", T0 + timedelta(days=2), status="running", exit_status=None)]
    kept = legacy_runs(obs)
    assert [(o.slot, o.attempts) for o in kept] == [(T0, 2)]
