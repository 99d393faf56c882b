"""The Quartz XML importer against the real thing: Quartz 2.3.2's XMLSchedulingDataProcessor.

For every job file under examples/quartz/ and tests/importers/data/, the harness in
tests/oracle/ loads the file into a RAMJobStore scheduler (never started) and prints what Quartz
scheduled; the importer must agree on the jobs, the triggers, their expressions, time zones,
misfire instructions, repeat counts/intervals and start/end times, and must refuse exactly the
files Quartz refuses.
"""

from __future__ import annotations

import importlib.util
import re
import zipfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.schedules import compile_schedule
from crontab_import.model import ImportItem, ItemStatus, ParseResult
from crontab_import.quartz.schedules import JAVA_SHORT_IDS
from crontab_import.quartz.schema import CRON_SCHEMA_PATTERNS
from crontab_import.quartz.xml_file import parse_file

ROOT = Path(__file__).resolve().parents[2]
ZONE = "America/New_York"


def _load_oracle() -> ModuleType:
    path = ROOT / "tests" / "oracle" / "quartz_xml_oracle.py"
    spec = importlib.util.spec_from_file_location("quartz_xml_oracle", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


oracle = _load_oracle()
UNAVAILABLE = oracle.unavailable_reason()
pytestmark = [
    pytest.mark.java,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=f"Quartz oracle: {UNAVAILABLE}"),
]

FILES = sorted(
    [*(ROOT / "examples" / "quartz").glob("*.xml"), *(ROOT / "tests/importers/data").glob("*.xml")]
)
CRON_MISFIRE = {0: "SMART_POLICY", 1: "FIRE_ONCE_NOW", 2: "DO_NOTHING"}
SIMPLE_MISFIRE = {
    0: "SMART_POLICY",
    1: "FIRE_NOW",
    2: "RESCHEDULE_NOW_WITH_EXISTING_REPEAT_COUNT",
    3: "RESCHEDULE_NOW_WITH_REMAINING_REPEAT_COUNT",
    4: "RESCHEDULE_NEXT_WITH_REMAINING_COUNT",
    5: "RESCHEDULE_NEXT_WITH_EXISTING_COUNT",
}


def _is_18(path: Path) -> bool:
    return b'version="1.8"' in path.read_bytes()


def _millis(t: datetime | None) -> int | None:
    return None if t is None else round(t.timestamp() * 1000)


def _run(path: Path) -> tuple[dict[str, Any], ParseResult]:
    truth = oracle.load(
        path, default_timezone=ZONE, schema=oracle.SCHEMA_1_8 if _is_18(path) else None
    )
    now = datetime.fromtimestamp(truth.get("load_millis", 0) / 1000, UTC)
    return truth, parse_file(path, now=now, default_timezone=ZONE)


@pytest.mark.integration
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_importer_agrees_with_xml_scheduling_data_processor(path: Path) -> None:
    truth, result = _run(path)
    if not truth["ok"]:
        if "Unknown trigger type: date-interval" in truth["error"]:
            pytest.skip("1.8 date-interval: the 2.3.2 code cannot load it (see the 1.8 test)")
        assert result.errors, f"Quartz refuses {path.name} ({truth['error']}), the importer not"
        assert not [i for i in result.items if i.status is ItemStatus.OK]
        return
    assert not [i for i in result.items if i.status is ItemStatus.INACTIVE], result.errors
    _same_jobs(truth["jobs"], result)
    ours = {
        (i.details["trigger"]["group"], i.details["trigger"]["name"]): i
        for i in result.items
        if "trigger" in i.details
    }
    assert set(ours) == {(t["group"], t["name"]) for t in truth["triggers"]}
    for t in truth["triggers"]:
        _same_trigger(t, ours[(t["group"], t["name"])], truth["load_millis"])


def _same_jobs(jobs: list[dict[str, Any]], result: ParseResult) -> None:
    ours = {}
    for item in result.items:
        d = item.details
        ours[(d["job"]["group"], d["job"]["name"])] = {
            "class": d["job_class"], "durable": d["durability"], "recover": d["recover"],
            "data": d["job_data"], "description": d["job"]["description"],
        }  # fmt: skip
    theirs = {
        (j["group"], j["name"]): {
            k: j[k] for k in ("class", "durable", "recover", "data", "description")
        }
        for j in jobs
    }
    assert ours == theirs


def _same_trigger(t: dict[str, Any], item: ImportItem, load_millis: int) -> None:
    d = item.details
    assert (d["job"]["group"], d["job"]["name"]) == (t["job_group"], t["job_name"])
    assert d["trigger"]["type"] == t["type"]
    assert d["trigger"]["priority"] == t["priority"]
    assert d.get("calendar") == t["calendar"]
    assert d.get("trigger_data", {}) == t["data"]
    names = SIMPLE_MISFIRE if t["type"] == "simple" else CRON_MISFIRE
    assert d["misfire"] == "MISFIRE_INSTRUCTION_" + names[t["misfire"]]
    assert item.job is not None, item.reason
    spec = item.job.schedule
    assert _millis(spec.end) == t["end_millis"]
    if d["start_source"] == "file":
        assert _millis(spec.start) == t["start_millis"]
    elif d["start_source"] == "none":
        assert spec.start is None
    else:  # import time: Quartz's "now" is a few milliseconds after load_millis
        assert abs((_millis(spec.start) or 0) - t["start_millis"]) < 5000
    if t["type"] == "cron":
        _same_cron(t, item, load_millis)
    elif t["type"] == "simple":
        assert (spec.repeat_count, spec.interval_ms) == (
            None if t["repeat_count"] == -1 else t["repeat_count"],
            t["repeat_interval"],
        )
    else:
        assert spec.interval == t["repeat_interval"]
        assert spec.interval_unit is not None
        assert spec.interval_unit.value == t["repeat_interval_unit"].lower()
        assert spec.timezone == t["time_zone"]


