"""A live Quartz 2.x JDBC JobStore (PostgreSQL, MySQL/MariaDB) -> bridge jobs.

``read_store(url, table_prefix=..., sched_name=...)`` reads the standard Quartz 2.x tables in one
read-only transaction (a consistent snapshot; nothing is written, nothing is locked) into a
:class:`StoreRows`; ``parse_store(rows, ...)`` turns it into the same import items as a job XML
(``crontab_import.quartz``): each row becomes the importer's own ``QuartzJob`` /
``QuartzTrigger`` model and goes through the XML importer's conversion (ids, schedules, zones,
misfire instructions, handler map), so both paths agree by construction. The plugin export
(``crontab_import.quartz_export``) produces the same :class:`StoreRows`.

The source of every job is ``quartz-scheduler:<SCHED_NAME>`` (the plan's "file", the unit of
pruning): the same scheduler imported through JDBC or through the plugin's export is the same
source, and re-importing it is idempotent. The columns read and ignored, with the reasons, are
listed in ``docs/quartz-jdbc.md``.

Trigger types (``TRIGGER_TYPE``)
  ``CRON``, ``SIMPLE``, ``CAL_INT`` are converted; ``DAILY_I`` (DailyTimeIntervalTrigger),
  ``BLOB`` (a custom trigger class serialized into QRTZ_BLOB_TRIGGERS) and any other type are
  UNSUPPORTED with the reason; so is a trigger with a ``CALENDAR_NAME`` (as in the XML importer)
  and a calendar-interval trigger with ``preserveHourOfDayAcrossDaylightSavings``.

Trigger states (``TRIGGER_STATE``) -> what the bridge does (``details["quartz"]["bridge_action"]``)
  WAITING, ACQUIRED, EXECUTING, BLOCKED: imported (Quartz fires it; BLOCKED only waits for a
  running instance of a @DisallowConcurrentExecution job). PAUSED, PAUSED_BLOCKED: INACTIVE
  (Quartz does not fire it today; resume it in Quartz, then re-import). ERROR: INACTIVE (Quartz
  stopped firing it: its job class failed to load). COMPLETE: UNSUPPORTED (Quartz will never fire
  it again). A paused trigger group (QRTZ_PAUSED_TRIGGER_GRPS) is a note: Quartz pauses every
  trigger added to it.

Hand-over (``NEXT_FIRE_TIME``/``PREV_FIRE_TIME``)
  The bridge's slots are the trigger's own series (start, repeats, zone), so the bridge's first
  slot after Quartz's last fire (``PREV_FIRE_TIME``) must be Quartz's ``NEXT_FIRE_TIME``: the
  plan shows both and ``in_step``; a trigger that is not in step gets a note. Slots are whole
  seconds (a start's milliseconds are dropped, see ``bridge/core/schedules/simple.py``).

Job data (``JOB_DATA``)
  ``org.quartz.jobStore.useProperties=true`` stores ``java.util.Properties`` text (read with
  ``jproperties``, ISO-8859-1 with ``\\uXXXX`` escapes as ``Properties.load`` reads it);
  otherwise a serialized ``JobDataMap`` (read with ``javaobj-py3``, which parses the stream and
  never runs Java code). Strings, Integer/Long/Short/Byte, Boolean and Character values become
  text as Java's ``toString`` writes them; any other value (Double, Date, an application class)
  is not guessed: it is left out of the job data and listed in ``details["job_data_unreadable"]``
  with its class, and a note names the job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.core.errors import InfraError, InputError
from bridge.core.spec import SourceKind
from crontab_import.model import ImportItem, ItemStatus, ParseResult
from crontab_import.quartz import import_definitions
from crontab_import.quartz_document import QuartzJob, QuartzTrigger
from crontab_import.quartz_handlers import HandlerMap
from crontab_import.quartz_xml import NS, Node

__all__ = [
    "MISFIRE_NAMES",
    "TRIGGER_STATES",
    "StoreRows",
    "decode_job_data",
    "parse_store",
    "read_store",
    "source_name",
]

_PREFIX_RE = re.compile(r"[A-Za-z0-9_]{1,64}")

# MISFIRE_INSTR values (Trigger, CronTrigger, SimpleTrigger, CalendarIntervalTrigger constants)
MISFIRE_NAMES: dict[str, dict[int, str]] = {
    "cron": {-1: "IGNORE_MISFIRE_POLICY", 0: "SMART_POLICY", 1: "FIRE_ONCE_NOW", 2: "DO_NOTHING"},
    "simple": {
        -1: "IGNORE_MISFIRE_POLICY", 0: "SMART_POLICY", 1: "FIRE_NOW",
        2: "RESCHEDULE_NOW_WITH_EXISTING_REPEAT_COUNT",
        3: "RESCHEDULE_NOW_WITH_REMAINING_REPEAT_COUNT",
        4: "RESCHEDULE_NEXT_WITH_REMAINING_COUNT", 5: "RESCHEDULE_NEXT_WITH_EXISTING_COUNT",
    },
}  # fmt: skip
MISFIRE_NAMES["calendar-interval"] = MISFIRE_NAMES["cron"]

_IMPORTED = "imported: Quartz fires it"
TRIGGER_STATES: dict[str, tuple[ItemStatus | None, str]] = {
    "WAITING": (None, _IMPORTED),
    "ACQUIRED": (None, _IMPORTED + " (a scheduler node has acquired its next firing)"),
    "EXECUTING": (None, _IMPORTED + " (it is firing right now)"),
    "BLOCKED": (None, _IMPORTED + " (waiting for a running instance of its non-concurrent job)"),
    "PAUSED": (
        ItemStatus.INACTIVE,
        "paused in Quartz: it does not fire today; resume it in Quartz, then re-import",
    ),
    "PAUSED_BLOCKED": (
        ItemStatus.INACTIVE,
        "paused in Quartz: it does not fire today; resume it in Quartz, then re-import",
    ),
    "ERROR": (
        ItemStatus.INACTIVE,
        "in ERROR state in Quartz (its job could not be loaded): Quartz does not fire it",
    ),
    "COMPLETE": (ItemStatus.UNSUPPORTED, "complete in Quartz: it will never fire again"),
}
_TYPES = {"CRON": "cron", "SIMPLE": "simple", "CAL_INT": "calendar-interval"}
_REFUSED_TYPES = {
    "DAILY_I": (
        "DailyTimeIntervalTrigger: not reproduced by the bridge (its day windows and "
        "repeat counts have no bridge schedule)"
    ),
    "BLOB": (
        "a custom trigger class stored serialized in QRTZ_BLOB_TRIGGERS: the bridge cannot "
        "know its fire times"
    ),
}


@dataclass
class StoreJob:
    name: str
    group: str
    job_class: str | None
    description: str | None
    durable: bool
    recover: bool
    nonconcurrent: bool
    update_data: bool
    data: dict[str, str | None] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)


@dataclass
class StoreTrigger:
    name: str
    group: str
    job_name: str
    job_group: str
    type: str  # TRIGGER_TYPE: CRON, SIMPLE, CAL_INT, DAILY_I, BLOB, ...
    state: str
    start_ms: int
    end_ms: int | None
    next_fire_ms: int | None
    prev_fire_ms: int | None
    priority: int
    misfire: int
    description: str | None = None
    calendar: str | None = None
    cron_expression: str | None = None
    time_zone: str | None = None
    repeat_count: int | None = None
    repeat_interval: int | None = None  # ms (simple) or units (calendar-interval)
    interval_unit: str | None = None
    times_triggered: int | None = None
    preserve_hour: bool = False
    skip_day: bool = False
    data: dict[str, str | None] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.group}.{self.name}"


@dataclass
class StoreRows:
    """One scheduler's definitions as its JobStore holds them (JDBC tables or plugin export)."""

    sched_name: str
    origin: str  # where they were read, for notes: "jdbc postgresql://…", "export FILE"
    jobs: list[StoreJob] = field(default_factory=list)
    triggers: list[StoreTrigger] = field(default_factory=list)
    calendars: list[str] = field(default_factory=list)
    paused_groups: list[str] = field(default_factory=list)


