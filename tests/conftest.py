"""Shared fixtures (real services only) and the test tiers. Helpers: ``tests/support``.

Fixtures:

* ``redis_server``: a private ``redis-server`` (Debian's binary) on a free port per session, no
  persistence; ``RedisServer.restart()`` for tests that kill it. ``redis_factory`` starts more.
  ``redis_url``: that server, flushed before the test.
* ``pg_url``: a fresh PostgreSQL database on the local server per session, dropped afterwards.
  ``pg_registry_url``: a database of its own for one test, migrated and empty, dropped after it.
* ``sqlite_url``: a registry file per session; ``sqlite_registry_url``: a migrated, empty
  registry file of the test's own.
* ``db_url``: parametrized over the session SQLite file and PostgreSQL database, migrated and
  emptied before each test — the registry contract suite runs against both.
* A failing test's report ends with the log tails of its processes (any fixture value with a
  ``tail_logs()``: the chaos, e2e and beat harnesses, :class:`tests.support.procs.Procs`).
* Every test gets its own XDG dirs and no ``BRIDGE_*`` variables from the outer environment.

Tiers (see tests/README.md): a test is ``integration`` when it is marked so explicitly or uses
one of :data:`SERVICE_FIXTURES` (or ``db_url`` on PostgreSQL) — the mark is added at collection.
A test outside that tier that starts a subprocess or connects to a service port fails, naming
the mark it is missing, so ``pytest -m "not integration"`` stays a fast, service-free loop.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.net import free_port
from tests.support.services import (
    RedisServer,
    create_pg_database,
    drop_pg_database,
    empty_registry,
    pg_connect_admin,
)

# --- tiers ---------------------------------------------------------------------------------------

SERVICE_FIXTURES = frozenset(
    {"redis_factory", "redis_server", "redis_url", "pg_url", "pg_registry_url"}
)
SERVICE_PORTS = frozenset({5432, 6379, 3306, 5672})  # PostgreSQL, Redis, MariaDB, RabbitMQ
SLOW_DEFAULT_SECONDS = 60.0  # a bare ``pytest.mark.slow``


def uses_services(item: pytest.Item) -> bool:
    if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and callspec.params.get("db_url") == "postgresql"


def expected_seconds(item: pytest.Item) -> float:
    """How long a test takes, as its ``slow(seconds=N)`` mark says (0 when it has none)."""
    mark = item.get_closest_marker("slow")
    if mark is None:
        return 0.0
    return float(mark.kwargs.get("seconds", SLOW_DEFAULT_SECONDS))


FILLERS = 2  # quick tests after each slow one: as many as a worker queues behind its running test


def xdist_group(item: pytest.Item) -> str | None:
    mark = item.get_closest_marker("xdist_group")
    return str(mark.args[0] if mark.args else mark.kwargs.get("name")) if mark else None


def longest_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """Slow tests first, longest first, each followed by quick pure tests (an xdist worker
    queues up to two tests behind the one it runs: quick ones should wait there, not the next
    long one); then the other integration tests, then the pure tier, each in collection order
    so module fixtures stay shared. The slow tests of one ``xdist_group`` stay together (one
    worker runs them, sharing a module fixture), ordered by their total."""
    units: dict[str, list[pytest.Item]] = {}
    for item in items:
        if expected_seconds(item) > 0:
            units.setdefault(xdist_group(item) or item.nodeid, []).append(item)
    slow = sorted(units.values(), key=lambda unit: sum(map(expected_seconds, unit)),
                  reverse=True)
    rest = [i for i in items if expected_seconds(i) == 0]
    quick = [i for i in rest if i.get_closest_marker("integration") is None]
    fillers = quick[:FILLERS * len(slow)]
    ordered: list[pytest.Item] = []
    for n, unit in enumerate(slow):
        ordered += [*unit, *fillers[FILLERS * n:FILLERS * (n + 1)]]
    taken = set(map(id, fillers))
    ordered += [i for i in rest if i.get_closest_marker("integration") is not None]
    ordered += [i for i in quick if id(i) not in taken]
    return ordered


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects: it must see the added marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if uses_services(item) and item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.integration)
    if getattr(config.option, "numprocesses", None) or hasattr(config, "workerinput"):
        items[:] = longest_first(items)


@pytest.fixture(autouse=True)
def pure_tier_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside the integration tier: no subprocesses, no Python socket to a service port
    (libpq's own sockets are not seen: PostgreSQL comes through the pg fixtures, which mark)."""
    if request.node.get_closest_marker("integration") is not None:
        return
    where = request.node.nodeid

    def no_subprocess(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{where} starts a subprocess: mark it pytest.mark.integration")

    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and len(address) >= 2 and address[1] in SERVICE_PORTS:
            raise AssertionError(f"{where} connects to {address[0]}:{address[1]}: mark it "
                                 "pytest.mark.integration")
        return real_connect(sock, address)

    monkeypatch.setattr(subprocess.Popen, "_execute_child", no_subprocess)
    monkeypatch.setattr(socket.socket, "connect", connect)


# --- services ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[type]:
    started: list[RedisServer] = []

    class Factory:
        @staticmethod
        def start(*extra: str) -> RedisServer:
            server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"), extra=list(extra))
            server.start()
            started.append(server)
            return server

    yield Factory
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(redis_factory: type) -> RedisServer:
    return redis_factory.start()  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    import redis

    if not redis_server.running():
        redis_server.restart()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


def _pg_database() -> tuple[str, str]:
    import psycopg

    try:
        pg_connect_admin().close()
    except psycopg.OperationalError as e:
        pytest.fail(f"PostgreSQL not reachable: {e}")
    return create_pg_database()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name, url = _pg_database()
    yield url
    drop_pg_database(name)


@pytest.fixture
def pg_registry_url() -> Iterator[str]:
    """A PostgreSQL registry of this test's own: migrated, empty, dropped afterwards."""
    name, url = _pg_database()
    empty_registry(url)
    yield url
    drop_pg_database(name)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'registry.db'}"


@pytest.fixture
def sqlite_registry_url(tmp_path: Path) -> str:
    """A SQLite registry file of this test's own, migrated and empty."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    empty_registry(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    empty_registry(url)
    return url


# --- processes ---------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failing test's report ends with the log tails of its real processes: every fixture
    value with a ``tail_logs()`` (the chaos, e2e and beat harnesses, :class:`Procs`)."""
    report = yield
    if report.failed and call.when == "call":
        for name, value in getattr(item, "funcargs", {}).items():
            tail_logs = getattr(value, "tail_logs", None)
            if callable(tail_logs):
                try:
                    text = tail_logs()
                except Exception as e:  # a harness half torn down must not hide the failure
                    text = f"(no logs: {e!r})"
                if text:
                    report.sections.append((f"process logs ({name})", str(text)))
    return report


# --- environment and the in-process CLI ----------------------------------------------------------


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("BRIDGE_") and name != "BRIDGE_TEST_PG_ADMIN":
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> object:
        import json

        return json.loads(self.out)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run the ``bridge`` CLI in-process: ``cli("status", "--json", env={...})``."""
    from bridge.cli import context
    from bridge.cli.main import run

    def invoke(*args: str, env: dict[str, str] | None = None) -> CliResult:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        context.STATE.__init__()  # type: ignore[misc]
        capsys.readouterr()
        try:
            run(list(args))
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke
