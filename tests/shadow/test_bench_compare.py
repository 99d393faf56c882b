"""``bench/compare.py`` checks its own workload (#16): realistic data (jobs imported before the
window, mostly matching, some late/missing/duplicate/mismatched) whose verdicts must come out
exactly as generated; a degenerate workload (no match, unexpected slots) fails loudly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import compare  # noqa: E402


def test_the_bench_refuses_the_degenerate_workload_of_jobs_imported_after_the_window() -> None:
    degenerate = {"slots": 0, "generated": {"match": 990, "late": 10},
                  "counts": {"match": 0, "unexpected_slot": 1000, "pending": 0}}
    problems = compare.check_workload(degenerate, jobs=1, slots=1000)
    assert any("expected slots" in p for p in problems)
    assert any("no slot matched" in p for p in problems)
    fine = {"slots": 1000, "generated": {"match": 990, "late": 10, "duplicate": 0},
            "counts": {"match": 990, "late": 10, "pending": 0, "before_import": 0}}
    assert compare.check_workload(fine, jobs=1, slots=1000) == []


@pytest.mark.integration
def test_a_small_run_compares_the_generated_verdicts_exactly(tmp_path: Path) -> None:
    out = tmp_path / "compare.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "compare.py"), "--jobs", "4", "--slots", "600",
         "--backends", "sqlite", "--workers", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    (result,) = json.loads(out.read_text())["results"]
    generated = result["generated"]
    assert result["slots"] == 2400 and sum(generated.values()) == 2400
    assert result["counts"]["match"] == generated["match"] > 2000
    assert result["counts"]["unexpected_slot"] == 0 and result["counts"]["before_import"] == 0
    assert sum(v for k, v in generated.items() if k != "match") > 0  # the noise is there
    assert result["peak_rss_mb"] >= result["own_peak_rss_mb"] > 0