def source_name(sched_name: str) -> str:
    return f"quartz-scheduler:{sched_name}"


# ============================================================================ job data


def decode_job_data(
    blob: bytes | memoryview | None,
) -> tuple[dict[str, str | None], dict[str, str]]:
    """``JOB_DATA`` -> (values as text, {key: why it is not read}); key ``*`` = the whole map."""
    if blob is None:
        return {}, {}
    data = bytes(blob)
    if not data:
        return {}, {}
    if data[:2] == b"\xac\xed":
        return _serialized_map(data)
    return _properties_map(data)


def _properties_map(data: bytes) -> tuple[dict[str, str | None], dict[str, str]]:
    from jproperties import Properties

    props = Properties()
    try:
        props.load(data, "iso-8859-1")
    except Exception as e:  # the library's own parse errors
        return {}, {"*": f"not java.util.Properties text ({e})"}
    return {str(k): str(v.data) for k, v in props.items()}, {}


_INTEGRAL = {"java.lang.Integer", "java.lang.Long", "java.lang.Short", "java.lang.Byte"}


def _serialized_map(data: bytes) -> tuple[dict[str, str | None], dict[str, str]]:
    import javaobj.v1 as javaobj

    try:
        obj = javaobj.loads(data)
    except Exception as e:  # javaobj raises plain exceptions for streams it cannot parse
        return {}, {"*": f"unreadable serialized Java object ({type(e).__name__}: {e})"}
    cls = _class_name(obj)
    mapping = getattr(obj, "map", None)
    if cls != "org.quartz.JobDataMap" or not isinstance(mapping, Mapping):
        return {}, {"*": f"serialized {cls or type(obj).__name__}, not an org.quartz.JobDataMap"}
    values: dict[str, str | None] = {}
    unreadable: dict[str, str] = {}
    for key, value in mapping.items():
        if not isinstance(key, str):
            unreadable[str(key)] = f"a key of class {_class_name(key)}"
            continue
        text, why = _java_text(value)
        if why is None:
            values[str(key)] = text
        else:
            unreadable[str(key)] = why
    return values, unreadable


