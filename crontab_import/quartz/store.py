"""One Quartz scheduler's :class:`StoreRows` -> bridge jobs (pure).

``parse_store(rows, ...)`` turns the rows read from the JDBC tables or the plugin's export into
the same import items as a job XML: each row becomes the importer's own ``QuartzJob`` /
``QuartzTrigger`` model and goes through the XML importer's conversion
(:func:`crontab_import.quartz.assemble.import_definitions`: ids, schedules, zones, misfire
instructions, handler map), so both paths agree by construction.

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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.core.spec import SourceKind
from crontab_import.model import ImportItem, ItemStatus, ParseResult
from crontab_import.quartz.assemble import import_definitions
from crontab_import.quartz.document import QuartzJob, QuartzTrigger
from crontab_import.quartz.handlers import HandlerMap
from crontab_import.quartz.rows import StoreJob, StoreRows, StoreTrigger, source_name
from crontab_import.quartz.tree import NS, Node

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
