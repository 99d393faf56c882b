from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.core.errors import SpecError
from bridge.core.spec import (
    CallableHandler,
    CommandHandler,
    ComparePolicy,
    Dialect,
    IntervalUnit,
    JobSpec,
    Policies,
    RetryPolicy,
    ScheduleSpec,
    SourceKind,
    SourceLocation,
    UnmappedHandler,
)


def make(**kw: object) -> JobSpec:
    base: dict[str, object] = {
        "id": "etc-cron.d-certbot-1",
        "schedule": ScheduleSpec(
            dialect=Dialect.VIXIE, expression="0 */12 * * *", timezone="Europe/Berlin"
        ),
        "handler": CommandHandler(
            command="test -x /usr/bin/certbot",
            stdin="a\n",
            user="root",
            env=(("PATH", "/usr/bin"), ("MAILTO", "")),
        ),
        "source": SourceLocation(
            "/etc/cron.d/certbot", 12, "0 */12 * * * root ...", SourceKind.CRON_D
        ),
    }
    base.update(kw)
    return JobSpec(**base)  # type: ignore[arg-type]


def test_json_round_trip_is_exact_for_every_handler_kind() -> None:
    specs = [
        make(),
        make(handler=CallableHandler("acme.jobs:bill", args=(1, "x"), kwargs=(("region", "eu"),))),
        make(
            handler=UnmappedHandler("com.acme.Job", job_data=(("k", "v"),)),
            schedule=ScheduleSpec(dialect="quartz", expression="0 0 12 ? * 6L", timezone="UTC"),
        ),
        make(
            schedule=ScheduleSpec(
                dialect="quartz-simple",
                start=datetime(2026, 1, 1, tzinfo=UTC),
                interval_ms=60000,
                repeat_count=5,
            )
        ),
        make(
            schedule=ScheduleSpec(
                dialect="calendar-interval",
                start=datetime(2026, 1, 31, tzinfo=UTC),
                interval=1,
                interval_unit=IntervalUnit.MONTH,
            )
        ),
        make(
            policies=Policies(
                retry=RetryPolicy(max_retries=3),
                timeout_seconds=60,
                shadow_mode="dry-run",
                misfire="fire_all",
            ),
            compare=ComparePolicy(fields=("exit_status", "output_digest"), clean=(r"\d+",)),
        ),
    ]
    for spec in specs:
        doc = spec.to_json()
        assert doc["version"] == 1
        assert JobSpec.from_json(doc) == spec
        assert JobSpec.from_json(doc).spec_hash() == spec.spec_hash()


def test_hash_changes_when_anything_that_matters_changes() -> None:
    a = make()
    assert a.spec_hash() != make(handler=CommandHandler(command="other")).spec_hash()
    assert a.spec_hash() == make().spec_hash()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: make(id="bad id"), "bad job id 'bad id'"),
        (lambda: make(id=""), "bad job id"),
        (lambda: ScheduleSpec(dialect="vixie", expression=" "), "needs an expression"),
        (
            lambda: ScheduleSpec(dialect="vixie", expression="* * * * *", timezone="Nope/Zone"),
            "unknown timezone 'Nope/Zone'",
        ),
        (lambda: ScheduleSpec(dialect="quartz-simple", interval_ms=1000), "needs a start time"),
        (
            lambda: ScheduleSpec(dialect="vixie", expression="x", start=datetime(2026, 1, 1)),
            "must carry a timezone offset",
        ),
        (lambda: CommandHandler(command="  "), "empty command"),
        (lambda: CommandHandler(command="x", env=(("1BAD", "v"),)), "bad environment variable"),
        (lambda: CallableHandler("not a target"), "is not 'module:function'"),
        (lambda: Policies(timeout_seconds=0), "timeout_seconds must be > 0"),
        (lambda: Policies(queue="bad queue"), "bad queue name"),
        (lambda: ComparePolicy(fields=("stdout",)), "unknown compare field"),
        (lambda: ComparePolicy(clean=("(",)), "bad clean regex"),
    ],
)
def test_invalid_specs_are_refused_on_construction(build, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        build()


def test_unknown_spec_version_is_refused() -> None:
    doc = make().to_json()
    doc["version"] = 99
    with pytest.raises(SpecError, match="version 99 is not supported"):
        JobSpec.from_json(doc)


def test_malformed_spec_document_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="malformed"):
        JobSpec.from_json({"version": 1, "id": "x"})


@given(
    st.text(min_size=1, max_size=60),
    st.dictionaries(
        st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True), st.text(max_size=20), max_size=4
    ),
)
def test_round_trip_holds_for_arbitrary_commands_and_env(command: str, env: dict[str, str]) -> None:
    if not command.strip():
        return
    spec = make(handler=CommandHandler(command=command, env=tuple(env.items())))
    assert JobSpec.from_json(spec.to_json()) == spec