def _class_name(obj: Any) -> str | None:
    desc = getattr(obj, "classdesc", None)
    return getattr(desc, "name", None)


def _java_text(value: Any) -> tuple[str | None, str | None]:
    """``String.valueOf(value)`` for the types whose text is certain; else (None, why)."""
    if value is None:
        return None, None
    if isinstance(value, str):
        return str(value), None
    cls = _class_name(value)
    inner = getattr(value, "value", None)
    if cls in _INTEGRAL and isinstance(inner, int) and not isinstance(inner, bool):
        return str(inner), None
    if cls == "java.lang.Boolean" and isinstance(inner, bool):
        return ("true" if inner else "false"), None
    if cls == "java.lang.Character" and isinstance(inner, str | int):
        return (inner if isinstance(inner, str) else chr(inner)), None
    return None, (
        f"a {cls or type(value).__name__} value: not a string, integer or boolean, "
        "so the bridge does not guess its text"
    )


# ============================================================================ reading the tables


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


def _begin_read_only(conn: Any) -> None:
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
            _begin_read_only(conn)
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


# ============================================================================ rows -> items


def _iso(ms: int) -> str:
    t = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _iso_or_none(ms: int | None) -> str | None:
    try:
        return None if ms is None else _iso(ms)
    except (OverflowError, ValueError):
        return None


