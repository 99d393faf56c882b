"""Quartz job_scheduling_data XML importer: every element and rule, with exact messages.

Facts marked "oracle" were observed with Quartz 2.3.2's XMLSchedulingDataProcessor
(tests/oracle/QuartzXmlOracle.java); test_quartz_xml_oracle.py checks the data files against it.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.core.errors import ParseError, ScheduleError
from bridge.core.spec import (
    CallableHandler,
    CommandHandler,
    Dialect,
    IntervalUnit,
    MisfirePolicy,
    ShadowMode,
    SourceKind,
    UnmappedHandler,
)
from crontab_import.model import ImportItem, ItemStatus, ParseResult
from crontab_import.quartz.handlers import HandlerMap, load_handler_map, parse_handler_map
from crontab_import.quartz.schedules import misfire_policy
from crontab_import.quartz.tree import NS
from crontab_import.quartz.xml_file import parse_file, parse_quartz_xml

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
TZ = "America/New_York"
FILE = "jobs.xml"


# --- document builders -------------------------------------------------------------------------


def xml(body: str, *, version: str = "2.0", head: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<job-scheduling-data xmlns="{NS}" version="{version}">\n'
        f"{head}<schedule>\n{body}\n</schedule>\n</job-scheduling-data>\n"
    ).encode()


def job(
    name: str = "j",
    cls: str = "com.example.J",
    *,
    group: str | None = None,
    extra: str = "",
    data: dict[str, str] | None = None,
) -> str:
    lines = ["<job>", f"<name>{name}</name>"]
    lines += [f"<group>{group}</group>"] if group else []
    lines += [f"<job-class>{cls}</job-class>"]
    lines += [extra] if extra else []
    lines += [_data(data)] if data else []
    return "\n".join([*lines, "</job>\n"])


def _data(data: dict[str, str]) -> str:
    entries = "".join(f"<entry><key>{k}</key><value>{v}</value></entry>" for k, v in data.items())
    return f"<job-data-map>{entries}</job-data-map>"


def _trigger(
    kind: str,
    name: str,
    job_name: str,
    common: str,
    tail: list[str],
    group: str | None,
    job_group: str | None,
) -> str:
    lines = [f"<trigger><{kind}>", f"<name>{name}</name>"]
    lines += [f"<group>{group}</group>"] if group else []
    lines += [f"<job-name>{job_name}</job-name>"]
    lines += [f"<job-group>{job_group}</job-group>"] if job_group else []
    lines += [common] if common else []
    return "\n".join([*lines, *tail, f"</{kind}></trigger>\n"])


def _misfire(misfire: str | None) -> list[str]:
    return [f"<misfire-instruction>{misfire}</misfire-instruction>"] if misfire else []


def cron(
    name: str = "t",
    job_name: str = "j",
    expr: str = "0 0 12 * * ?",
    *,
    common: str = "",
    misfire: str | None = None,
    tz: str | None = None,
    group: str | None = None,
    job_group: str | None = None,
) -> str:
    tail = [*_misfire(misfire), f"<cron-expression>{expr}</cron-expression>"]
    tail += [f"<time-zone>{tz}</time-zone>"] if tz is not None else []
    return _trigger("cron", name, job_name, common, tail, group, job_group)


def simple(
    name: str = "s",
    job_name: str = "j",
    *,
    common: str = "",
    misfire: str | None = None,
    repeat: tuple[str, str] | None = None,
    group: str | None = None,
    job_group: str | None = None,
) -> str:
    tail = _misfire(misfire)
    if repeat:
        tail += [
            f"<repeat-count>{repeat[0]}</repeat-count>",
            f"<repeat-interval>{repeat[1]}</repeat-interval>",
        ]
    return _trigger("simple", name, job_name, common, tail, group, job_group)


def calint(
    name: str = "c",
    job_name: str = "j",
    *,
    common: str = "",
    misfire: str | None = None,
    interval: str = "1",
    unit: str = "DAY",
    kind: str = "calendar-interval",
) -> str:
    tail = [
        *_misfire(misfire),
        f"<repeat-interval>{interval}</repeat-interval>",
        f"<repeat-interval-unit>{unit}</repeat-interval-unit>",
    ]
    return _trigger(kind, name, job_name, common, tail, None, None)


def parse(
    data: bytes, *, handlers: HandlerMap | None = None, now: datetime = NOW, tz: str = TZ
) -> ParseResult:
    return parse_quartz_xml(data, file=FILE, handlers=handlers, now=now, default_timezone=tz)


def line_of(data: bytes, needle: str, nth: int = 1) -> int:
    text, index = data.decode(), -1
    for _ in range(nth):
        index = text.index(needle, index + 1)
    return text.count("\n", 0, index) + 1


def only(result: ParseResult) -> ImportItem:
    assert len(result.items) == 1, result.items
    return result.items[0]


def errors(result: ParseResult) -> list[str]:
    return [str(e) for e in result.errors]


# --- jobs, triggers, ids -----------------------------------------------------------------------


def test_cron_trigger_becomes_one_quartz_dialect_job_with_its_source_line() -> None:
    data = xml(
        job("invoice", "com.acme.InvoiceJob", group="billing", data={"region": "eu"})
        + cron(
            "nightly",
            "invoice",
            "0 30 2 * * ?",
            group="billing",
            job_group="billing",
            tz="America/New_York",
        )
    )
    result = parse(data)
    item = only(result)
    assert result.errors == () and item.status is ItemStatus.OK
    assert item.id == "billing.invoice"
    assert item.job is not None
    assert item.job.schedule.dialect is Dialect.QUARTZ
    assert item.job.schedule.expression == "0 30 2 * * ?"
    assert item.job.schedule.timezone == "America/New_York"
    assert item.job.schedule.start is None and item.job.schedule.end is None
    assert item.source.file == FILE and item.source.kind is SourceKind.QUARTZ_XML
    assert item.source.line == line_of(data, "<cron>")
    assert item.source.raw is not None and item.source.raw.startswith("<trigger><cron>")
    assert item.details == {
        "trigger": {"name": "nightly", "group": "billing", "type": "cron", "priority": 5},
        "job": {"name": "invoice", "group": "billing", "description": None},
        "job_class": "com.acme.InvoiceJob", "durability": False, "recover": False,
        "job_data": {"region": "eu"}, "schema": "2.0", "start_source": "none",
        "time_zone_quartz": "America/New_York", "misfire": "MISFIRE_INSTRUCTION_SMART_POLICY",
        "misfire_policy": "fire_once", "handler": None, "mapped": False,
    }  # fmt: skip


def test_group_defaults_to_DEFAULT_for_jobs_and_triggers() -> None:
    item = only(parse(xml(job() + cron())))
    assert item.id == "DEFAULT.j"
    assert item.details["trigger"]["group"] == "DEFAULT"
    assert item.details["job"]["group"] == "DEFAULT"


def test_empty_group_element_means_DEFAULT_as_in_quartz() -> None:
    item = only(parse(xml(job(group=" ") + cron(group="", job_group="  "))))
    assert item.id == "DEFAULT.j" and item.status is ItemStatus.OK


@pytest.mark.parametrize(
    ("triggers", "ids"),
    [
        ([cron("a")], ["DEFAULT.j"]),
        ([cron("a"), cron("b", expr="0 0 13 * * ?")], ["DEFAULT.j.a", "DEFAULT.j.b"]),
        (
            [cron("a", group="g1"), cron("a", group="g2", expr="0 0 1 * * ?")],
            ["DEFAULT.j.g1.a", "DEFAULT.j.g2.a"],
        ),
    ],
)
def test_job_id_is_job_key_or_job_key_plus_trigger_when_several(
    triggers: list[str], ids: list[str]
) -> None:
    result = parse(xml(job() + "".join(triggers)))
    assert [i.id for i in result.items] == ids


def test_job_id_is_sanitized_and_clashes_get_a_suffix() -> None:
    body = (
        job("nightly report/v2", group="_ops team")
        + cron("t", "nightly report/v2", job_group="_ops team")
        + job("nightly-report-v2", group="ops-team")
        + cron("u", "nightly-report-v2", job_group="ops-team")
    )
    result = parse(xml(body))
    assert [i.id for i in result.items] == [
        "ops-team.nightly-report-v2",
        "ops-team.nightly-report-v2-2",
    ]
    assert result.items[1].details["id_note"] == "'ops-team.nightly-report-v2' was taken: renamed"
    assert result.items[1].job is not None
    assert result.items[1].job.id == "ops-team.nightly-report-v2-2"


def test_job_fields_are_read_like_quartz_trimmed_and_empty_values_null() -> None:
    extra = "<description> Nightly </description>"
    body = job(data={"a": "  spaced  ", "e": ""}, extra="")
    body = body.replace("<job-class>", f"{extra}<job-class>")
    item = only(parse(xml(body + cron())))
    assert item.details["job"]["description"] == "Nightly"
    assert item.details["job_data"] == {"a": "spaced", "e": None}  # oracle


@pytest.mark.parametrize(
    ("durability", "recover", "expected"),
    [
        ("true", "true", (True, True)),
        ("1", "1", (False, False)),  # oracle: only "true" counts
        ("false", "0", (False, False)),
        (" true ", "true", (True, True)),
    ],
)
def test_durability_and_recover_are_true_only_for_the_text_true(
    durability: str, recover: str, expected: tuple[bool, bool]
) -> None:
    extra = f"<durability>{durability}</durability><recover>{recover}</recover>"
    item = only(parse(xml(job(extra=extra) + cron())))
    assert (item.details["durability"], item.details["recover"]) == expected


def test_durable_job_without_trigger_is_unsupported() -> None:
    data = xml(job(extra="<durability>true</durability><recover>false</recover>"))
    result = parse(data)
    item = only(result)
    assert result.errors == ()
    assert (item.status, item.id, item.job) == (ItemStatus.UNSUPPORTED, "DEFAULT.j", None)
    assert item.reason == (
        "durable job without a trigger: Quartz stores it but never fires it by itself"
    )
    assert item.source.line == line_of(data, "<job>")


def test_non_durable_job_without_trigger_makes_quartz_refuse_the_file() -> None:
    data = xml(job("lonely") + job("other") + cron("t", "other"))
    result = parse(data)
    assert errors(result) == [
        f"jobs.xml:{line_of(data, '<job>')}: job DEFAULT.lonely has no trigger and is not "
        "durable: Quartz refuses the file ('A new job defined without any triggers must be "
        "durable')"
    ]
    assert only(result).status is ItemStatus.INACTIVE
    assert only(result).reason == (
        f"Quartz 2.3.2 refuses this whole file (line {line_of(data, '<job>')}: job "
        "DEFAULT.lonely has no trigger and is not durable: Quartz refuses the file ('A new job "
        "defined without any triggers must be durable')): none of its jobs is scheduled today"
    )


def test_trigger_whose_job_is_missing_is_an_error_with_its_line() -> None:
    data = xml(job() + cron() + cron("orphan", "ghost", group="g", job_group="x"))
    result = parse(data)
    line = line_of(data, "<job-name>ghost")
    assert errors(result) == [
        f"jobs.xml:{line}: trigger g.orphan refers to job x.ghost, which this file does not "
        "define (Quartz refuses the file unless that job is already in its store)"
    ]
    statuses = {i.id: i.status for i in result.items}
    assert statuses == {"DEFAULT.j": ItemStatus.INACTIVE, "x.ghost": ItemStatus.ERROR}


def test_job_and_trigger_without_names_are_errors() -> None:
    data = xml(job(" ") + job() + simple(" ", "j"))
    result = parse(data)
    assert errors(result) == [
        f"jobs.xml:{line_of(data, '<job>')}: job without a name (Quartz: 'Name cannot be null.')",
        f"jobs.xml:{line_of(data, '<simple>')}: simple trigger without a name (Quartz: 'Name "
        "cannot be null.')",
    ]


def test_duplicate_trigger_keys_are_errors_on_both() -> None:
    data = xml(job() + cron("t") + cron("t", expr="0 0 13 * * ?"))
    result = parse(data)
    lines = f"{line_of(data, '<cron>')} and {line_of(data, '<cron>', 2)}"
    message = f"trigger DEFAULT.t is defined more than once (lines {lines}); Quartz keeps only one"
    assert [i.status for i in result.items] == [ItemStatus.ERROR, ItemStatus.ERROR]
    assert [i.reason for i in result.items] == [message, message]


def test_duplicate_job_keys_are_an_error_that_names_both_lines() -> None:
    data = xml(job() + job(cls="com.example.Other") + cron())
    result = parse(data)
    first, second = line_of(data, "<job>"), line_of(data, "<job>", 2)
    assert errors(result) == [
        f"jobs.xml:{second}: job DEFAULT.j is defined more than once "
        f"(lines {first} and {second}); Quartz keeps only one"
    ]
    assert only(result).details["job_class"] == "com.example.Other"  # the one Quartz keeps
    assert only(result).status is ItemStatus.OK  # not a reason for Quartz to refuse the file


def test_trigger_description_priority_and_data() -> None:
    body = cron(common="<priority> 7 </priority>" + _data({"mode": "delta"}))
    body = body.replace("<job-name>", "<description>Morning</description><job-name>")
    item = only(parse(xml(job(data={"mode": "full"}) + body)))
    assert item.details["trigger"]["priority"] == 7
    assert item.details["trigger_data"] == {"mode": "delta"}
    assert item.job is not None and item.job.description == "Morning"


def test_job_description_is_used_when_the_trigger_has_none() -> None:
    body = job().replace("<job-class>", "<description>Job text</description><job-class>")
    item = only(parse(xml(body + cron())))
    assert item.job is not None and item.job.description == "Job text"


def test_calendar_name_is_unsupported_with_the_reason() -> None:
    item = only(parse(xml(job() + cron(common="<calendar-name>holidays</calendar-name>"))))
    assert item.status is ItemStatus.UNSUPPORTED
    assert item.reason == (
        "calendar-name 'holidays': Quartz Calendars are registered by code "
        "and cannot be reproduced by the bridge"
    )
    assert item.details["calendar"] == "holidays"
    assert item.job is not None  # understood, just not migratable


# --- simple and calendar-interval triggers ------------------------------------------------------

START = "<start-time>2026-01-01T00:00:00Z</start-time>"


@pytest.mark.parametrize(
    ("repeat", "count", "interval"),
    [
        (("-1", "600000"), None, 600000),
        (("3", "1000"), 3, 1000),
        (None, 0, 0),
        ((" +2 ", "0060000"), 2, 60000),
    ],
)
def test_simple_trigger_repeat_count_and_interval(
    repeat: tuple[str, str] | None, count: int | None, interval: int
) -> None:
    item = only(parse(xml(job() + simple(common=START, repeat=repeat))))
    assert item.job is not None and item.status is ItemStatus.OK
    schedule = item.job.schedule
    assert schedule.dialect is Dialect.QUARTZ_SIMPLE
    assert (schedule.repeat_count, schedule.interval_ms) == (count, interval)
    assert schedule.start == datetime(2026, 1, 1, tzinfo=UTC)
    assert schedule.timezone == TZ


def test_simple_trigger_repeating_with_interval_zero_is_refused() -> None:
    data = xml(job() + simple(common=START, repeat=("-1", "0")))
    assert errors(parse(data)) == [
        f"jobs.xml:{line_of(data, '<repeat-interval>')}: trigger DEFAULT.s: repeat-interval 0 "
        "with a repeat-count: Quartz refuses the file ('Repeat Interval cannot be zero.')"
    ]


@pytest.mark.parametrize(
    ("interval", "unit", "expected"),
    [
        ("1", "MONTH", (1, IntervalUnit.MONTH)),
        ("15", "SECOND", (15, IntervalUnit.SECOND)),
        ("2", "WEEK", (2, IntervalUnit.WEEK)),
        ("1", "YEAR", (1, IntervalUnit.YEAR)),
    ],
)
def test_calendar_interval_trigger(
    interval: str, unit: str, expected: tuple[int, IntervalUnit]
) -> None:
    item = only(parse(xml(job() + calint(common=START, interval=interval, unit=unit))))
    assert item.job is not None
    schedule = item.job.schedule
    assert schedule.dialect is Dialect.CALENDAR_INTERVAL
    assert (schedule.interval, schedule.interval_unit) == expected
    assert schedule.timezone == TZ  # Quartz uses the JVM default zone for day+ units


def test_calendar_interval_of_zero_is_refused() -> None:
    data = xml(job() + calint(common=START, interval="0"))
    assert errors(parse(data)) == [
        f"jobs.xml:{line_of(data, '<repeat-interval>')}: trigger DEFAULT.c: repeat-interval "
        "must be >= 1: Quartz refuses the file ('Interval must be a positive value.')"
    ]


# --- start and end times ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T02:30:00", datetime(2026, 1, 1, 7, 30, tzinfo=UTC)),  # default zone (oracle)
        ("2026-03-08T02:30:00", datetime(2026, 3, 8, 7, 30, tzinfo=UTC)),  # gap: +1 h (oracle)
        ("2026-11-01T01:30:00", datetime(2026, 11, 1, 6, 30, tzinfo=UTC)),  # later (oracle)
        ("2026-07-01T12:00:00.9876Z", datetime(2026, 7, 1, 12, 0, 0, 987000, tzinfo=UTC)),
        ("2026-07-01T12:00:00+05:45", datetime(2026, 7, 1, 6, 15, tzinfo=UTC)),
        ("  2026-07-01T12:00:00-07:00\n", datetime(2026, 7, 1, 19, 0, tzinfo=UTC)),
        ("2026-12-31T24:00:00Z", datetime(2027, 1, 1, tzinfo=UTC)),
    ],
)
def test_start_time_is_read_like_javas_datatype_converter(text: str, expected: datetime) -> None:
    common = f"<start-time>{text}</start-time>"
    item = only(parse(xml(job() + simple(common=common, repeat=("-1", "1000")))))
    assert item.job is not None and item.job.schedule.start == expected
    assert item.details["start_source"] == "file"


@pytest.mark.parametrize(
    "text", ["9999-12-31T24:00:00Z", "0001-01-01T00:00:00+14:00", "12026-01-01T00:00:00Z"]
)
def test_valid_datetime_the_bridge_cannot_hold_is_an_error(text: str) -> None:
    data = xml(job() + simple(common=f"<start-time>{text}</start-time>"))
    assert errors(parse(data)) == [
        f"jobs.xml:{line_of(data, '<start-time>')}: trigger DEFAULT.s: start-time '{text}' is "
        "outside the years 0001..9999 (UTC) the bridge supports"
    ]


def test_cron_start_drops_milliseconds_but_end_keeps_them() -> None:  # oracle
    common = (
        "<start-time>2026-01-01T00:00:00.5Z</start-time><end-time>2026-03-01T00:00:00.5Z</end-time>"
    )
    item = only(parse(xml(job() + cron(common=common))))
    assert item.job is not None
    assert item.job.schedule.start == datetime(2026, 1, 1, tzinfo=UTC)
    assert item.job.schedule.end == datetime(2026, 3, 1, 0, 0, 0, 500000, tzinfo=UTC)


def test_start_time_seconds_in_future_counts_from_now() -> None:
    common = "<start-time-seconds-in-future>3600</start-time-seconds-in-future>"
    item = only(parse(xml(job() + simple(common=common))))
    assert item.job is not None
    assert item.job.schedule.start == datetime(2026, 6, 1, 13, 0, 0, 123000, tzinfo=UTC)
    assert item.details["start_source"] == "seconds-in-future"


def test_without_start_time_simple_triggers_start_at_import_time_and_say_so() -> None:
    data = xml(job() + simple(repeat=("-1", "60000")))
    result = parse(data)
    item = only(result)
    assert item.job is not None
    assert item.job.schedule.start == datetime(2026, 6, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert item.details["start_source"] == "import-time"
    assert result.notes == (
        f"line {line_of(data, '<simple>')}: trigger DEFAULT.s has no start-time: Quartz counts "
        "its repeats from when it loads the file, unknown here; the bridge counts from the "
        "import time",
    )


def test_end_time_before_start_is_refused() -> None:
    common = (
        "<start-time>2026-02-01T00:00:00Z</start-time><end-time>2026-01-01T00:00:00Z</end-time>"
    )
    data = xml(job() + cron(common=common))
    assert errors(parse(data)) == [
        f"jobs.xml:{line_of(data, '<start-time>')}: trigger DEFAULT.t: end-time "
        "2026-01-01T00:00:00Z is before its start: Quartz refuses the file ('End time cannot "
        "be before start time')"
    ]


def test_cron_trigger_that_never_fires_before_its_end_is_refused() -> None:
    common = (
        "<start-time>2026-01-06T00:00:00Z</start-time><end-time>2026-01-10T00:00:00Z</end-time>"
    )
    data = xml(job() + cron(expr="0 0 12 ? * MON", common=common))
    assert errors(parse(data)) == [
        f"jobs.xml:{line_of(data, '<cron>')}: trigger DEFAULT.t: never fires between its start "
        "and end time: Quartz refuses the file ('will never fire')"
    ]


# --- time zones ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "zone"),
    [
        (None, TZ),
        ("", TZ),
        (" Europe/Berlin ", "Europe/Berlin"),
        ("UTC", "UTC"),
        ("GMT", "GMT"),
        ("PST", "America/Los_Angeles"),
        ("IST", "Asia/Kolkata"),
        ("EST", "Etc/GMT+5"),
        ("GMT+5", "Etc/GMT-5"),
        ("GMT-03", "Etc/GMT+3"),
        ("GMT+0100", "Etc/GMT-1"),
        ("GMT+530", "UNSUPPORTED"),
        ("Etc/GMT-14", "Etc/GMT-14"),
        ("GMT0", "GMT0"),
        ("GMT-0", "Etc/GMT"),
        ("Asia/Calcutta", "Asia/Calcutta"),
    ],
)
def test_cron_time_zone_ids_map_like_java(tz: str | None, zone: str) -> None:
    item = only(parse(xml(job() + cron(tz=tz))))
    assert item.job is not None
    if zone == "UNSUPPORTED":
        assert item.status is ItemStatus.UNSUPPORTED
    else:
        assert item.status is ItemStatus.OK and item.job.schedule.timezone == zone


@pytest.mark.parametrize(
    "tz",
    [
        "Bogus/Zone",
        "america/new_york",
        "posix/Europe/Paris",
        "GMT+24",
        "GMT+05:3",
        "Z",
        "+01:00",
        "UTC+01",
        "zone.tab",
    ],
)
def test_unknown_time_zone_is_an_error_not_quartzs_silent_gmt(tz: str) -> None:
    data = xml(job() + cron() + job("k") + cron("u", "k", tz=tz))
    result = parse(data)
    assert errors(result) == [
        f"jobs.xml:{line_of(data, '<time-zone>')}: trigger DEFAULT.u: unknown time-zone "
        f"'{tz}': Quartz silently uses GMT for an id it does not know; write the zone you mean "
        "(e.g. America/New_York) or GMT"
    ]
    assert [i.status for i in result.items] == [ItemStatus.OK, ItemStatus.ERROR]


def test_fixed_offset_without_iana_name_is_unsupported() -> None:
    item = only(parse(xml(job() + cron(tz="GMT+05:30"))))
    assert item.status is ItemStatus.UNSUPPORTED
    assert item.reason == (
        "time-zone 'GMT+05:30' is a fixed offset no IANA zone names; use a "
        "zone such as Asia/Kolkata"
    )


def test_bad_default_timezone_and_naive_now_are_refused_up_front() -> None:
    with pytest.raises(ScheduleError, match="unknown default time zone 'Mars/Base'"):
        parse(xml(job() + cron()), tz="Mars/Base")
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        parse(xml(job() + cron()), now=datetime(2026, 1, 1))


# --- expressions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    [
        "0 0 18 ? * 6L",
        "0/15 * * * * ?",
        "0 0 12 L-3 * ?",
        "0 15 10 ? * MON-FRI",
        "0 0 12 15W * ? 2026-2030",
    ],
)
def test_valid_cron_expressions_are_imported_verbatim(expr: str) -> None:
    item = only(parse(xml(job() + cron(expr=expr))))
    assert item.status is ItemStatus.OK
    assert item.job is not None and item.job.schedule.expression == expr


def test_expression_quartz_rejects_is_an_error_at_its_line() -> None:
    data = xml(job() + cron(expr="0 0 12 1 * MON"))
    assert errors(parse(data)) == [
        f"jobs.xml:{line_of(data, '<cron-expression>')}: trigger DEFAULT.t: cron-expression "
        "'0 0 12 1 * MON': exactly one of day-of-month and day-of-week must be '?' (got '1' "
        "and 'MON')"
    ]


# --- misfire instructions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "instruction", "repeat", "policy", "exact"),
    [
        ("cron", None, None, MisfirePolicy.FIRE_ONCE, True),
        ("cron", "MISFIRE_INSTRUCTION_SMART_POLICY", None, MisfirePolicy.FIRE_ONCE, True),
        ("cron", "MISFIRE_INSTRUCTION_FIRE_ONCE_NOW", None, MisfirePolicy.FIRE_ONCE, True),
        ("cron", "MISFIRE_INSTRUCTION_DO_NOTHING", None, MisfirePolicy.SKIP, True),
        ("cron", "MISFIRE_INSTRUCTION_IGNORE_MISFIRE_POLICY", None, MisfirePolicy.FIRE_ALL, True),
        ("calendar-interval", "SMART_POLICY", None, MisfirePolicy.FIRE_ONCE, True),
        ("calendar-interval", "FIRE_ONCE_NOW", None, MisfirePolicy.FIRE_ONCE, True),
        ("calendar-interval", "DO_NOTHING", None, MisfirePolicy.SKIP, True),
        ("simple", "SMART_POLICY", 0, MisfirePolicy.FIRE_ONCE, True),
        ("simple", "SMART_POLICY", -1, MisfirePolicy.SKIP, True),
        ("simple", "SMART_POLICY", 5, MisfirePolicy.FIRE_ONCE, False),
        ("simple", "FIRE_NOW", 0, MisfirePolicy.FIRE_ONCE, True),
        ("simple", "FIRE_NOW", -1, MisfirePolicy.FIRE_ONCE, False),
        ("simple", "RESCHEDULE_NOW_WITH_EXISTING_REPEAT_COUNT", 5, MisfirePolicy.FIRE_ONCE, False),
        (
            "simple",
            "RESCHEDULE_NOW_WITH_REMAINING_REPEAT_COUNT",
            -1,
            MisfirePolicy.FIRE_ONCE,
            False,
        ),
        ("simple", "RESCHEDULE_NEXT_WITH_REMAINING_COUNT", 5, MisfirePolicy.SKIP, True),
        ("simple", "RESCHEDULE_NEXT_WITH_EXISTING_COUNT", -1, MisfirePolicy.SKIP, True),
        ("simple", "RESCHEDULE_NEXT_WITH_EXISTING_COUNT", 5, MisfirePolicy.SKIP, False),
    ],
)
def test_misfire_instruction_maps_to_the_closest_bridge_policy(
    kind: str, instruction: str | None, repeat: int | None, policy: MisfirePolicy, exact: bool
) -> None:
    got, note = misfire_policy(kind, instruction, repeat)
    assert got is policy
    assert (note is None) == exact
    if note:
        assert note.startswith("approximation: Quartz")


@pytest.mark.parametrize(
    ("kind", "instruction"),
    [("cron", "FIRE_NOW"), ("simple", "DO_NOTHING"), ("calendar-interval", "BOGUS")],
)
def test_misfire_instruction_of_another_trigger_type_is_rejected(
    kind: str, instruction: str
) -> None:
    with pytest.raises(ValueError, match=f"no {kind} misfire instruction '{instruction}'"):
        misfire_policy(kind, instruction)


def test_misfire_policy_lands_in_the_spec_and_details() -> None:
    body = (
        job()
        + cron(misfire="MISFIRE_INSTRUCTION_DO_NOTHING")
        + simple(
            common=START,
            repeat=("5", "1000"),
            misfire="MISFIRE_INSTRUCTION_RESCHEDULE_NOW_WITH_REMAINING_REPEAT_COUNT",
        )
    )
    cron_item, simple_item = parse(xml(body)).items
    assert cron_item.job is not None and cron_item.job.policies.misfire is MisfirePolicy.SKIP
    assert cron_item.details["misfire"] == "MISFIRE_INSTRUCTION_DO_NOTHING"
    assert "misfire_note" not in cron_item.details
    assert simple_item.job is not None
    assert simple_item.job.policies.misfire is MisfirePolicy.FIRE_ONCE
    assert simple_item.details["misfire_note"] == (
        "approximation: Quartz (RESCHEDULE_NOW_WITH_REMAINING_REPEAT_COUNT) fires once at once "
        "and re-anchors the remaining repeats at that moment (the phase moves); the bridge fires "
        "once and keeps the original slots"
    )


# --- schema rules (Quartz validates against the XSD and refuses the whole file) ----------------


SCHEMA_CASES = [
    (
        job()
        .replace("<name>j</name>\n<job-class>", "<job-class>")
        .replace("</job-class>", "</job-class><name>j</name>")
        + cron(),
        "<job>",
        "<job> content is out of order or incomplete: expected name group? description? job-class "
        "(durability recover)? job-data-map?; found job-class, name",
    ),
    (
        job(extra="<durability>TRUE</durability><recover>false</recover>") + cron(),
        "<durability>",
        "<durability>: 'TRUE' is not an xs:boolean (true, false, 1 or 0)",
    ),
    (
        job() + cron(expr="0 0 12 ? * mon"),
        "<cron-expression>",
        "<cron-expression>: '0 0 12 ? * mon' does not match the job_scheduling_data 2.0 schema's "
        "cron pattern (upper-case names, one blank between fields, nothing around the expression)",
    ),
    (
        job() + cron(expr=" 0 0 12 * * ?"),
        "<cron-expression>",
        "<cron-expression>: ' 0 0 12 * * ?' does not match the job_scheduling_data 2.0 schema's "
        "cron pattern (upper-case names, one blank between fields, nothing around the expression)",
    ),
    (
        job() + cron(misfire=" MISFIRE_INSTRUCTION_DO_NOTHING"),
        "<misfire-instruction>",
        "<misfire-instruction>: ' MISFIRE_INSTRUCTION_DO_NOTHING' is not one of "
        "MISFIRE_INSTRUCTION_SMART_POLICY, MISFIRE_INSTRUCTION_DO_NOTHING, "
        "MISFIRE_INSTRUCTION_FIRE_ONCE_NOW (exact spelling, no blanks)",
    ),
    (
        job() + cron(misfire="MISFIRE_INSTRUCTION_IGNORE_MISFIRE_POLICY"),
        "<misfire-instruction>",
        "<misfire-instruction>: MISFIRE_INSTRUCTION_IGNORE_MISFIRE_POLICY cannot be written in a "
        "job XML",
    ),
    (
        job() + cron(common="<start-time>2026-03-08T02:30Z</start-time>"),
        "<start-time>",
        "<start-time>: '2026-03-08T02:30Z' is not an xs:dateTime (expected "
        "YYYY-MM-DDThh:mm:ss[.fff][Z|+hh:mm])",
    ),
    (
        job() + cron(common="<priority>high</priority>"),
        "<priority>",
        "<priority>: 'high' is not a non-negative integer",
    ),
    (
        job() + simple(repeat=("-2", "1000")),
        "<repeat-count>",
        "<repeat-count>: '-2' is not an integer >= -1 (-1 repeats forever)",
    ),
    (
        job() + calint(unit="FORTNIGHT"),
        "<repeat-interval-unit>",
        "<repeat-interval-unit>: 'FORTNIGHT' is not one of DAY, HOUR, MINUTE, MONTH, SECOND, WEEK, "
        "YEAR (exact spelling, no blanks)",
    ),
    (
        job().replace("<job>", '<job id="1">') + cron(),
        "<job ",
        "attribute 'id' is not allowed on <job>",
    ),
    (
        job().replace("<job>", "<job>oops") + cron(),
        "<job>",
        "<job> may only contain elements, not text 'oops'",
    ),
    (
        job(extra="<volatility>false</volatility>") + cron(),
        "<volatility>",
        "<volatility> is not allowed in <job> (job_scheduling_data 2.0)",
    ),
    (
        job() + cron().replace("</cron>", '<x:y xmlns:x="urn:x"/></cron>'),
        "<x:y",
        "<y> (namespace urn:x) is not allowed in <cron> (job_scheduling_data 2.0)",
    ),
    (
        job() + cron(common="<end-time>2030-01-01T00:00:00Z</end-time>"),
        "<cron>",
        "<cron> content is out of order or incomplete: expected name group? description? job-name "
        "job-group? priority? calendar-name? job-data-map? ((start-time | "
        "start-time-seconds-in-future) end-time?)? misfire-instruction? cron-expression "
        "time-zone?; found name, job-name, end-time, cron-expression",
    ),
    (
        job().replace("<name>j</name>", "<name><b>j</b></name>") + cron(),
        "<name><b>",
        "<name> may not contain elements",
    ),
]


@pytest.mark.parametrize(("body", "needle", "message"), SCHEMA_CASES)
def test_schema_violation_is_located_and_deactivates_the_file(
    body: str, needle: str, message: str
) -> None:
    data = xml(body)
    result = parse(data)
    assert f"jobs.xml:{line_of(data, needle)}: {message}" in errors(result)
    assert all(i.status is not ItemStatus.OK for i in result.items)
    for item in result.items:
        if item.status is ItemStatus.INACTIVE:
            assert item.reason is not None
            assert item.reason.startswith("Quartz 2.3.2 refuses this whole file (line ")
            assert item.reason.endswith("none of its jobs is scheduled today")


def test_document_that_is_not_job_scheduling_data_is_refused() -> None:
    data = b"<job-scheduling-data><schedule/></job-scheduling-data>"
    assert errors(parse(data)) == [
        "jobs.xml:1: not a Quartz job_scheduling_data document: the root element is "
        f'<job-scheduling-data>, expected <job-scheduling-data xmlns="{NS}"> (1.8 or 2.0)'
    ]


def test_namespace_prefixes_and_utf16_are_fine() -> None:
    data = xml(job() + cron()).decode()
    data = data.replace(f'xmlns="{NS}"', f'xmlns:q="{NS}"')
    data = re.sub(r"<(/?)([a-z])", r"<\1q:\2", data).replace("UTF-8", "UTF-16")
    result = parse(data.encode("utf-16"))
    assert result.errors == ()
    assert only(result).id == "DEFAULT.j"
    assert (only(result).source.raw or "").startswith("<q:trigger><q:cron>\n<q:name>t</q:name>")


def test_empty_document_is_valid_and_yields_nothing() -> None:
    result = parse(xml(""))
    assert (result.items, result.errors, result.notes) == ((), (), ())


# --- XML safety and well-formedness ------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<job-scheduling-data xmlns="http://www.quartz-scheduler.org/xml/JobSchedulingData">
<schedule><job><name>&lol9;</name><job-class>a.B</job-class></job></schedule>
</job-scheduling-data>
"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE job-scheduling-data [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<job-scheduling-data xmlns="http://www.quartz-scheduler.org/xml/JobSchedulingData">
<schedule><job><name>&xxe;</name><job-class>a.B</job-class></job></schedule>
</job-scheduling-data>
"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE job-scheduling-data SYSTEM "http://203.0.113.1/evil.dtd">
<job-scheduling-data xmlns="http://www.quartz-scheduler.org/xml/JobSchedulingData"/>
"""
PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY % remote SYSTEM "http://203.0.113.1/x.dtd"> %remote;]>
<x/>
"""
DOCTYPE_MESSAGE = (
    "a DOCTYPE is not allowed (Quartz refuses it too; entity declarations are how "
    "billion-laughs and XXE attacks work)"
)


@pytest.mark.parametrize(
    "data",
    [BILLION_LAUGHS, XXE, EXTERNAL_DTD, PARAMETER_ENTITY],
    ids=["billion-laughs", "xxe", "external-dtd", "parameter-entity"],
)
def test_entity_attacks_are_refused_quickly_with_a_clear_error(data: bytes) -> None:
    started = time.monotonic()
    result = parse(data)
    assert time.monotonic() - started < 1.0
    assert errors(result) == [f"jobs.xml:2: {DOCTYPE_MESSAGE}"]
    assert result.items == ()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "jobs.xml:1: not well-formed XML: no element found"),
        (
            b"<job-scheduling-data>\n<schedule>\n</job-scheduling-data>",
            "jobs.xml:3: not well-formed XML: mismatched tag",
        ),
        (b"<a>\n\xff\xfe</a>", "jobs.xml:2: not well-formed XML: not well-formed (invalid token)"),
    ],
)
def test_malformed_xml_is_a_located_error(data: bytes, message: str) -> None:
    assert errors(parse(data)) == [message]


def test_absurd_nesting_is_refused() -> None:
    data = b"<a>" * 100 + b"</a>" * 100
    assert errors(parse(data)) == ["jobs.xml:1: elements nested deeper than 32 levels"]


# --- pre-processing commands and directives ----------------------------------------------------


def test_pre_processing_commands_and_directives_are_reported_in_notes() -> None:
    head = (
        "<pre-processing-commands>\n"
        "<delete-jobs-in-group>*</delete-jobs-in-group>\n"
        "<delete-triggers-in-group>old</delete-triggers-in-group>\n"
        "<delete-job><name>gone</name><group>g</group></delete-job>\n"
        "<delete-trigger><name>t0</name></delete-trigger>\n"
        "</pre-processing-commands>\n"
        "<processing-directives>\n"
        "<overwrite-existing-data> true </overwrite-existing-data>\n"
        "<ignore-duplicates>1</ignore-duplicates>\n"
        "</processing-directives>\n"
    )
    result = parse(xml(job() + cron(), head=head))
    assert result.errors == ()
    assert result.notes == (
        "line 4: pre-processing delete-jobs-in-group '*': Quartz deletes all jobs (and their "
        "triggers) of every group before loading this file",
        "line 5: pre-processing delete-triggers-in-group 'old': Quartz deletes all triggers of "
        "group 'old' before loading this file",
        "line 6: pre-processing delete-job g.gone",
        "line 7: pre-processing delete-trigger DEFAULT.t0",
        "line 10: processing-directives overwrite-existing-data = false (written ' true ': "
        "Quartz reads only true/yes/y as true)",  # oracle-confirmed source reading: untrimmed
        "line 11: processing-directives ignore-duplicates = false (written '1': Quartz reads "
        "only true/yes/y as true)",
    )


def test_delete_job_without_name_makes_quartz_refuse_the_file() -> None:
    head = (
        "<pre-processing-commands><delete-job><name> </name></delete-job>"
        "</pre-processing-commands>\n"
    )
    result = parse(xml(job() + cron(), head=head))
    assert errors(result) == [
        "jobs.xml:3: 'delete-job' command without a name (Quartz refuses the file)"
    ]
    assert only(result).status is ItemStatus.INACTIVE


# --- Quartz 1.8 files ---------------------------------------------------------------------------


def test_18_file_is_read_with_the_18_schema_and_keeps_its_extras() -> None:
    body = job(
        extra="<job-listener-ref>audit</job-listener-ref><volatility>false</volatility>"
        "<durability>true</durability><recover>false</recover>"
    )
    body += cron(
        common="<volatility>true</volatility><start-time>2010-01-01T00:00:00Z</start-time>"
    )
    data = xml(body, version="1.8")
    result = parse(data)
    item = only(result)
    assert result.errors == () and item.status is ItemStatus.OK
    assert (
        item.details["job_listener"],
        item.details["volatility"],
        item.details["trigger_volatility"],
        item.details["schema"],
    ) == ("audit", "false", "true", "1.8")
    assert result.notes == (
        "job_scheduling_data 1.8 file: read with the 1.8 schema; it uses 1.8-only elements "
        f"Quartz 2.x refuses (job-listener-ref at line {line_of(data, '<job-listener-ref>')}, "
        f"volatility at line {line_of(data, '<volatility>')}, volatility at line "
        f"{line_of(data, '<volatility>', 2)})",
    )


def test_18_date_interval_is_a_calendar_interval_trigger() -> None:
    data = xml(job() + calint(common=START, unit="WEEK", kind="date-interval"), version="1.8")
    item = only(parse(data))
    assert item.details["trigger"] == {
        "name": "c",
        "group": "DEFAULT",
        "type": "calendar-interval",
        "priority": 5,
        "element": "date-interval",
    }
    assert item.job is not None
    assert item.job.schedule.interval_unit is IntervalUnit.WEEK


@pytest.mark.parametrize(
    ("body", "needle", "message"),
    [
        (
            job() + cron(common="<priority>3</priority>"),
            "<priority>",
            "<priority> is not allowed in <cron> (job_scheduling_data 1.8)",
        ),
        (
            job() + calint(common=START),
            "<calendar-interval>",
            "<calendar-interval> is not allowed in <trigger> (job_scheduling_data 1.8)",
        ),
        (
            job() + cron(expr="0 0-5,30 12 * * ?"),
            "<cron-expression>",
            "<cron-expression>: '0 0-5,30 12 * * ?' does not match the job_scheduling_data 1.8 "
            "schema's cron pattern (upper-case names, one blank between fields, nothing around the "
            "expression)",
        ),
    ],
)
def test_20_only_constructs_are_schema_errors_in_a_18_file(
    body: str, needle: str, message: str
) -> None:
    data = xml(body, version="1.8")
    assert f"jobs.xml:{line_of(data, needle)}: {message}" in errors(parse(data))


# --- handler map --------------------------------------------------------------------------------

HANDLERS = """\
version = 1

