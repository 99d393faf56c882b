"""A JDBC-store Quartz scheduler end to end: imported from its live tables, shadowed through the
plugin, and flipped to Celery slot-exactly.

The scheduler (tests/quartz_plugin's ``QuartzRunner``, bridge plugin enabled) keeps its jobs in
``JobStoreTX`` tables on a private PostgreSQL database; ``bridge import quartz --jdbc`` reads
them while it runs; a real beat and worker run the Celery side. Same checks as the XML-store
test in tests/quartz_plugin/test_quartz_plugin.py, for one job.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.quartz_jdbc import harness
from tests.quartz_jdbc.conftest import ddl
from tests.quartz_plugin import harness as plugin_harness
from tests.quartz_plugin.test_quartz_plugin import (
    HANDLERS,
    World,
    iso,
    job,
    lines,
    parse_slot,
)
from tests.support import wait_for
from tests.support.services import broker_idle

pytestmark = [pytest.mark.java, pytest.mark.integration, pytest.mark.slow(seconds=50),
              pytest.mark.timeout(180)]
PREFIX = "QRTZE_"


@dataclass(frozen=True)
class JdbcBuilt(plugin_harness.Built):
    """The plugin test classes plus the JDBC driver and the harness's connection provider."""

    extra: tuple[str, ...] = ()

    def classpath(self) -> str:
        return os.pathsep.join([super().classpath(), *self.extra])


def _execute(store: harness.JdbcStore, statements: list[str]) -> None:
    engine = create_engine(store.sqlalchemy_url)
    with engine.begin() as conn:
        for s in statements:
            conn.execute(text(s))
    engine.dispose()


@pytest.fixture
def tables(pg_store: harness.JdbcStore) -> Iterator[harness.JdbcStore]:
    statements = ddl("postgresql", PREFIX)
    _execute(pg_store, statements)
    yield pg_store
    created = [s.split()[2] for s in statements if s.startswith("CREATE TABLE")]
    _execute(pg_store, [f"DROP TABLE {t}" for t in reversed(created)])


def test_a_jdbc_store_scheduler_is_imported_shadowed_and_flipped_slot_exactly(
    tables: harness.JdbcStore, tmp_path: Path, redis_url: str, plugin_built: plugin_harness.Built
) -> None:
    base = plugin_built
    extra = (str(harness._classes()), str(harness.JAVA_DIR / "postgresql.jar"))
    built = JdbcBuilt(base.plugin_jar, base.classes, extra)
    world = World(tmp_path, redis_url, built)
    try:
        _run(world, tables, tmp_path)
    finally:
        world.close()


def _run(world: World, store: harness.JdbcStore, tmp: Path) -> None:
    xml = tmp / "jobs.xml"
    xml.write_text(plugin_harness.job_xml([job(tmp, "flip", "tick", [("every", "* * * * * ?")])]))
    (tmp / "handlers.toml").write_text(HANDLERS)
    world.bridge("db", "upgrade")
    jdbc = {
        "org.quartz.jobStore.class": "org.quartz.impl.jdbcjobstore.JobStoreTX",
        "org.quartz.jobStore.driverDelegateClass": store.delegate,
        "org.quartz.jobStore.tablePrefix": PREFIX,
        "org.quartz.jobStore.dataSource": "ds",
        "org.quartz.dataSource.ds.connectionProvider.class": "QuartzJdbcHarness$Provider",
        "org.quartz.dataSource.ds.driver": store.driver,
        "org.quartz.dataSource.ds.url": store.jdbc_url,
        "org.quartz.dataSource.ds.user": store.user,
        "org.quartz.dataSource.ds.password": store.password,
    }
    props = plugin_harness.properties([xml], world.spool, world.authority, extra=jdbc)
    world.quartz = plugin_harness.QuartzProcess(world.built, tmp, props, limit_seconds=120)
    quartz = world.quartz
    quartz.start()  # the XML's jobs are now rows of the running scheduler's tables

    plan = world.bridge(
        "import", "quartz", "--jdbc", store.sqlalchemy_url, "--table-prefix", PREFIX,
        "--handlers", str(tmp / "handlers.toml"), "--timezone", "UTC", "--json",
    )  # fmt: skip
    assert '"id": "flip.tick"' in plan.stdout and '"in_step": true' in plan.stdout, plan.stdout

    worker, beat = world.start_celery()
    legacy, celery = tmp / "legacy-flip.tick.txt", tmp / "celery-flip.tick.txt"
    wait_for(
        "both paths firing flip.tick",
        lambda: (
            len(lines(legacy)) >= 3
            and sum(r.path == "celery" and r.role == "observe" for r in world.runs("flip.tick"))
            >= 3
        ),
        60,
        logs=world.tail,
    )
    boundary = _flip(world)
    ahead = (boundary - datetime.now(UTC)).total_seconds()
    wait_for("Celery running flip.tick after the boundary", lambda: len(lines(celery)) >= 3,
             ahead + 40, logs=world.tail)  # fmt: skip

    assert quartz.stop() == 0, quartz.output()
    world.stop(beat)
    wait_for("every delivered run to finish",
             lambda: broker_idle(world.env["BRIDGE_REDIS_URL"]), 20, logs=world.tail)
    world.stop(worker)
    world.bridge("legacy", "ingest", "--quartz-spool", str(world.spool), "--json")

    runs = world.runs("flip.tick")
    legacy_slots = Counter(map(parse_slot, lines(legacy)))
    stood_down = sorted(r.slot for r in runs if r.path == "legacy" and r.role == "stand-down")
    celery_runs = Counter(
        r.slot for r in runs
        if r.path == "celery" and r.role == "authoritative" and r.status == "succeeded"
    )  # fmt: skip
    executed = sorted(r.slot for r in runs if r.path == "legacy" and r.role == "authoritative")
    assert executed == sorted(legacy_slots)  # every Quartz firing recorded by the plugin
    assert max(legacy_slots) < boundary <= min(stood_down), (legacy_slots, stood_down)
    assert stood_down[0] == boundary
    assert celery_runs and min(celery_runs) == boundary
    for slot in (boundary + timedelta(seconds=i) for i in range(-3, 3)):
        assert legacy_slots[slot] + celery_runs[slot] == 1, (slot, legacy_slots, celery_runs)


def _flip(world: World) -> datetime:
    """Flip flip.tick to Celery a few seconds ahead; on a loaded machine the CLI may start after
    that instant has become too close (refused, nothing changed): then try a later one."""
    for lead in (5, 10, 20, 40):
        boundary = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lead)
        done = world.bridge("authority", "flip", "flip.tick", "--to", "celery", "--force",
                            "--reason", "test", "--at", iso(boundary), ok=(0, 1))  # fmt: skip
        if done.returncode == 0:
            return boundary
        assert "too-soon" in done.stdout + done.stderr, done
    pytest.fail("the flip was refused as too soon four times")