def _trigger_values(t: StoreTrigger) -> tuple[str, dict[str, str | None]]:
    kind = _TYPES.get(t.type, "simple")
    names = MISFIRE_NAMES.get(kind, {})
    misfire = names.get(t.misfire, f"{t.misfire} (unknown to Quartz 2.3 for {t.type} triggers)")
    start, end = _iso_or_none(t.start_ms), _iso_or_none(t.end_ms)
    values: dict[str, str | None] = {
        "description": t.description,
        "priority": str(t.priority),
        "calendar-name": t.calendar,
        "start-time": start,
        "start-time-seconds-in-future": None,
        "end-time": end,
        "misfire-instruction": f"MISFIRE_INSTRUCTION_{misfire}",
        "cron-expression": t.cron_expression,
        "time-zone": t.time_zone,
        "repeat-count": None if t.repeat_count is None else str(t.repeat_count),
        "repeat-interval": None if t.repeat_interval is None else str(t.repeat_interval),
        "repeat-interval-unit": t.interval_unit,
        "volatility": None,
    }
    refused = _REFUSED_TYPES.get(t.type)
    if t.state == "COMPLETE":  # past its last fire: converting it would only find it never fires
        refused = TRIGGER_STATES["COMPLETE"][1]
    if start is None or (t.end_ms is not None and end is None):
        refused = (
            f"start {t.start_ms} / end {t.end_ms} ms: outside the years 0001..9999 (UTC) "
            "the bridge supports"
        )
    if t.type not in _TYPES and refused is None:
        refused = f"trigger type {t.type!r}: not a Quartz 2.3 built-in the bridge reproduces"
    if refused is None and t.type == "CAL_INT" and (t.preserve_hour or t.skip_day):
        refused = (
            "calendar-interval trigger with preserveHourOfDayAcrossDaylightSavings: "
            "not reproduced by the bridge"
        )
    values["refused"] = refused
    return kind, values


def _raw_trigger(t: StoreTrigger) -> str:
    """The trigger's definition (not its state): the source text of its bridge job."""
    parts = [f"trigger {t.key} ({t.type}) of job {t.job_group}.{t.job_name}"]
    if t.cron_expression is not None:
        parts.append(f"cron {t.cron_expression!r} zone {t.time_zone}")
    if t.type == "SIMPLE":
        parts.append(f"repeat {t.repeat_count} every {t.repeat_interval} ms")
    if t.type == "CAL_INT":
        parts.append(f"every {t.repeat_interval} {t.interval_unit} zone {t.time_zone}")
    parts.append(f"start {_iso_or_none(t.start_ms) or t.start_ms}")
    if t.end_ms is not None:
        parts.append(f"end {_iso_or_none(t.end_ms) or t.end_ms}")
    parts.append(f"misfire {t.misfire} priority {t.priority}")
    if t.calendar:
        parts.append(f"calendar {t.calendar}")
    return "; ".join(parts)


def parse_store(
    rows: StoreRows,
    *,
    handlers: HandlerMap | None,
    now: datetime,
    default_timezone: str,
) -> ParseResult:
    """Import items for one scheduler's definitions (pure). Job data is taken in key order (a
    JobDataMap is a HashMap: its stored order means nothing and may change on any rewrite)."""
    raws: dict[int, str] = {}
    jobs = []
    for j in rows.jobs:
        node = Node(tag="job", ns=NS, line=0)
        raws[id(node)] = f"job {j.group}.{j.name} class {j.job_class}"
        jobs.append(QuartzJob(
            name=j.name, group=j.group, job_class=j.job_class, description=j.description,
            durable=j.durable, recover=j.recover, data=dict(sorted(j.data.items())), node=node,
        ))  # fmt: skip
    triggers = []
    for t in rows.triggers:
        kind, values = _trigger_values(t)
        node = Node(tag=kind, ns=NS, line=0)
        raws[id(node)] = _raw_trigger(t)
        triggers.append(QuartzTrigger(
            element=kind, name=t.name, group=t.group, job_name=t.job_name,
            job_group=t.job_group, node=node, values=values, data=dict(sorted(t.data.items())),
        ))  # fmt: skip
    notes = [f"read {len(rows.jobs)} jobs and {len(rows.triggers)} triggers from {rows.origin}"]
    notes += [
        f"trigger group {g!r} is paused in Quartz: every trigger Quartz adds to it is paused"
        for g in rows.paused_groups
    ]
    if rows.calendars:
        notes.append(
            f"Quartz calendars {', '.join(rows.calendars)}: triggers bound to one are "
            "unsupported (the bridge cannot reproduce calendars)"
        )
    result = import_definitions(
        jobs, triggers, source=source_name(rows.sched_name), raws=raws, handlers=handlers,
        now=now, default_timezone=default_timezone, notes=notes, kind=SourceKind.QUARTZ_STORE,
    )  # fmt: skip
    by_key = {t.key: t for t in rows.triggers}
    jobs_by_key = {f"{j.group}.{j.name}": j for j in rows.jobs}
    items, more_notes = [], []
    for item in result.items:
        new_item, item_notes = _with_store_state(item, by_key, jobs_by_key)
        items.append(new_item)
        more_notes += item_notes
    return replace(result, items=tuple(items), notes=result.notes + tuple(more_notes))