[defaults]
user = "batch"
timeout = 600
env = { LANG = "C.UTF-8" }

[[handler]]
job_class = "com.example.J"
command = "run --target {target} --note {note} {{literal}}"
dry_run_command = "run --target {target} --dry-run"
env = { MODE = "prod" }
queue = "jobs"
shadow = "dry-run"

[[handler]]
job_class = "com.example.J"
match = { target = "special" }
callable = "pkg.tasks:special"
dry_run_callable = "pkg.tasks:special_preview"

[[handler]]
job_class = "com.example.J"
job = "vip.j"
command = "vip"
user = "root"
shell = "/bin/bash"
"""


def handlers() -> HandlerMap:
    return parse_handler_map(HANDLERS, file="handlers.toml")


def test_command_placeholders_are_filled_from_merged_data_and_shell_quoted() -> None:
    body = job(data={"target": "db; rm -rf /", "note": "old"})
    body += cron(common=_data({"note": "it's"}))
    item = only(parse(xml(body), handlers=handlers()))
    assert item.status is ItemStatus.OK and item.job is not None
    assert item.job.handler == CommandHandler(
        command="run --target 'db; rm -rf /' --note 'it'\"'\"'s' {literal}",
        user="batch",
        env=(("LANG", "C.UTF-8"), ("MODE", "prod")),
        dry_run_command="run --target 'db; rm -rf /' --dry-run",
    )
    policies = item.job.policies
    assert (policies.queue, policies.timeout_seconds, policies.shadow_mode) == (
        "jobs",
        600,
        ShadowMode.DRY_RUN,
    )
    assert item.details["mapped"] is True
    assert item.details["handler"] == {
        "kind": "command", "rule": "handlers.toml:8", "shadow": "dry-run",
        "command": "run --target 'db; rm -rf /' --note 'it'\"'\"'s' {literal}", "user": "batch",
    }  # fmt: skip


def test_match_on_job_data_selects_a_more_specific_callable() -> None:
    item = only(
        parse(xml(job(data={"target": "special", "note": "n"}) + cron()), handlers=handlers())
    )
    assert item.job is not None
    assert item.job.handler == CallableHandler(
        target="pkg.tasks:special",
        kwargs=(("note", "n"), ("target", "special")),
        dry_run_target="pkg.tasks:special_preview",
    )
    assert item.details["handler"]["rule"] == "handlers.toml:16"


def test_job_selector_beats_match_and_class() -> None:
    item = only(
        parse(
            xml(job(group="vip", data={"target": "special"}) + cron(job_group="vip")),
            handlers=handlers(),
        )
    )
    assert item.job is not None
    assert item.job.handler == CommandHandler(
        command="vip", user="root", shell="/bin/bash", env=(("LANG", "C.UTF-8"),)
    )


@pytest.mark.parametrize(
    ("data", "key"), [({"note": "n"}, "target"), ({"target": "", "note": "n"}, "target")]
)
def test_missing_or_empty_placeholder_key_is_an_error_naming_the_job(
    data: dict[str, str], key: str
) -> None:
    xml_data = xml(job(data=data) + cron() + job("k", "com.example.Other") + cron("u", "k"))
    result = parse(xml_data, handlers=handlers())
    assert errors(result) == [
        f"jobs.xml:{line_of(xml_data, '<cron>')}: job DEFAULT.j: handler handlers.toml:8 needs "
        f"job-data-map key '{key}', which the job does not define (or leaves empty)"
    ]
    assert [i.status for i in result.items] == [ItemStatus.ERROR, ItemStatus.OK]


def test_two_equally_specific_matches_are_ambiguous() -> None:
    extra = '\n[[handler]]\njob_class = "com.example.J"\nmatch = { target = "x" }\ncommand = "a"\n'
    text = HANDLERS + extra + extra.replace('"a"', '"b"')
    first = HANDLERS.count("\n") + 2
    data = xml(job(data={"target": "x"}) + cron())
    result = parse(data, handlers=parse_handler_map(text, file="handlers.toml"))
    assert errors(result) == [
        f"jobs.xml:{line_of(data, '<cron>')}: job DEFAULT.j: ambiguous handler mapping: "
        f"handlers.toml:{first} and handlers.toml:{first + 5} both match"
    ]


def test_job_without_mapping_is_imported_unmapped() -> None:
    result = parse(
        xml(job("x", "com.example.Unknown", data={"k": "v", "e": ""}) + cron("t", "x")),
        handlers=handlers(),
    )
    item = only(result)
    assert item.status is ItemStatus.OK and item.job is not None
    assert item.job.handler == UnmappedHandler(
        job_class="com.example.Unknown", job_data=(("k", "v"), ("e", ""))
    )
    assert not item.job.mapped
    assert item.job.policies.shadow_mode is ShadowMode.OBSERVE
    assert (item.details["mapped"], item.details["handler"]) == (False, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[handler]]\njob_class = "a.B"\ncomand = "x"\n',
            "handlers.toml:3: unknown key 'comand' (known: callable, command, dry_run_callable, "
            "dry_run_command, env, group, job, job_class, match, max_concurrency, queue, shadow, "
            "shell, timeout, user)",
        ),
        ('[[handler]]\ncommand = "x"\n', "handlers.toml:1: 'job_class' is required"),
        (
            '[[handler]]\njob_class = "a.B"\ncommand = "x"\ncallable = "m:f"\n',
            "handlers.toml:1: give exactly one of 'command' or 'callable'",
        ),
        (
            '[[handler]]\njob_class = "a.B"\n',
            "handlers.toml:1: give exactly one of 'command' or 'callable'",
        ),
        (
            '[[handler]]\njob_class = "a.B"\ncallable = "not a target"\n',
            "handlers.toml:3: 'callable' 'not a target' must be 'module:function'",
        ),
        (
            '[[handler]]\njob_class = "a.B"\ncommand = "echo {x"\n',
            "handlers.toml:3: 'command': unbalanced or empty '{}' at offset 5 (write {{ and }} for "
            "literal braces)",
        ),
        (
            '[[handler]]\njob_class = "a.B"\ncommand = "echo {}"\n',
            "handlers.toml:3: 'command': unbalanced or empty '{}' at offset 5 (write {{ and }} for "
            "literal braces)",
        ),
        (
            '[[handler]]\njob_class = "a.B"\ncommand = "x"\nshadow = "sometimes"\n',
            "handlers.toml:4: 'shadow' must be one of observe, dry-run, execute",
        ),
        (
            '[[handler]]\njob_class = "a.B"\ncommand = "x"\ntimeout = 0\n',
            "handlers.toml:4: 'timeout' must be a whole number of seconds > 0",
        ),
        (
            '[[handler]]\njob_class = "a.B"\ncommand = "x"\nqueue = "no spaces"\n',
            "handlers.toml:4: 'queue' 'no spaces' must be letters, digits, '_.:-'",
        ),
        (
            '[[handler]]\njob_class = "a.B"\ncommand = "x"\nenv = { "BAD-NAME" = "1" }\n',
            "handlers.toml:4: 'env': bad variable name 'BAD-NAME'",
        ),
        (
            '[[handler]]\njob_class = "a.B"\ncallable = "m:f"\ndry_run_command = "x"\n',
            "handlers.toml:4: dry_run_command needs a command",
        ),
        (
            '[defaults]\nuser = "a"\nshel = "b"\n',
            "handlers.toml:3: unknown key 'shel' (known: env, queue, shadow, shell, timeout, user)",
        ),
        (
            '[[handler]]\njob_class = "a.B"\ncommand = \n',
            "handlers.toml:3: bad TOML: Invalid value (at line 3, column 11)",
        ),
        (
            "# map\nhandlers = []\n",
            "handlers.toml:2: unknown top-level key 'handlers' (version, defaults, handler)",
        ),
        (
            "[[handlers]]\nx = 1\n",
            "handlers.toml:1: unknown top-level key 'handlers' (version, defaults, handler)",
        ),
        ("version = 2\n", "handlers.toml:1: handler map version 2 is not supported (1)"),
        (
            'handler = [{ job_class = "a.B", command = "x", user = 3 }]\n',
            "handlers.toml: handler[1].user: 'user' must be a non-empty string",
        ),
    ],
)
def test_bad_handler_map_is_refused_with_a_location(text: str, message: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_handler_map(text, file="handlers.toml")
    assert str(caught.value) == message


def test_load_handler_map_reads_a_file_and_locates_errors(tmp_path: Path) -> None:
    path = tmp_path / "handlers.toml"
    path.write_text(
        '[[handler]]\njob_class = "a.B"\ncommand = "echo"\n\n[[handler]]\n'
        'job_class = "c.D"\ncommand = "x"\ntimeout = -5\n'
    )
    with pytest.raises(ParseError) as caught:
        load_handler_map(path)
    assert str(caught.value) == (f"{path}:8: 'timeout' must be a whole number of seconds > 0")
    with pytest.raises(ParseError, match="cannot read handler map"):
        load_handler_map(tmp_path / "missing.toml")


# --- files and examples -------------------------------------------------------------------------


def test_parse_file_reads_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "quartz_jobs.xml"
    path.write_bytes(xml(job() + cron(tz="Bogus/X")))
    result = parse_file(path, now=NOW, default_timezone=TZ)
    assert result.file == str(path) and result.errors[0].file == str(path)
    with pytest.raises(ParseError, match="cannot read Quartz XML"):
        parse_file(tmp_path / "absent.xml", now=NOW, default_timezone=TZ)


def test_example_jobs_import_cleanly_with_one_unmapped_class() -> None:
    result = parse_file(
        ROOT / "examples/quartz/jobs.xml",
        handlers=load_handler_map(ROOT / "examples/quartz/handlers.toml"),
        now=NOW,
        default_timezone=TZ,
    )
    assert result.errors == ()
    assert {i.id: i.status for i in result.items} == {
        "billing.invoice-run": ItemStatus.OK, "reports.month-close": ItemStatus.OK,
        "reports.statements": ItemStatus.OK, "ops.heartbeat": ItemStatus.OK,
        "ops.cache-warmer": ItemStatus.OK, "legacy.ldap-sync": ItemStatus.OK,
    }  # fmt: skip
    unmapped = [i.id for i in result.items if not i.details["mapped"]]
    assert unmapped == ["legacy.ldap-sync"]
    types = {i.details["trigger"]["type"] for i in result.items}
    assert types == {"cron", "simple", "calendar-interval"}
    billing = result.items[0]
    assert billing.job is not None
    assert billing.job.handler == CommandHandler(
        command="echo invoice-run --region us-east --batch-size 500",
        user="billing",
        env=(("LANG", "C.UTF-8"),),
        dry_run_command="echo invoice-run --region us-east --batch-size 500 --dry-run",
    )


def test_statement_start_without_offset_is_a_new_york_wall_time() -> None:
    result = parse_file(ROOT / "examples/quartz/jobs.xml", now=NOW, default_timezone=TZ)
    statements = next(i for i in result.items if i.id == "reports.statements")
    assert statements.job is not None
    assert statements.job.schedule.start == datetime(2026, 1, 5, 11, 0, tzinfo=UTC)
    assert statements.job.schedule.start - datetime(2026, 1, 5, 6, tzinfo=UTC) == timedelta(hours=5)


def test_every_error_of_the_error_data_files_has_file_and_line() -> None:
    for path in sorted((ROOT / "tests/importers/data").glob("*.xml")):
        result = parse_file(path, now=NOW, default_timezone=TZ)
        for error in result.errors:
            assert error.file == str(path) and isinstance(error.line, int), error
