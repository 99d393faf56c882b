"""A spec's canonical JSON (what the registry stores and hashes) is written directly, without
building its document: it must stay byte for byte what ``json.dumps`` makes of the document."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.spec import (
    CallableHandler,
    CommandHandler,
    ComparePolicy,
    Dialect,
    IntervalUnit,
    JobSpec,
    LostPolicy,
    MisfirePolicy,
    Policies,
    RepairPolicy,
    RetryPolicy,
    ScheduleSpec,
    SourceKind,
    SourceLocation,
    UnmappedHandler,
)

CRON = ScheduleSpec(dialect=Dialect.VIXIE, expression="*/5 * * * *", timezone="Europe/Paris")
START = datetime(2026, 3, 29, 1, 30, 0, 123000, tzinfo=UTC)
CALENDAR = ScheduleSpec(
    dialect=Dialect.CALENDAR_INTERVAL,
    timezone="America/New_York",
    start=START,
    interval=2,
    interval_unit=IntervalUnit.WEEK,
)
SIMPLE = ScheduleSpec(
    dialect=Dialect.QUARTZ_SIMPLE, start=START, interval_ms=90_000, repeat_count=7
)
HANDLERS = [
    CommandHandler(command="cat", stdin="line1\nline2%x\n", user="root", env=(("A", "é ✓ \x01"),)),
    CallableHandler(
        target="acme.jobs:invoice",
        args=(1, 2.5, None, True, "x", [1, {"b": 1, "a": [float("inf")]}]),
        kwargs=(("region", "eu"), ("n", 3)),
    ),
    UnmappedHandler(job_class="com.acme.Job", job_data=(("k", "v"), ("empty", ""))),
]
POLICIES = [
    Policies(),
    Policies(misfire=MisfirePolicy.FIRE_ALL, group="g", max_concurrency=2, jitter_seconds=5),
    Policies(on_lost=LostPolicy.RERUN, repair=RepairPolicy.ALERT_ONLY, timeout_seconds=60,
             retry=RetryPolicy(max_retries=3, backoff_seconds=1.5)),
]  # fmt: skip


def _document_text(spec: JobSpec) -> str:
    return json.dumps(spec.to_json(), sort_keys=True, separators=(",", ":"))


def test_canonical_json_is_the_sorted_compact_dump_of_the_document() -> None:
    specs = [
        JobSpec(
            id=f"job-{n}",
            schedule=schedule,
            handler=handler,
            source=SourceLocation("/etc/cron.d/x", n, "raw \u2028 line", SourceKind.CRON_D),
            policies=policies,
            compare=ComparePolicy(fields=("exit_status", "output_digest"), clean=(r"\d+",)),
            description=None if n % 2 else "Nightly \"billing\" \\ run",
            tags=("a", "b") if n % 3 else (),
        )
        for n, (schedule, handler, policies) in enumerate(
            (s, h, p) for s in (CRON, CALENDAR, SIMPLE) for h in HANDLERS for p in POLICIES
        )
    ]
    assert len(specs) == 27
    for spec in specs:
        assert spec.canonical_json() == _document_text(spec)
        assert JobSpec.from_json(json.loads(spec.canonical_json())).spec_hash() == spec.spec_hash()


@settings(max_examples=200, deadline=None)
@given(
    command=st.text(min_size=1).filter(str.strip),
    raw=st.text(),
    env=st.lists(st.tuples(st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True), st.text()),
                 max_size=4),
    description=st.none() | st.text(),
)  # fmt: skip
def test_any_command_text_is_written_as_json_would_write_it(
    command: str, raw: str, env: list[tuple[str, str]], description: str | None
) -> None:
    spec = JobSpec(
        id="job-1",
        schedule=CRON,
        handler=CommandHandler(command=command, env=tuple(env)),
        source=SourceLocation("/etc/crontab", 3, raw, SourceKind.SYSTEM_CRONTAB),
        description=description,
    )
    assert spec.canonical_json() == _document_text(spec)
