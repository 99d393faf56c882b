"""A live Quartz 2.x JDBC JobStore (PostgreSQL, MySQL/MariaDB) -> :class:`StoreRows`.

``read_store(url, table_prefix=..., sched_name=...)`` reads the standard Quartz 2.x tables in one
read-only transaction (a consistent snapshot; nothing is written, nothing is locked) into a
:class:`~crontab_import.quartz.rows.StoreRows`; :func:`crontab_import.quartz.store.parse_store`
turns them into import items. This is the only module of the importers that talks to a database
(the foreign Quartz one, through SQLAlchemy, imported lazily). The columns read and ignored, with
the reasons, are listed in ``docs/quartz-jdbc.md``.
"""

from __future__ import annotations

import re
from typing import Any

from bridge.core.errors import InfraError, InputError
from crontab_import.quartz.jobdata import decode_job_data
from crontab_import.quartz.rows import StoreJob, StoreRows, StoreTrigger

_PREFIX_RE = re.compile(r"[A-Za-z0-9_]{1,64}")


def _engine_url(url: str) -> Any:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
    except ArgumentError as e:
        raise InputError(f"--jdbc: not a database URL ({e})") from None
    backend = u.get_backend_name()
    if backend == "postgresql" and u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    elif backend in ("mysql", "mariadb"):
        if "+" not in u.drivername:
            u = u.set(drivername=f"{backend}+pymysql")
    elif backend != "postgresql":
        raise InputError(
            f"--jdbc: {backend} is not supported (PostgreSQL, MySQL or MariaDB: "
            "postgresql://…, mysql://…, mariadb://…)"
        )
    return u


def _safe_url(u: Any) -> str:
    return str(u.render_as_string(hide_password=True))


