"""Real services for tests: a private ``redis-server``, PostgreSQL databases, empty registries."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.waiting import wait_for

PG_ADMIN_URL = os.environ.get(
    "BRIDGE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """Debian's ``redis-server`` on ``port``, no persistence; ``restart()`` after a kill."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    extra: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(f"redis-server on port {self.port} to answer PING", lambda: _pong(self.port),
                 timeout=10, interval=0.05)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def pg_connect_admin():  # type: ignore[no-untyped-def]
    """An autocommit connection to the server's ``postgres`` database (fails the test if down)."""
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)


def create_pg_database(prefix: str = "bridge_test") -> tuple[str, str]:
    """Create a uniquely named database; return ``(name, SQLAlchemy URL)``."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with pg_connect_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return name, f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"


def drop_pg_database(name: str) -> None:
    """Drop ``name`` after cutting whatever connections a test left open."""
    with pg_connect_admin() as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def empty_registry(url: str) -> None:
    """Migrate the registry at ``url`` to the current schema and delete every row."""
    from sqlalchemy import text

    from bridge.store.db import Registry, upgrade
    from bridge.store.models import Base

    reg = Registry(url, check_schema=False)
    upgrade(reg.engine)
    with reg.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(text(f"DELETE FROM {table.name}"))
    reg.dispose()


def broker_idle(redis_url: str, queue: str = "bridge") -> bool:
    """Nothing queued on ``queue``, nothing delivered and unacknowledged (kombu's ``unacked``
    hash, the bridge transport's inflight lists): no run is in progress and none can be
    redelivered — the condition to wait for instead of "sleep a bit after the queue drained"."""
    import redis

    from bridge.adapters.transport import INFLIGHT_INDEX, INFLIGHT_PREFIX

    r = redis.Redis.from_url(redis_url)
    try:
        inflight = [k for k in r.scan_iter(match=f"{INFLIGHT_PREFIX}*")
                    if k != INFLIGHT_INDEX.encode() and r.llen(k)]
        return int(r.llen(queue)) == 0 and int(r.hlen("unacked")) == 0 and not inflight
    finally:
        r.close()
