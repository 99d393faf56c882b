"""The vixie/cronie evaluator against golden vectors computed by cronsim (the Debian-cron oracle).

``tests/vectors/cron_vectors.jsonl.gz`` is produced by ``tests/oracle/gen_cron_vectors.py``
(seeded, reproducible); the second test draws fresh cases from the same generator and asks cronsim
live, so a change in cronsim or in the zone database shows up here too.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
import sys
from collections.abc import Iterator
from datetime import datetime
from itertools import zip_longest
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bridge.core.errors import ScheduleError
from bridge.core.schedules import compile_schedule, take
from bridge.core.spec import Dialect, ScheduleSpec

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors" / "cron_vectors.jsonl.gz"
INVALID = ROOT / "tests" / "vectors" / "cron_invalid.json"


def _generator() -> ModuleType:
    path = ROOT / "tests" / "oracle" / "gen_cron_vectors.py"
    spec = importlib.util.spec_from_file_location("gen_cron_vectors", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _cases() -> Iterator[dict[str, Any]]:
    with gzip.open(VECTORS, "rt", encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def _evaluate(case: dict[str, Any], dialect: Dialect = Dialect.VIXIE) -> list[str]:
    spec = ScheduleSpec(dialect=dialect, timezone=case["tz"], expression=case["expr"])
    ev = compile_schedule(spec)
    start = datetime.fromisoformat(case["start"])
    return [s.isoformat() for s in take(ev, start, len(case["slots"]))]


def _report(failures: list[tuple[dict[str, Any], list[str]]], total: int) -> str:
    lines = [f"{len(failures)} of {total} vectors differ; first ones:"]
    for case, got in failures[:5]:
        lines.append(f"  {case['expr']!r} in {case['tz']} after {case['start']}:")
        for i, (want, have) in enumerate(zip_longest(case["slots"], got)):
            if want != have:
                lines.append(f"    slot {i}: cronsim {want}  bridge {have}")
                break
    return "\n".join(lines)


def test_vectors_cover_many_zones_and_cases() -> None:
    cases = list(_cases())
    assert len(cases) >= 5000
    assert len({c["tz"] for c in cases}) >= 8
    assert all(len(c["slots"]) == 12 for c in cases)


def test_every_golden_vector_matches_cronsim() -> None:
    failures = []
    total = 0
    for case in _cases():
        total += 1
        got = _evaluate(case)
        if got != case["slots"]:
            failures.append((case, got))
    assert not failures, _report(failures, total)


def test_cronie_evaluates_like_vixie_on_a_sample() -> None:
    sample = random.Random(7).sample(list(_cases()), 300)
    failures = [(c, got) for c in sample if (got := _evaluate(c, Dialect.CRONIE)) != c["slots"]]
    assert not failures, _report(failures, len(sample))


def test_fresh_random_sample_matches_cronsim_live() -> None:
    gen = _generator()
    rng = random.Random()  # a new sample every run; the seed is printed on failure
    seed = rng.randrange(2**32)
    rng = random.Random(seed)
    failures = []
    checked = 0
    zones = list(gen.ZONES)
    for _ in range(150):
        zone = rng.choice(zones)
        start, _near = rng.choice(list(gen.starts(zone, rng, ordinary=3)))
        expr = rng.choice([*gen.GENERIC, *gen.dst_expressions(gen.ZONES[zone])])
        if rng.random() < 0.4:
            expr = gen.random_expression(rng)
        slots = gen.cronsim_slots(expr, start)
        if slots is None or gen.cronsim_misses_wall_times(expr, zone, slots, start):
            continue
        case = {"expr": expr, "tz": zone, "start": start.isoformat(),
                "slots": [s.isoformat() for s in slots]}
        checked += 1
        got = _evaluate(case)
        if got != case["slots"]:
            failures.append((case, got))
    assert checked >= 100
    assert not failures, f"seed {seed}\n" + _report(failures, checked)


@pytest.mark.parametrize(
    "case", json.loads(INVALID.read_text()), ids=lambda c: c["expr"]
)
def test_lines_debian_refuses_are_refused(case: dict[str, str]) -> None:
    with pytest.raises(ScheduleError) as err:
        compile_schedule(ScheduleSpec(dialect=Dialect.VIXIE, expression=case["expr"]))
    assert case["error"] in str(err.value)
