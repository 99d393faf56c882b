"""The fuzz suite's shared pieces (issue 15: a property-based suite over every entrance).

Hypothesis profiles: ``ci`` (the default: few, derandomized examples, the whole suite well under
90 s) and ``long`` (``CRON_BRIDGE_FUZZ=long``: thousands of random examples, for a night run:
``CRON_BRIDGE_FUZZ=long bash .ci/run tests/fuzz``). Every property asserts the same contract:
no traceback, an exit code in {0, 1, 2, 3}, bounded time and memory per example, and -- when the
entrance refused the input -- a registry byte-for-byte unchanged (a SQLite ``iterdump``).
"""

from __future__ import annotations

import io
import os
import resource
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
          HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=_QUIET, print_blob=True)
settings.register_profile("long", max_examples=3000, deadline=None,
                          suppress_health_check=_QUIET, print_blob=True)
PROFILE = os.environ.get("CRON_BRIDGE_FUZZ", "ci")
settings.load_profile(PROFILE)


def examples(n: int) -> Any:
    """``@examples(n)``: n examples in CI, 20 n in the ``long`` profile (derandomized in CI)."""
    return settings(max_examples=n * (20 if PROFILE == "long" else 1))

SECONDS_PER_EXAMPLE = 30.0  # generous: 2 shared cores; a hang or a quadratic blow-up is far more
MAX_RSS_BYTES = 1536 * 1024 * 1024
ALLOWED_EXIT = {0, 1, 2, 3}


def dump(db_path: Path) -> list[str]:
    """The whole SQLite registry as SQL text (schema and rows), for before/after comparisons."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    seconds: float


def check_contract(result: Outcome, what: Any) -> None:
    text = result.out + result.err
    assert "Traceback" not in text, (what, text[-3000:])
    assert "internal error" not in text, (what, text[-3000:])
    assert result.code in ALLOWED_EXIT, (what, result.code, text[-3000:])
    assert result.seconds < SECONDS_PER_EXAMPLE, (what, result.seconds)
    assert max_rss() < MAX_RSS_BYTES, (what, max_rss())


@pytest.fixture
def run_cli(cli: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``run_cli(*argv, env=..., stdin=b"")`` -> :class:`Outcome` (the in-process CLI)."""

    def invoke(*argv: str, env: dict[str, str] | None = None, stdin: bytes = b"") -> Outcome:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        start = time.monotonic()
        r = cli(*argv, env=env)
        return Outcome(r.code, r.out, r.err, time.monotonic() - start)

    yield invoke