def _with_store_state(
    item: ImportItem, triggers: Mapping[str, StoreTrigger], jobs: Mapping[str, StoreJob]
) -> tuple[ImportItem, list[str]]:
    details = dict(item.details)
    notes: list[str] = []
    job_info = details.get("job") or {}
    job = jobs.get(f"{job_info.get('group')}.{job_info.get('name')}")
    unreadable: dict[str, str] = {}
    if job is not None:
        unreadable.update(job.unreadable)
    trig = details.get("trigger")
    t = triggers.get(f"{trig['group']}.{trig['name']}") if trig else None
    if t is not None:
        unreadable.update({f"trigger:{k}": v for k, v in t.unreadable.items()})
    if unreadable:
        details["job_data_unreadable"] = unreadable
        listed = "; ".join(f"{k}: {v}" for k, v in unreadable.items())
        notes.append(f"{item.id}: job data not read ({listed})")
    if t is None:
        return replace(item, details=details), notes
    status, action = TRIGGER_STATES.get(
        t.state, (ItemStatus.INACTIVE, f"state {t.state!r} unknown to Quartz 2.3: not imported")
    )
    quartz: dict[str, Any] = {
        "state": t.state,
        "bridge_action": action,
        "next_fire": _iso_or_none(t.next_fire_ms),
        "prev_fire": _iso_or_none(t.prev_fire_ms),
        "times_triggered": t.times_triggered,
    }
    if job is not None:
        quartz.update(
            recover=job.recover, nonconcurrent=job.nonconcurrent, persist_job_data=job.update_data
        )
    quartz.update(_hand_over(item, t))
    details["quartz"] = quartz
    reason = item.reason
    new_status = item.status
    if item.status is ItemStatus.OK and status is not None:
        new_status, reason = status, action
        quartz["bridge_action"] = action
    elif item.status is not ItemStatus.OK:
        quartz["bridge_action"] = f"{item.status.value}: {item.reason}"
    if quartz.get("in_step") and new_status is ItemStatus.OK:
        notes.append(
            f"{item.id}: hand-over: Quartz last fired {quartz['prev_fire'] or 'never'}, fires "
            f"next at {quartz['next_fire']} = the bridge's slot {quartz['bridge_next']}"
        )
    if quartz.get("in_step") is False and new_status is ItemStatus.OK:
        notes.append(
            f"{item.id}: Quartz's next fire time {quartz['next_fire']} is not a slot of the "
            f"bridge's schedule (the bridge's next: {quartz['bridge_next']})"
        )
    return replace(item, status=new_status, reason=reason, details=details), notes


def _hand_over(item: ImportItem, t: StoreTrigger) -> dict[str, Any]:
    """Where the bridge takes over: its slot at Quartz's NEXT_FIRE_TIME (``in_step`` when
    Quartz's next fire is a slot of the bridge's series, to the second: the bridge's slots are
    whole seconds), and the bridge slots Quartz passed over since its last fire (a misfire
    policy that skipped them: ``skipped_since_prev``)."""
    if item.job is None or t.next_fire_ms is None:
        return {}
    from bridge.core.schedules import compile_schedule

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    try:
        quartz_next = epoch + timedelta(seconds=t.next_fire_ms // 1000)
        ev = compile_schedule(item.job.schedule)
        bridge_next = ev.next_after(quartz_next - timedelta(seconds=1))
        skipped = 0
        if t.prev_fire_ms is not None:
            slot = ev.next_after(epoch + timedelta(seconds=t.prev_fire_ms // 1000))
            while slot is not None and slot < quartz_next and skipped < 1000:
                skipped += 1
                slot = ev.next_after(slot)
    except Exception:  # a schedule the importer marked unsupported may not evaluate
        return {}
    return {
        "bridge_next": None if bridge_next is None else _iso(int(bridge_next.timestamp()) * 1000),
        "in_step": bridge_next == quartz_next,
        "skipped_since_prev": skipped,
    }