def begin_read_only(conn: Any) -> None:
    """Open a read-only transaction that sees one consistent snapshot of every table."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    else:
        conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")


def _bool(value: Any) -> bool:
    """Quartz's ``getBoolean``: BOOL on PostgreSQL, VARCHAR(1) '1'/'0' on MySQL."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    return str(value).strip().lower() in ("1", "t", "true", "y", "yes")


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def read_store(
    url: str, *, table_prefix: str = "QRTZ_", sched_name: str | None = None
) -> StoreRows:
    """Read one scheduler's definitions from the Quartz tables (see the module docstring).
    InputError (exit 2) for a bad URL, prefix, or scheduler name; InfraError (exit 3) when the
    database cannot be reached."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import NoSuchModuleError, OperationalError, ProgrammingError

    if not _PREFIX_RE.fullmatch(table_prefix):
        raise InputError(f"--table-prefix: {table_prefix!r} is not a table name prefix")
    u = _engine_url(url)
    try:
        engine = create_engine(u, poolclass=_null_pool())
    except NoSuchModuleError as e:
        raise InputError(f"--jdbc: {e}") from None
    except ImportError as e:
        extra = "mysql" if u.get_backend_name() in ("mysql", "mariadb") else "postgres"
        raise InputError(
            f"--jdbc: the database driver is not installed ({e}); install cron-bridge[{extra}]"
        ) from None
    try:
        with engine.connect() as conn:
            begin_read_only(conn)
            rows = _Reader(conn, table_prefix).read(sched_name)
            conn.rollback()
    except (OperationalError, ConnectionError) as e:
        raise InfraError(
            f"cannot read the Quartz database {_safe_url(u)}: {_first_line(e)}"
        ) from None
    except ProgrammingError as e:
        raise InputError(
            f"--jdbc {_safe_url(u)}: cannot read the Quartz tables with prefix "
            f"{table_prefix!r} (wrong --table-prefix?): {_first_line(e)}"
        ) from None
    finally:
        engine.dispose()
    rows.origin = f"jdbc {_safe_url(u)} (tables {table_prefix}*)"
    return rows


def _null_pool() -> Any:
    from sqlalchemy.pool import NullPool

    return NullPool


def _first_line(e: BaseException) -> str:
    text = str(getattr(e, "orig", None) or e)
    return text.strip().splitlines()[0] if text.strip() else type(e).__name__


class _Reader:
    def __init__(self, conn: Any, prefix: str) -> None:
        self.conn, self.prefix = conn, prefix

    def _rows(self, sql: str, sched: str) -> list[dict[str, Any]]:
        from sqlalchemy import text

        sql = sql.replace("{p}", self.prefix)
        result = self.conn.execute(text(sql), {"s": sched})
        return [{k.upper(): v for k, v in row._mapping.items()} for row in result]

    def read(self, sched_name: str | None) -> StoreRows:
        from sqlalchemy import text

        names = sorted(
            {
                r[0]
                for t in ("JOB_DETAILS", "TRIGGERS")
                for r in self.conn.execute(
                    text(f"SELECT DISTINCT SCHED_NAME FROM {self.prefix}{t}")
                )
            }
        )
        if sched_name is None:
            if len(names) > 1:
                raise InputError(
                    f"--sched-name: these tables hold {len(names)} schedulers "
                    f"({', '.join(names)}); name one"
                )
            if not names:
                raise InputError(f"the Quartz tables {self.prefix}* hold no job")
            sched_name = names[0]
        elif sched_name not in names:
            raise InputError(
                f"--sched-name: no scheduler {sched_name!r} in these tables "
                f"(found: {', '.join(names) or 'none'})"
            )
        return StoreRows(
            sched_name=sched_name,
            origin="",
            jobs=[self._job(r) for r in self._rows(_JOBS_SQL, sched_name)],
            triggers=self._triggers(sched_name),
            calendars=[r["CALENDAR_NAME"] for r in self._rows(_CALENDARS_SQL, sched_name)],
            paused_groups=[r["TRIGGER_GROUP"] for r in self._rows(_PAUSED_SQL, sched_name)],
        )

    @staticmethod
    def _job(r: dict[str, Any]) -> StoreJob:
        data, unreadable = decode_job_data(r["JOB_DATA"])
        return StoreJob(
            name=r["JOB_NAME"], group=r["JOB_GROUP"], job_class=r["JOB_CLASS_NAME"],
            description=r["DESCRIPTION"], durable=_bool(r["IS_DURABLE"]),
            recover=_bool(r["REQUESTS_RECOVERY"]), nonconcurrent=_bool(r["IS_NONCONCURRENT"]),
            update_data=_bool(r["IS_UPDATE_DATA"]), data=data, unreadable=unreadable,
        )  # fmt: skip

    def _triggers(self, sched: str) -> list[StoreTrigger]:
        key = ("TRIGGER_GROUP", "TRIGGER_NAME")
        cron = {tuple(r[k] for k in key): r for r in self._rows(_CRON_SQL, sched)}
        simple = {tuple(r[k] for k in key): r for r in self._rows(_SIMPLE_SQL, sched)}
        simprop = {tuple(r[k] for k in key): r for r in self._rows(_SIMPROP_SQL, sched)}
        out = []
        for r in self._rows(_TRIGGERS_SQL, sched):
            k = (r["TRIGGER_GROUP"], r["TRIGGER_NAME"])
            data, unreadable = decode_job_data(r["JOB_DATA"])
            end = _int(r["END_TIME"])
            t = StoreTrigger(
                name=r["TRIGGER_NAME"], group=r["TRIGGER_GROUP"], job_name=r["JOB_NAME"],
                job_group=r["JOB_GROUP"], type=r["TRIGGER_TYPE"], state=r["TRIGGER_STATE"],
                start_ms=int(r["START_TIME"]), end_ms=end if end and end > 0 else None,
                next_fire_ms=_fire(r["NEXT_FIRE_TIME"]), prev_fire_ms=_fire(r["PREV_FIRE_TIME"]),
                priority=_int(r["PRIORITY"]) or 0, misfire=_int(r["MISFIRE_INSTR"]) or 0,
                description=r["DESCRIPTION"], calendar=r["CALENDAR_NAME"] or None,
                data=data, unreadable=unreadable,
            )  # fmt: skip
            if k in cron:
                t.cron_expression = cron[k]["CRON_EXPRESSION"]
                t.time_zone = cron[k]["TIME_ZONE_ID"] or None
            if k in simple:
                t.repeat_count = _int(simple[k]["REPEAT_COUNT"])
                t.repeat_interval = _int(simple[k]["REPEAT_INTERVAL"])
                t.times_triggered = _int(simple[k]["TIMES_TRIGGERED"])
            if k in simprop and t.type == "CAL_INT":
                p = simprop[k]
                t.interval_unit, t.repeat_interval = p["STR_PROP_1"], _int(p["INT_PROP_1"])
                t.time_zone = p["STR_PROP_2"] or None
                t.times_triggered = _int(p["INT_PROP_2"])
                t.preserve_hour = _bool(p["BOOL_PROP_1"]) if p["BOOL_PROP_1"] is not None else False
                t.skip_day = _bool(p["BOOL_PROP_2"]) if p["BOOL_PROP_2"] is not None else False
            out.append(t)
        return out


def _fire(value: Any) -> int | None:
    v = _int(value)
    return v if v is not None and v > 0 else None


_JOBS_SQL = (
    "SELECT JOB_NAME, JOB_GROUP, DESCRIPTION, JOB_CLASS_NAME, IS_DURABLE, IS_NONCONCURRENT, "
    "IS_UPDATE_DATA, REQUESTS_RECOVERY, JOB_DATA FROM {p}JOB_DETAILS WHERE SCHED_NAME = :s "
    "ORDER BY JOB_GROUP, JOB_NAME"
)
_TRIGGERS_SQL = (
    "SELECT TRIGGER_NAME, TRIGGER_GROUP, JOB_NAME, JOB_GROUP, DESCRIPTION, NEXT_FIRE_TIME, "
    "PREV_FIRE_TIME, PRIORITY, TRIGGER_STATE, TRIGGER_TYPE, START_TIME, END_TIME, CALENDAR_NAME, "
    "MISFIRE_INSTR, JOB_DATA FROM {p}TRIGGERS WHERE SCHED_NAME = :s "
    "ORDER BY TRIGGER_GROUP, TRIGGER_NAME"
)
_CRON_SQL = (
    "SELECT TRIGGER_NAME, TRIGGER_GROUP, CRON_EXPRESSION, TIME_ZONE_ID FROM {p}CRON_TRIGGERS "
    "WHERE SCHED_NAME = :s"
)
_SIMPLE_SQL = (
    "SELECT TRIGGER_NAME, TRIGGER_GROUP, REPEAT_COUNT, REPEAT_INTERVAL, TIMES_TRIGGERED "
    "FROM {p}SIMPLE_TRIGGERS WHERE SCHED_NAME = :s"
)
_SIMPROP_SQL = (
    "SELECT TRIGGER_NAME, TRIGGER_GROUP, STR_PROP_1, STR_PROP_2, INT_PROP_1, INT_PROP_2, "
    "BOOL_PROP_1, BOOL_PROP_2 FROM {p}SIMPROP_TRIGGERS WHERE SCHED_NAME = :s"
)
_CALENDARS_SQL = (
    "SELECT CALENDAR_NAME FROM {p}CALENDARS WHERE SCHED_NAME = :s ORDER BY CALENDAR_NAME"
)
_PAUSED_SQL = (
    "SELECT TRIGGER_GROUP FROM {p}PAUSED_TRIGGER_GRPS WHERE SCHED_NAME = :s ORDER BY TRIGGER_GROUP"
)
