"""Opening the registry: engine, schema version check, migrations, sessions.

* A SQLite registry (the default) is created and migrated on first use: no manual step.
* PostgreSQL is migrated explicitly (``bridge db upgrade``); a database behind the code is
  refused with that hint, a database *newer* than the code is refused on every backend.
* An unreachable database is an :class:`InfraError` carrying the masked URL and a hint.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker  # Session: the unit of work services pass on

from bridge.core.config import mask_url
from bridge.core.errors import InfraError, InputError, RefusedError
from bridge.store.direct import Direct, apply_pragmas

T = TypeVar("T")

MIGRATIONS = Path(__file__).with_name("migrations")


@dataclass(frozen=True)
class SchemaState:
    current: str | None
    head: str
    known: bool  # the current revision is one this code knows

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _alembic_config(connection: Any = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    apply_pragmas(dbapi_connection)


def private_sqlite_file(path: str) -> None:
    """The registry holds job environments (secrets included): the file, and the ``-wal`` /
    ``-shm`` files SQLite creates with the same mode, are 0600 and the directories the bridge
    creates for it 0700, whatever the umask; an existing file this user owns is tightened."""
    from bridge.adapters.fsperm import private_dir, private_file_by_path

    target = Path(path).expanduser()
    if target.exists() and not target.is_file():
        return  # not ours to touch: SQLite reports what it is
    private_dir(target.parent)
    private_file_by_path(target)  # never open()/close(): that would drop SQLite's locks
    for suffix in ("-wal", "-shm", "-journal"):
        companion = Path(f"{target}{suffix}")
        if companion.is_file():
            private_file_by_path(companion)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:" and not path.startswith("file:"):
            try:
                private_sqlite_file(path)
            except OSError as e:
                raise unreachable(url, e) from e
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        connect_args={"connect_timeout": 5},
    )


def unreachable(url: str, err: Exception) -> InfraError:
    reason = (
        str(getattr(err, "orig", err)).strip().splitlines()[0] if str(err) else type(err).__name__
    )
    return InfraError(
        f"database unreachable at {mask_url(url)}: {reason}",
        url=mask_url(url),
        hint="is the server running and BRIDGE_DATABASE_URL right? try `bridge status`",
    )


def in_transaction(registry: Registry, work: Callable[[Connection], T]) -> T:
    """``work`` in one transaction on the registry's engine. A lost or refusing database is an
    :class:`InfraError` naming the URL; an ``IntegrityError`` is the caller's to judge."""
    try:
        with registry.engine.begin() as conn:
            return work(conn)
    except IntegrityError:
        raise
    except SQLAlchemyError as e:
        raise unreachable(registry.url, e) from e


def schema_state(engine: Engine) -> SchemaState:
    script = ScriptDirectory.from_config(_alembic_config())
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except OperationalError as e:
        raise unreachable(str(engine.url.render_as_string(hide_password=False)), e) from e
    head = script.get_current_head()
    assert head is not None
    known = current is None or _known(script, current)
    return SchemaState(current=current, head=head, known=known)


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except Exception:
        return False


def upgrade(engine: Engine, target: str = "head") -> SchemaState:
    """Migrate up to ``target``; an unknown or ambiguous revision is an :class:`InputError`."""
    state = schema_state(engine)
    _refuse_newer(engine, state)
    with engine.begin() as conn, _revision_named(target):
        command.upgrade(_alembic_config(conn), target)
    return schema_state(engine)


def downgrade(engine: Engine, target: str) -> SchemaState:
    """Migrate down to ``target``; an unknown or ambiguous revision is an :class:`InputError`."""
    with engine.begin() as conn, _revision_named(target):
        command.downgrade(_alembic_config(conn), target)
    return schema_state(engine)


@contextmanager
def _revision_named(target: str) -> Iterator[None]:
    try:
        yield
    except CommandError as e:
        raise InputError(f"revision {target!r}: {e}") from e


def connection_failure(err: BaseException) -> bool:
    """The database driver could not connect or lost the connection (exit 3, not a bug)."""
    return isinstance(err, (OperationalError, InterfaceError))


def _refuse_newer(engine: Engine, state: SchemaState) -> None:
    if not state.known:
        raise RefusedError(
            f"database {mask_url(engine.url.render_as_string(hide_password=False))} has schema "
            f"revision {state.current}, newer than this cron-bridge knows (head {state.head})",
            hint="upgrade cron-bridge on this machine; never downgrade a newer registry",
        )


def ensure_schema(engine: Engine) -> SchemaState:
    """Refuse a newer schema; migrate SQLite automatically; ask for `db upgrade` elsewhere."""
    state = schema_state(engine)
    _refuse_newer(engine, state)
    if state.up_to_date:
        return state
    if engine.dialect.name == "sqlite":
        return upgrade(engine)
    raise RefusedError(
        f"database schema is at {state.current or 'nothing (empty database)'}, "
        f"this cron-bridge needs {state.head}",
        hint="run `bridge db upgrade`",
    )


class Registry:
    """An open registry: one engine, a session factory, the schema checked once; and
    :attr:`direct`, the driver-level statements of a worker's runs."""

    def __init__(self, url: str, *, check_schema: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._direct: Direct | None = None
        self._direct_lock = threading.Lock()
        if check_schema:
            ensure_schema(self.engine)

    @property
    def direct(self) -> Direct:
        """The registry's connections for the statements every run pays
        (:mod:`bridge.store.direct`), made on first use."""
        if self._direct is None:
            with self._direct_lock:
                if self._direct is None:
                    self._direct = Direct(self.engine, lambda e: unreachable(self.url, e))
        return self._direct

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: commits on success, rolls back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except OperationalError as e:
            session.rollback()
            raise unreachable(self.url, e) from e
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> str:
        """Return the server version string; raise InfraError if unreachable."""
        try:
            with self.engine.connect() as conn:
                if self.engine.dialect.name == "sqlite":
                    import sqlite3

                    return f"SQLite {sqlite3.sqlite_version}"
                return str(conn.exec_driver_sql("select version()").scalar()).split(" on ")[0]
        except SQLAlchemyError as e:
            raise unreachable(self.url, e) from e

    def identity(self) -> str:
        """This registry's id (made by migration 0002; created here if the row was lost)."""
        import uuid

        from bridge.store.models import RegistryMetaRow

        with self.session() as s:
            row = s.get(RegistryMetaRow, "registry_id")
            if row is None:
                row = RegistryMetaRow(key="registry_id", value=uuid.uuid4().hex)
                s.add(row)
            return row.value

    def dispose(self) -> None:
        if self._direct is not None:
            self._direct.close()
        self.engine.dispose()
