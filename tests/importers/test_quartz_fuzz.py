"""Property tests: whatever bytes arrive, the Quartz importer answers with a located ParseResult.

Arbitrary bytes and mutations of valid job files (deleted spans, inserted XML fragments,
replaced values, duplicated or swapped lines) must never raise: every problem is an error with
the file name and an integer line, and the item statuses stay consistent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.core.errors import BridgeError, ParseError
from crontab_import.model import ItemStatus, ParseResult
from crontab_import.quartz.handlers import load_handler_map, parse_handler_map
from crontab_import.quartz.tree import NS
from crontab_import.quartz.xml_file import parse_quartz_xml

ROOT = Path(__file__).resolve().parents[2]
SEEDS = [
    (ROOT / "examples/quartz/jobs.xml").read_bytes(),
    (ROOT / "tests/importers/data/quartz_triggers.xml").read_bytes(),
    (ROOT / "tests/importers/data/quartz_v18.xml").read_bytes(),
]
HANDLERS = load_handler_map(ROOT / "examples/quartz/handlers.toml")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FRAGMENTS = [
    "<",
    ">",
    "&",
    "&amp;",
    "&#0;",
    "&#x41;",
    "]]>",
    "<![CDATA[x]]>",
    "<!-- c -->",
    "<?pi x?>",
    "<!DOCTYPE x>",
    "\x00",
    "\xff",
    "é",
    "\n",
    " ",
    "<job>",
    "</job>",
    "<trigger>",
    "</trigger>",
    "<cron>",
    "<simple>",
    "<calendar-interval>",
    "<date-interval>",
    "<name>x</name>",
    "<group></group>",
    "<job-name>ghost</job-name>",
    "<priority>99999999999</priority>",
    "<cron-expression>0 0 12 ? * MON#6</cron-expression>",
    "<time-zone>Nope/Nope</time-zone>",
    "<start-time>2026-02-30T00:00:00Z</start-time>",
    "<end-time>1970-01-01T00:00:00Z</end-time>",
    "<repeat-count>-1</repeat-count>",
    "<repeat-interval>0</repeat-interval>",
    "<start-time-seconds-in-future>99999999999999999999</start-time-seconds-in-future>",
    "<volatility>true</volatility>",
    "<durability>1</durability>",
    'xmlns="urn:other"',
    'version="1.8"',
    'x="1"',
    "<x:y xmlns:x='urn:x'/>",
    "{missing}",
]
VALUES = [
    "",
    " ",
    "0",
    "-1",
    "+5",
    "-0",
    "1e3",
    "99999999999999999999999",
    "true",
    "TRUE",
    "yes",
    "0 0 12 * * ?",
    "0 0 12 ? * 6L",
    "* * * * * ? 2099",
    "0 0 0 29 2 ? 2100",
    "L-31",
    "?",
    "0/0 * * * * ?",
    "0 0 12 ? * MON-FRI/2",
    "MISFIRE_INSTRUCTION_FIRE_NOW",
    "DAY",
    "SECOND",
    "2026-03-08T02:30:00",
    "2026-11-01T01:30:00",
    "9999-12-31T24:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+14:00",
    "2026-01-01T00:00:00-14:01",
    "PST",
    "GMT+14",
    "GMT-12:30",
    "Etc/GMT+12",
    "{x}",
    "{",
    "a.B",
    "../../etc/passwd",
]


def check(result: ParseResult, file: str) -> None:
    assert isinstance(result, ParseResult)
    for error in result.errors:
        assert error.file == file
        assert isinstance(error.line, int), error
    for item in result.items:
        assert item.source.file == file and isinstance(item.source.line, int)
        if item.status is ItemStatus.OK:
            assert item.job is not None and item.reason is None
        if item.status in (ItemStatus.ERROR, ItemStatus.INACTIVE, ItemStatus.UNSUPPORTED):
            assert item.reason
        if item.status in (ItemStatus.ERROR, ItemStatus.INACTIVE):
            assert result.errors
    ids = [i.id for i in result.items if i.id is not None]
    assert len(ids) == len(set(ids))


def run(data: bytes, *, with_handlers: bool = False) -> None:
    try:
        result = parse_quartz_xml(
            data,
            file="fuzz.xml",
            now=NOW,
            default_timezone="Europe/Paris",
            handlers=HANDLERS if with_handlers else None,
        )
    except BridgeError as e:  # allowed, though everything should land in the result
        raise AssertionError(f"raised instead of reporting: {e}") from e
    check(result, "fuzz.xml")


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_give_located_errors(data: bytes) -> None:
    run(data)


@settings(max_examples=300, deadline=2000)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join), st.booleans())
def test_xmlish_noise_gives_located_errors(noise: str, wrapped: bool) -> None:
    if wrapped:
        noise = (
            f'<job-scheduling-data xmlns="{NS}"><schedule>{noise}</schedule></job-scheduling-data>'
        )
    run(noise.encode("utf-8", "surrogatepass"), with_handlers=wrapped)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        data = bytearray(
            draw(st.sampled_from([_delete, _insert, _replace_value, _lines]))(draw, bytes(data))
        )
    return bytes(data)


def _delete(draw: st.DrawFn, data: bytes) -> bytes:
    start = draw(st.integers(0, max(len(data) - 1, 0)))
    length = draw(st.integers(1, 80))
    return data[:start] + data[start + length :]


def _insert(draw: st.DrawFn, data: bytes) -> bytes:
    at = draw(st.integers(0, len(data)))
    return data[:at] + draw(st.sampled_from(FRAGMENTS)).encode("utf-8", "surrogatepass") + data[at:]


def _replace_value(draw: st.DrawFn, data: bytes) -> bytes:
    """Replace the text between one '>' and the next '<' with a chosen value."""
    spans = [i for i in range(len(data)) if data[i : i + 1] == b">"]
    if not spans:
        return data
    start = draw(st.sampled_from(spans)) + 1
    end = data.find(b"<", start)
    if end < 0:
        return data
    value = draw(st.sampled_from(VALUES) | st.text(max_size=12))
    return data[:start] + value.encode("utf-8", "surrogatepass") + data[end:]


def _lines(draw: st.DrawFn, data: bytes) -> bytes:
    lines = data.split(b"\n")
    i = draw(st.integers(0, len(lines) - 1))
    j = draw(st.integers(0, len(lines) - 1))
    if draw(st.booleans()):
        lines.insert(j, lines[i])  # duplicate
    else:
        lines[i], lines[j] = lines[j], lines[i]  # swap
    return b"\n".join(lines)


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.booleans())
def test_mutated_job_files_never_raise_and_stay_consistent(data: bytes, handlers: bool) -> None:
    run(data, with_handlers=handlers)


@settings(max_examples=60, deadline=2000)
@given(st.sampled_from(SEEDS), st.sampled_from(["UTC", "America/New_York", "Asia/Kathmandu"]))
def test_unmutated_seeds_import_without_errors(data: bytes, zone: str) -> None:
    result = parse_quartz_xml(data, file="seed.xml", now=NOW, default_timezone=zone)
    check(result, "seed.xml")
    assert result.errors == ()


TOML_VALUES = [
    '"x"',
    '""',
    "1",
    "-1",
    "true",
    "[]",
    '["a"]',
    "{}",
    '{ A = "1" }',
    "{ A = 1 }",
    "1.5",
    "2026-01-01",
    '"m:f"',
    '"{x"',
    '"observe"',
]
TOML_KEYS = [
    "job_class",
    "job",
    "match",
    "command",
    "dry_run_command",
    "callable",
    "dry_run_callable",
    "user",
    "shell",
    "env",
    "timeout",
    "queue",
    "shadow",
    "other",
]


@settings(max_examples=300, deadline=2000)
@given(
    st.dictionaries(st.sampled_from(TOML_KEYS), st.sampled_from(TOML_VALUES), max_size=6),
    st.dictionaries(st.sampled_from(TOML_KEYS), st.sampled_from(TOML_VALUES), max_size=3),
)
def test_any_handler_map_is_accepted_or_refused_with_a_parse_error(
    entry: dict[str, str], defaults: dict[str, str]
) -> None:
    text = "[defaults]\n" + "".join(f"{k} = {v}\n" for k, v in defaults.items())
    text += "[[handler]]\n" + "".join(f"{k} = {v}\n" for k, v in entry.items())
    try:
        parsed = parse_handler_map(text, file="h.toml")
    except ParseError as e:
        assert e.file == "h.toml"
        return
    assert len(parsed.rules) == 1
