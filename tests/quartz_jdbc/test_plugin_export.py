"""``bridge import quartz --export FILE``: the plugin's export of a live scheduler gives the same
plan as reading its JDBC tables, and the fire times of the running Quartz."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bridge.core.schedules import compile_schedule
from crontab_import.model import ParseResult
from crontab_import.plan import changed_fields
from crontab_import.quartz.export import read_export
from crontab_import.quartz.jdbc import read_store
from crontab_import.quartz.store import parse_store
from tests.quartz_jdbc import harness
from tests.quartz_jdbc.conftest import ddl
from tests.quartz_jdbc.test_jdbc_import import EPOCH, IMPORTED
from tests.support import wait_for

# one worker runs the module: its tests share one exported scheduler (a module fixture)
pytestmark = [pytest.mark.java, pytest.mark.integration, pytest.mark.xdist_group("plugin-export")]

PREFIX = "QRTZX_"


@dataclass
class Exported:
    store: harness.JdbcStore
    file: Path
    reported: dict[str, harness.QuartzTrigger]


def _execute(store: harness.JdbcStore, statements: list[str]) -> None:
    engine = create_engine(store.sqlalchemy_url)
    with engine.begin() as conn:
        for s in statements:
            conn.execute(text(s))
    engine.dispose()


@pytest.fixture(scope="module")
def exported(
    pg_store: harness.JdbcStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Exported]:
    statements = ddl("postgresql", PREFIX)
    _execute(pg_store, statements)
    tmp = tmp_path_factory.mktemp("export")
    file = tmp / "quartz-export.json"
    plugin = (harness.plugin_jar(), tmp / "spool", file)
    reported = harness.run(
        pg_store, sched_name="exported", use_properties=False, prefix=PREFIX, plugin=plugin
    )
    yield Exported(pg_store, file, reported)
    tables = [s.split()[2] for s in statements if s.startswith("CREATE TABLE")]
    _execute(pg_store, [f"DROP TABLE {t}" for t in reversed(tables)])


def _parse(rows) -> ParseResult:  # type: ignore[no-untyped-def]
    return parse_store(
        rows, handlers=None, now=datetime.now(UTC), default_timezone="America/New_York"
    )


def test_the_export_gives_the_same_items_as_the_tables(exported: Exported) -> None:
    doc = json.loads(exported.file.read_text())
    assert doc["format"] == "cron-bridge-quartz-export" and doc["scheduler"] == "exported"
    from_export = _parse(read_export(str(exported.file)))
    from_tables = _parse(
        read_store(exported.store.sqlalchemy_url, table_prefix=PREFIX, sched_name="exported")
    )
    assert from_export.file == from_tables.file == "quartz-scheduler:exported"
    assert from_export.errors == from_tables.errors == ()
    a = {i.id: i for i in from_export.items}
    b = {i.id: i for i in from_tables.items}
    assert set(a) == set(b) and len(a) == 12
    for job_id in a:
        assert a[job_id].status == b[job_id].status, job_id
        assert a[job_id].reason == b[job_id].reason, job_id
        spec_a, spec_b = a[job_id].job, b[job_id].job
        if spec_a is not None and spec_b is not None:
            diff = changed_fields(spec_a.to_json(), spec_b.to_json())
            assert diff == [], (job_id, [(spec_a.to_json(), spec_b.to_json())])
        assert (spec_a is None) == (spec_b is None), job_id
        for key in ("job_data", "trigger_data", "job_data_unreadable", "misfire"):
            assert a[job_id].details.get(key) == b[job_id].details.get(key), (job_id, key)


def test_the_export_fires_when_the_running_quartz_does(exported: Exported) -> None:
    items = {i.id: i for i in _parse(read_export(str(exported.file))).items}
    for job_id, trigger in IMPORTED.items():
        job = items[job_id].job
        assert job is not None, job_id
        expected = [ms // 1000 for ms in exported.reported[trigger].next_ms]
        ev = compile_schedule(job.schedule)
        slot, got = ev.next_after(EPOCH + timedelta(seconds=expected[0] - 1)), []
        for _ in expected:
            assert slot is not None
            got.append(int(slot.timestamp()))
            slot = ev.next_after(slot)
        assert got == expected, job_id
        assert items[job_id].details["quartz"]["in_step"] is True, job_id


def test_switching_between_export_and_jdbc_changes_nothing(
    cli, redis_url: str, tmp_path: Path, exported: Exported
) -> None:  # type: ignore[no-untyped-def]
    env = {
        "BRIDGE_REDIS_URL": redis_url,
        "BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.db'}",
        "BRIDGE_TIMEZONE": "America/New_York",
    }
    assert cli("db", "upgrade", env=env).code == 0
    first = cli("import", "quartz", "--export", str(exported.file), "--json", env=env)
    assert first.code == 0, first.err
    assert first.json()["applied"]["created"] == 7
    url = exported.store.sqlalchemy_url
    again = cli("import", "quartz", "--jdbc", url, "--table-prefix", PREFIX, "--json", env=env)
    assert again.code == 0, again.err
    assert again.json()["summary"]["unchanged"] == 7
    assert again.json()["applied"] == {"created": 0, "updated": 0, "deleted": 0}


def test_a_broken_export_is_one_line_exit_2(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "export.json"
    bad.write_text('{"format": "something else"}')
    r = cli("import", "quartz", "--export", str(bad), "--dry-run")
    assert r.code == 2
    assert r.err.strip().splitlines() == [
        f'error: {bad}: not a cron-bridge Quartz export (no "format": "cron-bridge-quartz-export")'
    ]


def test_a_ram_store_scheduler_exports_the_jobs_its_xml_defines(
    plugin_built, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Any JobStore: a RAMJobStore scheduler (jobs loaded from a job XML by Quartz itself)
    exports the same jobs and schedules the XML importer reads from that file."""
    from crontab_import.quartz.xml_file import parse_file
    from tests.quartz_plugin import harness as plugin_harness
    from tests.quartz_plugin.test_quartz_plugin import job

    xml = tmp_path / "jobs.xml"
    xml.write_text(plugin_harness.job_xml([
        job(tmp_path, "ram", "tick", [("tick", "0 0 * * * ?")]),
        job(tmp_path, "ram", "multi", [("even", "0 0/2 * * * ?"), ("odd", "0 1/2 * * * ?")]),
    ]))  # fmt: skip
    export = tmp_path / "export.json"
    props = plugin_harness.properties(
        [xml], tmp_path / "spool", None,
        extra={"org.quartz.plugin.bridge.exportFile": str(export)},
    )  # fmt: skip
    quartz = plugin_harness.QuartzProcess(plugin_built, tmp_path, props)
    quartz.start()
    try:
        wait_for("the export file", export.exists, 30, interval=0.05, logs=quartz.output)
    finally:
        assert quartz.stop() == 0, quartz.output()
    from_export = {i.id: i for i in _parse(read_export(str(export))).items}
    now = datetime.now(UTC)
    from_xml = {i.id: i for i in parse_file(xml, now=now, default_timezone="UTC").items}
    assert set(from_export) == set(from_xml) == {"ram.tick", "ram.multi.even", "ram.multi.odd"}
    for job_id, item in from_export.items():
        a, b = item.job, from_xml[job_id].job
        assert a is not None and b is not None
        assert (a.schedule.expression, a.schedule.timezone) == (
            b.schedule.expression, b.schedule.timezone,
        )  # fmt: skip
        assert a.policies == b.policies, job_id
        # the same data (a store's job data is in key order; a file's in the file's order)
        assert a.handler.job_class == b.handler.job_class  # type: ignore[union-attr]
        assert dict(a.handler.job_data) == dict(b.handler.job_data)  # type: ignore[union-attr]
        assert item.details["quartz"]["in_step"] is True
