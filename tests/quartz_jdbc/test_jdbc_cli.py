"""``bridge import quartz --jdbc`` through the CLI: re-import, changes in Quartz, errors, and the
read-only transaction, against real Quartz tables on PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from crontab_import.quartz.jdbc import begin_read_only
from tests.quartz_jdbc import harness
from tests.quartz_jdbc.conftest import Quartz, ddl, maria_admin

pytestmark = [pytest.mark.java, pytest.mark.integration]


def _env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "BRIDGE_REDIS_URL": redis_url,
        "BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.db'}",
        "BRIDGE_TIMEZONE": "America/New_York",
    }


def _execute(store: harness.JdbcStore, *statements: str) -> None:
    engine = create_engine(store.sqlalchemy_url)
    with engine.begin() as conn:
        for s in statements:
            conn.execute(text(s))
    engine.dispose()


@pytest.fixture
def changes_store(quartz: Quartz) -> Iterator[harness.JdbcStore]:
    """A scheduler of its own (tables QRTZ2_) that the test may change."""
    store = quartz.store
    statements = ddl(store.backend, "QRTZ2_")
    _execute(store, *statements)
    harness.run(store, sched_name="changes", use_properties=True, prefix="QRTZ2_")
    yield store
    tables = [s.split()[2] for s in statements if s.startswith("CREATE TABLE")]
    _execute(store, *(f"DROP TABLE {t}" for t in reversed(tables)))


def _jobs(doc: Any) -> dict[str, Any]:
    return {j["id"]: j for j in doc["jobs"]}


def test_reimport_is_idempotent_and_the_plan_shows_what_changed_in_quartz(
    cli, redis_url: str, tmp_path: Path, changes_store: harness.JdbcStore
) -> None:  # type: ignore[no-untyped-def]
    env = _env(redis_url, tmp_path)
    assert cli("db", "upgrade", env=env).code == 0
    args = ("import", "quartz", "--jdbc", changes_store.sqlalchemy_url, "--table-prefix", "QRTZ2_")
    first = cli(*args, "--json", env=env)
    assert first.code == 0, first.err
    doc = first.json()
    assert doc["files"] == ["quartz-scheduler:changes"]
    assert doc["applied"]["created"] == 7 and doc["summary"]["inactive"] == 2
    nightly = _jobs(doc)["billing.invoice-run.nightly"]
    assert nightly["quartz"]["state"] == "WAITING" and nightly["quartz"]["in_step"] is True
    assert nightly["quartz"]["next_fire"] == nightly["quartz"]["bridge_next"]
    assert nightly["misfire"] == "MISFIRE_INSTRUCTION_DO_NOTHING"

    again = cli(*args, "--json", env=env)
    assert again.code == 0, again.err
    assert again.json()["summary"]["unchanged"] == 7
    assert again.json()["applied"] == {"created": 0, "updated": 0, "deleted": 0}

    p = "QRTZ2_"
    where = "SCHED_NAME = 'changes' AND TRIGGER_GROUP = 'ops' AND TRIGGER_NAME = 'batch'"
    _execute(
        changes_store,
        f"UPDATE {p}CRON_TRIGGERS SET CRON_EXPRESSION = '0 45 2 * * ?' "
        "WHERE SCHED_NAME = 'changes' AND TRIGGER_NAME = 'nightly'",
        f"DELETE FROM {p}SIMPLE_TRIGGERS WHERE {where}",
        f"DELETE FROM {p}TRIGGERS WHERE {where}",
        f"DELETE FROM {p}JOB_DETAILS WHERE SCHED_NAME = 'changes' AND JOB_NAME = 'batch'",
        f"UPDATE {p}TRIGGERS SET TRIGGER_STATE = 'PAUSED' "
        "WHERE SCHED_NAME = 'changes' AND TRIGGER_NAME = 'fortnight'",
    )
    changed = cli(*args, "--json", env=env)
    assert changed.code == 0, changed.err
    jobs = _jobs(changed.json())
    assert jobs["billing.invoice-run.nightly"]["status"] == "update"
    assert jobs["billing.invoice-run.nightly"]["changed"] == [
        "schedule.expression", "source.raw",
    ]  # fmt: skip
    assert jobs["ops.batch"]["status"] == "delete"
    assert jobs["reports.fortnight"]["status"] == "inactive"
    assert "paused in Quartz" in jobs["reports.fortnight"]["reason"]
    assert changed.json()["applied"] == {"created": 0, "updated": 1, "deleted": 1}

    table = cli(*args, "--dry-run", env=env)
    assert table.code == 0, table.err
    assert "quartz-scheduler:changes" in table.out and "paused in Quartz" in table.out


def test_store_errors_are_one_line_with_exit_codes(
    cli, quartz: Quartz, tmp_path: Path, redis_url: str
) -> None:  # type: ignore[no-untyped-def]
    env = _env(redis_url, tmp_path)
    url = quartz.store.sqlalchemy_url
    several = cli("import", "quartz", "--jdbc", url, "--dry-run", env=env)
    assert several.code == 2
    assert several.err.strip().splitlines() == [
        "error: --sched-name: these tables hold 2 schedulers (props, serial); name one"
    ]
    unknown = cli("import", "quartz", "--jdbc", url, "--sched-name", "nope", env=env)
    assert unknown.code == 2 and "no scheduler 'nope'" in unknown.err
    prefix = cli("import", "quartz", "--jdbc", url, "--table-prefix", "NOPE_", env=env)
    assert prefix.code == 2 and "wrong --table-prefix?" in prefix.err
    assert len(prefix.err.strip().splitlines()) == 1
    scheme = "postgresql" if quartz.store.backend == "postgresql" else "mysql"
    down = cli("import", "quartz", "--jdbc", f"{scheme}://root@127.0.0.1:1/x", env=env)
    assert down.code == 3 and down.err.startswith("error: cannot read the Quartz database")
    both = cli("import", "quartz", "x.xml", "--jdbc", url, env=env)
    assert both.code == 2 and "one of them" in both.err
    alone = cli("import", "quartz", "x.xml", "--sched-name", "props", env=env)
    assert alone.code == 2 and "need --jdbc URL" in alone.err


def test_the_reader_transaction_refuses_writes(quartz: Quartz) -> None:
    engine = create_engine(quartz.store.sqlalchemy_url)
    try:
        with engine.connect() as conn:
            begin_read_only(conn)
            assert conn.execute(text("SELECT COUNT(*) FROM QRTZ_TRIGGERS")).scalar()
            with pytest.raises(DBAPIError, match=r"(?i)read.only"):
                conn.execute(text("UPDATE QRTZ_TRIGGERS SET PRIORITY = 1"))
    finally:
        engine.dispose()
    if quartz.store.backend == "mariadb":  # still untouched, seen from another session
        database = quartz.store.sqlalchemy_url.rsplit("/", 1)[1]
        with maria_admin(database) as admin, admin.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM QRTZ_TRIGGERS WHERE PRIORITY = 1")
            assert cur.fetchone() == (0,)