def _same_cron(t: dict[str, Any], item: ImportItem, load_millis: int) -> None:
    assert item.job is not None
    spec = item.job.schedule
    assert spec.expression == t["expression"]
    quartz_id = item.details.get("time_zone_quartz")
    if t["time_zone"] == "GMT" and quartz_id not in (None, "GMT"):
        assert item.status is ItemStatus.ERROR and "unknown time-zone" in (item.reason or "")
        return
    if t["time_zone"].startswith("GMT") and t["tz_offset_millis"] % 3_600_000:
        assert item.status is ItemStatus.UNSUPPORTED
        return
    expected = JAVA_SHORT_IDS.get(t["time_zone"], t["time_zone"])
    if re.fullmatch(r"GMT[+-].*", t["time_zone"]):
        offset = ZoneInfo(spec.timezone).utcoffset(datetime(2026, 1, 1))
        assert offset == timedelta(milliseconds=t["tz_offset_millis"])
    else:
        assert spec.timezone == expected
    start = spec.start or datetime.fromtimestamp(t["start_millis"] / 1000, UTC)
    evaluator = compile_schedule(replace(spec, start=None, end=None))
    first = evaluator.next_after(start - timedelta(seconds=1))
    assert _millis(first) == t["next_fire_millis"]


@pytest.mark.integration
def test_quartz_232_refuses_18_only_elements_the_importer_names_them() -> None:
    path = ROOT / "tests/importers/data/quartz_v18.xml"
    truth = oracle.load(path, default_timezone=ZONE)  # validated with the 2.0 schema
    assert not truth["ok"]
    rejected = " ".join(v["message"] for v in truth["validation"])
    assert "job-listener-ref" in rejected and "volatility" in rejected
    result = parse_file(path, now=datetime(2026, 1, 1, tzinfo=UTC), default_timezone=ZONE)
    assert "Quartz 2.x refuses (job-listener-ref at line 20" in result.notes[0]


@pytest.mark.integration
def test_processor_reads_date_interval_as_an_unknown_trigger_type() -> None:
    path = ROOT / "tests/importers/data/quartz_v18_date_interval.xml"
    truth = oracle.load(path, default_timezone=ZONE, schema=oracle.SCHEMA_1_8)
    assert truth == {
        "ok": False,
        "error": "java.text.ParseException: Unknown trigger type: date-interval",
        "validation": [],
    }


# --- the schema's cron-expression pattern, compared with the XSD shipped in the jar ----------


def _jar_patterns() -> dict[str, re.Pattern[str]]:
    out = {}
    with zipfile.ZipFile(oracle.JAVA_DIR / "quartz2.jar") as jar:
        for version, name in (("2.0", "2_0"), ("1.8", "1_8")):
            xsd = jar.read(f"org/quartz/xml/job_scheduling_data_{name}.xsd").decode()
            block = xsd[xsd.index('name="cron-expressionType"') :]
            pattern = re.search(r'<xs:pattern value="([^"]*)"', block)
            assert pattern
            out[version] = re.compile(pattern.group(1).replace(r"[\s]", "[ \t\n\r]"))
    return out


JAR_PATTERNS = _jar_patterns() if UNAVAILABLE is None else {}
TOKENS = [
    "0",
    "5",
    "15",
    "59",
    "60",
    "7",
    "1",
    "*",
    "?",
    "/",
    "-",
    ",",
    "L",
    "W",
    "#",
    "C",
    "LW",
    "MON",
    "FRI",
    "mon",
    "JAN",
    "DEC",
    "2026",
    "1970",
    " ",
    "  ",
    "\n",
    "\t",
]


@pytest.mark.parametrize("version", ["2.0", "1.8"])
@pytest.mark.parametrize("expression", [
    "0 0 12 * * ?", "0 0 12 ? * 6L", "0/15 * * * * ?", "0 15 10 ? * MON-FRI", "0 0 12 L-3 * ?",
    "0 0 12 ? * mon", "0  0 12 * * ?", " 0 0 12 * * ?", "0 0 12 * * ? 2026", "0 0 12 15W * ?",
    "0 0 12 ? * 6#3", "0 0-5,30 12 * * ?", "0 0 12 ? JAN/2 *", "0 0 12 * * ? 2026-2030",
    "0 0 12 ? * MON-FRI/2", "0 0 12 ? * 1-3,5", "0 0 12 LW * ?", "0 0 12 * * ? 2026/2",
])  # fmt: skip
def test_cron_schema_pattern_matches_the_jars_xsd(version: str, expression: str) -> None:
    ours = CRON_SCHEMA_PATTERNS[version].fullmatch(expression) is not None
    assert ours == (JAR_PATTERNS[version].fullmatch(expression) is not None)


@pytest.mark.parametrize("version", ["2.0", "1.8"])
@settings(max_examples=400, deadline=None)
@given(
    fields=st.lists(
        st.lists(st.sampled_from(TOKENS), min_size=1, max_size=4), min_size=5, max_size=8
    )
)
def test_cron_schema_pattern_agrees_with_xsd_on_generated_text(
    version: str, fields: list[list[str]]
) -> None:
    expression = " ".join("".join(f) for f in fields)
    ours = CRON_SCHEMA_PATTERNS[version].fullmatch(expression) is not None
    assert ours == (JAR_PATTERNS[version].fullmatch(expression) is not None), expression
