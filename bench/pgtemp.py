"""A disposable PostgreSQL database for a bench run (the local server, ``BRIDGE_TEST_PG_ADMIN``).

    with disposable_pg("firelag") as url:   # postgresql+psycopg://.../bench_firelag_<pid>
        ...

Created empty (the bench migrates it), dropped at the end, even on failure. Exits 3 when the
server cannot be reached: a bench asked for PostgreSQL must not silently measure nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

ADMIN_URL = os.environ.get("BRIDGE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def disposable_pg(label: str) -> Iterator[str]:
    import psycopg

    name = f"bench_{label}_{os.getpid()}"
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.Error as e:
        print(f"PostgreSQL unreachable at {ADMIN_URL} ({e}); set BRIDGE_TEST_PG_ADMIN",
              file=sys.stderr)
        raise SystemExit(3) from e
    try:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
        base = ADMIN_URL.rsplit("/", 1)[0].split("://", 1)[1]
        yield f"postgresql+psycopg://{base}/{name}"
    finally:
        with contextlib.suppress(psycopg.Error):
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
