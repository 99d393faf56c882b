"""The Quartz plugin's export (``exportFile``, JSON) -> ``quartz.rows.StoreRows``.

The bridge's Quartz plugin (``legacy_wrappers/quartz``) writes a live scheduler's definitions,
whatever its JobStore (RAM, JDBC, clustered), to a JSON file, for teams that cannot give the
bridge access to the database. ``read_export(path)`` reads it into the same rows the JDBC reader
produces, so ``bridge import quartz --export FILE`` and ``--jdbc URL`` give the same plan for
the same scheduler (same source ``quartz-scheduler:<name>``: switching between them is
idempotent).

Format (``"format": "cron-bridge-quartz-export", "version": 1``)::

    {"format": …, "version": 1, "scheduler": "<SCHED_NAME>", "exported_at": "<ISO>",
     "jobs": [{"name", "group", "class", "description", "durable", "recover",
               "nonconcurrent", "persist_data", "data": {KEY: VALUE}}],
     "triggers": [{"name", "group", "job_name", "job_group", "type", "state", "start_ms",
                   "end_ms", "next_fire_ms", "prev_fire_ms", "priority", "misfire",
                   "description", "calendar", "cron_expression", "time_zone",
                   "repeat_count", "repeat_interval", "interval_unit", "times_triggered",
                   "preserve_hour", "skip_day", "data": {KEY: VALUE}}],
     "calendars": [NAME], "paused_groups": [GROUP]}

``type`` and ``state`` use the JDBC store's names (``CRON``, ``SIMPLE``, ``CAL_INT``,
``DAILY_I``, ``BLOB`` for any other trigger class; ``WAITING``, ``PAUSED``, ``BLOCKED``,
``PAUSED_BLOCKED``, ``ERROR``, ``COMPLETE``). A job-data VALUE is ``{"class": "java.lang.…",
"text": "…"}`` for String, Integer, Long, Short, Byte, Boolean and Character values (Java's
``String.valueOf``), ``{"class": "…"}`` (no text) for any other value: the bridge reports it per
job and never guesses it, exactly as for a serialized JobDataMap in the tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bridge.core.errors import InputError, ParseError
from crontab_import.quartz.rows import StoreJob, StoreRows, StoreTrigger

__all__ = ["FORMAT", "read_export"]

FORMAT = "cron-bridge-quartz-export"
_TEXT_CLASSES = {
    "java.lang.String", "java.lang.Integer", "java.lang.Long", "java.lang.Short",
    "java.lang.Byte", "java.lang.Boolean", "java.lang.Character",
}  # fmt: skip


def read_export(path: str) -> StoreRows:
    """Read one export file; ParseError (exit 2) naming the file for anything malformed."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ParseError(f"not JSON ({e})", file=path) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ParseError(f'not a cron-bridge Quartz export (no "format": "{FORMAT}")', file=path)
    if doc.get("version") != 1:
        raise ParseError(f"export version {doc.get('version')!r} is not supported (1)", file=path)
    try:
        return StoreRows(
            sched_name=str(doc["scheduler"]),
            origin=f"export {path} (written {doc.get('exported_at')})",
            jobs=[_job(j) for j in doc["jobs"]],
            triggers=[_trigger(t) for t in doc["triggers"]],
            calendars=[str(c) for c in doc.get("calendars", [])],
            paused_groups=[str(g) for g in doc.get("paused_groups", [])],
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ParseError(f"malformed export: {type(e).__name__} {e}", file=path) from None


def _data(raw: dict[str, Any]) -> tuple[dict[str, str | None], dict[str, str]]:
    values: dict[str, str | None] = {}
    unreadable: dict[str, str] = {}
    for key, value in raw.items():
        if value is None:
            values[key] = None
        elif value.get("class") in _TEXT_CLASSES and isinstance(value.get("text"), str):
            values[key] = value["text"]
        else:
            unreadable[key] = (
                f"a {value.get('class')} value: not a string, integer or boolean, "
                "so the bridge does not guess its text"
            )
    return values, unreadable


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _job(j: dict[str, Any]) -> StoreJob:
    data, unreadable = _data(j.get("data") or {})
    return StoreJob(
        name=str(j["name"]), group=str(j["group"]), job_class=j.get("class"),
        description=j.get("description"), durable=bool(j["durable"]),
        recover=bool(j["recover"]), nonconcurrent=bool(j.get("nonconcurrent")),
        update_data=bool(j.get("persist_data")), data=data, unreadable=unreadable,
    )  # fmt: skip


def _trigger(t: dict[str, Any]) -> StoreTrigger:
    data, unreadable = _data(t.get("data") or {})
    return StoreTrigger(
        name=str(t["name"]), group=str(t["group"]), job_name=str(t["job_name"]),
        job_group=str(t["job_group"]), type=str(t["type"]), state=str(t["state"]),
        start_ms=int(t["start_ms"]), end_ms=_opt_int(t.get("end_ms")),
        next_fire_ms=_opt_int(t.get("next_fire_ms")), prev_fire_ms=_opt_int(t.get("prev_fire_ms")),
        priority=int(t.get("priority", 5)), misfire=int(t.get("misfire", 0)),
        description=t.get("description"), calendar=t.get("calendar"),
        cron_expression=t.get("cron_expression"), time_zone=t.get("time_zone"),
        repeat_count=_opt_int(t.get("repeat_count")),
        repeat_interval=_opt_int(t.get("repeat_interval")),
        interval_unit=t.get("interval_unit"), times_triggered=_opt_int(t.get("times_triggered")),
        preserve_hour=bool(t.get("preserve_hour")), skip_day=bool(t.get("skip_day")),
        data=data, unreadable=unreadable,
    )  # fmt: skip
