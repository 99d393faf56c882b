"""Real Quartz 2.3.2 on JDBC JobStores: a private PostgreSQL and a private MariaDB database per
session, with the Quartz tables, filled by the real scheduler through the Quartz API (two
schedulers in the same tables: ``props`` with useProperties=true, ``serial`` with serialized
JobDataMaps)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.quartz_jdbc import harness

HERE = Path(__file__).resolve().parent
PG_ADMIN = os.environ.get("BRIDGE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
MARIA_HOST = os.environ.get("BRIDGE_TEST_MARIADB", "127.0.0.1:3306")
SCHEDULERS = {"props": True, "serial": False}


@dataclass
class Quartz:
    """A database with the Quartz tables and what each scheduler's running Quartz reported."""

    store: harness.JdbcStore
    reported: dict[str, dict[str, harness.QuartzTrigger]]  # sched name -> trigger -> report


def ddl(backend: str, prefix: str = "QRTZ_") -> list[str]:
    name = "tables_postgres.sql" if backend == "postgresql" else "tables_mysql_innodb.sql"
    text = (HERE / name).read_text().replace("QRTZ_", prefix)
    body = "\n".join(ln for ln in text.splitlines() if not ln.startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def _skip_without_java() -> None:
    reason = harness.unavailable_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_store() -> Iterator[harness.JdbcStore]:
    import psycopg

    _skip_without_java()
    name = f"bridge_quartz_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        pytest.fail(f"PostgreSQL not reachable at {PG_ADMIN}: {e}")
    admin.execute(f'CREATE DATABASE "{name}"')
    hostport = PG_ADMIN.split("@", 1)[1].rsplit("/", 1)[0]
    user = PG_ADMIN.split("://", 1)[1].split("@", 1)[0].split(":")[0]
    with psycopg.connect(f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}", autocommit=True) as conn:
        for stmt in ddl("postgresql"):
            conn.execute(stmt)
    yield harness.JdbcStore(
        "postgresql", f"jdbc:postgresql://{hostport}/{name}", user, "",
        f"postgresql+psycopg://{user}@{hostport}/{name}",
    )  # fmt: skip
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
    )
    admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


def maria_admin(database: str | None = None):  # type: ignore[no-untyped-def]
    import pymysql

    host, port = MARIA_HOST.rsplit(":", 1)
    return pymysql.connect(
        host=host, port=int(port), user="root", password="", database=database, autocommit=True,
        connect_timeout=5,
    )  # fmt: skip


@pytest.fixture(scope="session")
def maria_store() -> Iterator[harness.JdbcStore]:
    import pymysql

    _skip_without_java()
    name = f"bridge_quartz_{uuid.uuid4().hex[:10]}"
    try:
        admin = maria_admin()
    except pymysql.err.OperationalError as e:
        pytest.fail(f"MariaDB not reachable at {MARIA_HOST} (bash .ci/setup starts it): {e}")
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    with maria_admin(name) as conn, conn.cursor() as cur:
        for stmt in ddl("mariadb"):
            cur.execute(stmt)
    yield harness.JdbcStore(
        "mariadb", f"jdbc:mariadb://{MARIA_HOST}/{name}", "root", "",
        f"mysql+pymysql://root@{MARIA_HOST}/{name}",
    )  # fmt: skip
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


def _fill(store: harness.JdbcStore) -> Quartz:
    reported = {
        name: harness.run(store, sched_name=name, use_properties=props)
        for name, props in SCHEDULERS.items()
    }
    return Quartz(store, reported)


@pytest.fixture(scope="session")
def pg_quartz(pg_store: harness.JdbcStore) -> Quartz:
    return _fill(pg_store)


@pytest.fixture(scope="session")
def maria_quartz(maria_store: harness.JdbcStore) -> Quartz:
    return _fill(maria_store)


@pytest.fixture(params=["postgresql", "mariadb"])
def quartz(request: pytest.FixtureRequest) -> Quartz:
    fixture = "pg_quartz" if request.param == "postgresql" else "maria_quartz"
    result: Quartz = request.getfixturevalue(fixture)
    return result


@pytest.fixture(scope="session")
def plugin_built(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """tests/quartz_plugin's runner classes and the plugin jar, built once per session."""
    from tests.quartz_plugin import harness as plugin_harness

    reason = plugin_harness.unavailable_reason()
    if reason:
        pytest.skip(reason)
    return plugin_harness.compile_all(tmp_path_factory.mktemp("quartz-plugin-build"))
