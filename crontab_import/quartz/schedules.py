"""A Quartz trigger's timing -> ScheduleSpec and MisfirePolicy (start, end, zone, repeats).

``trigger_schedule(trigger, now=..., zone=..., zone_name=...)`` sets up a cron, simple or
calendar-interval trigger the way Quartz 2.3.2 does when it loads the file, and returns the
bridge schedule with the problems found on the way (see :class:`TriggerSchedule`); those
Quartz refuses the whole file for (an expression ``CronExpression`` rejects, an interval of 0,
an end before the start, a cron trigger that never fires) are fatal issues.
``misfire_policy`` maps a trigger's ``misfire-instruction`` to the bridge's policy.

Start and end
  ``start-time``/``end-time`` are ``xs:dateTime``; without an offset they are wall times of
  the JVM's default zone (``zone`` here): a time in a spring-forward gap moves forward by the
  gap, an ambiguous autumn time is the later (standard-time) instant. Fractions are truncated
  to milliseconds; a cron trigger's start drops its milliseconds. No start: Quartz starts the
  trigger when it loads the file. For cron triggers that only bounds the schedule (``start``
  stays empty); for simple and calendar-interval triggers the load time fixes the phase, which
  the bridge cannot know: it uses ``now`` (the import time) and says so in a note (the
  importer's) and in ``details["start_source"]`` (``file``, ``seconds-in-future`` = ``now`` +
  seconds, ``import-time``, or ``none`` for a cron trigger without start).

Time zones
  A cron ``time-zone`` id is looked up with ``java.util.TimeZone``: an unknown id silently
  becomes GMT. Here that is an ERROR for the trigger instead. Java's three-letter ids (``PST``,
  ``IST``, ...) become their IANA zone; ``GMT+h`` custom ids become ``Etc/GMT-h``;
  non-whole-hour custom offsets are UNSUPPORTED. No ``time-zone``: the default zone. (An id
  only Java knows, e.g. ``SystemV/EST5``, is reported unknown too.)

Misfire instructions -> :class:`MisfirePolicy`
  ====================  ===============================================  ==========  =====
  trigger               instruction                                      policy      exact
  ====================  ===============================================  ==========  =====
  cron, cal-interval    SMART_POLICY (default), FIRE_ONCE_NOW            fire_once   yes
  cron, cal-interval    DO_NOTHING                                       skip        yes
  cron (not in XML)     IGNORE_MISFIRE_POLICY                            fire_all    yes
  simple                SMART_POLICY, repeat-count 0 (= FIRE_NOW)        fire_once   yes
  simple                SMART_POLICY, repeat-count -1                    skip        yes
                        (= RESCHEDULE_NEXT_WITH_REMAINING_COUNT)
  simple                SMART_POLICY, repeat-count > 0                   fire_once   no
                        (= RESCHEDULE_NOW_WITH_EXISTING_REPEAT_COUNT)
  simple                FIRE_NOW                                         fire_once   if 0
  simple                RESCHEDULE_NOW_WITH_EXISTING/REMAINING_...COUNT  fire_once   no
  simple                RESCHEDULE_NEXT_WITH_REMAINING_COUNT             skip        yes
  simple                RESCHEDULE_NEXT_WITH_EXISTING_COUNT              skip        if -1
  ====================  ===============================================  ==========  =====
  The inexact ones re-anchor the remaining repeats at the late firing (the phase moves) or do
  not count missed firings (the last firings move past the original end); the bridge keeps the
  original slots. ``details["misfire_note"]`` says which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.core.errors import BridgeError, ScheduleError
from bridge.core.schedules.simple import unsupported_reason as calendar_unsupported_reason
from bridge.core.spec import Dialect, IntervalUnit, MisfirePolicy, ScheduleSpec
from crontab_import.quartz.document import QuartzTrigger
from crontab_import.quartz.schema import CRON_MISFIRES, INTERVAL_UNITS, SIMPLE_MISFIRES
from crontab_import.quartz.tree import Issue
from crontab_import.quartz.values import OutOfRange, collapsed, java_int, xs_datetime

__all__ = ["JAVA_SHORT_IDS", "TriggerSchedule", "misfire_policy", "trigger_schedule"]


@dataclass
class TriggerSchedule:
    """What a trigger's timing became: its schedule (None when the timing is wrong), the
    ``details`` it adds to the import item, its problems, and why the bridge cannot run it."""

    schedule: ScheduleSpec | None = None
    details: dict[str, Any] = field(default_factory=dict)
    errors: list[Issue] = field(default_factory=list)
    unsupported: str | None = None


def trigger_schedule(
    t: QuartzTrigger, *, now: datetime, zone: ZoneInfo, zone_name: str
) -> TriggerSchedule:
    """The schedule of trigger ``t`` loaded at ``now``, with ``zone`` (named ``zone_name``) as
    the JVM's default zone."""
    out = TriggerSchedule()
    try:
        start, end, source = _times(t, now, zone)
    except (ValueError, OverflowError) as e:
        out.errors.append(Issue(t.line("start-time"), f"trigger {t.key}: {e}"))
        return out
    no_start = t.kind == "cron" and source == "import-time"
    out.details["start_source"] = "none" if no_start else source
    try:
        if t.kind == "cron":
            out.schedule = _cron_schedule(t, zone_name, out, start, end, source)
        elif t.kind == "simple":
            out.schedule = _simple_schedule(t, zone_name, start, end)
        else:
            # a zone only comes from a store (QRTZ_SIMPROP_TRIGGERS); the XML has none
            cal_zone = _cron_zone(t, zone_name, out)
            out.schedule = _calendar_schedule(t, cal_zone, start, end)
            out.unsupported = out.unsupported or calendar_unsupported_reason(out.schedule)
    except _TriggerProblem as e:
        out.errors.append(Issue(e.line, f"trigger {t.key}: {e.message}", e.fatal))
    except BridgeError as e:
        out.errors.append(Issue(t.node.line, f"trigger {t.key}: {e.message}"))
    return out


class _TriggerProblem(Exception):
    def __init__(self, line: int, message: str, fatal: bool = True) -> None:
        super().__init__(message)
        self.line, self.message, self.fatal = line, message, fatal


# ============================================================================ time zones


# Java's old three-letter ids (java.util.TimeZone) and the IANA zones they stand for.
JAVA_SHORT_IDS = {
    "ACT": "Australia/Darwin", "AET": "Australia/Sydney",
    "AGT": "America/Argentina/Buenos_Aires", "ART": "Africa/Cairo",
    "AST": "America/Anchorage", "BET": "America/Sao_Paulo", "BST": "Asia/Dhaka",
    "CAT": "Africa/Harare", "CNT": "America/St_Johns", "CST": "America/Chicago",
    "CTT": "Asia/Shanghai", "EAT": "Africa/Addis_Ababa", "ECT": "Europe/Paris",
    "IET": "America/Indiana/Indianapolis", "IST": "Asia/Kolkata", "JST": "Asia/Tokyo",
    "MIT": "Pacific/Apia", "NET": "Asia/Yerevan", "NST": "Pacific/Auckland",
    "PLT": "Asia/Karachi", "PNT": "America/Phoenix", "PRT": "America/Puerto_Rico",
    "PST": "America/Los_Angeles", "SST": "Pacific/Guadalcanal", "VST": "Asia/Ho_Chi_Minh",
    "EST": "Etc/GMT+5", "MST": "Etc/GMT+7", "HST": "Etc/GMT+10",
}  # fmt: skip
_JAVA_CUSTOM_ID = re.compile(r"GMT([+-])([0-9]{1,2})(?::?([0-9]{2}))?")  # GMT+5, GMT-05:30
# tzdata files Python's zoneinfo may open but java.util.TimeZone does not know.
_NOT_JAVA = re.compile(r"(posix|right)/.*|localtime|posixrules|Factory|leapseconds|.*\..*")


class _Unsupported(Exception):
    pass


def _zone_name(tz_id: str) -> str:
    """The IANA zone for a Java time-zone id; ValueError if Java does not know it (it would use
    GMT), _Unsupported if the bridge cannot name it."""
    if tz_id in JAVA_SHORT_IDS:
        return JAVA_SHORT_IDS[tz_id]
    custom = _JAVA_CUSTOM_ID.fullmatch(tz_id)
    if custom:
        return _custom_zone(tz_id, *custom.groups())
    if _NOT_JAVA.fullmatch(tz_id):
        raise ValueError(tz_id)
    try:
        ZoneInfo(tz_id)
    except (ZoneInfoNotFoundError, ValueError, OSError, UnicodeError) as e:
        raise ValueError(tz_id) from e
    return tz_id


def _custom_zone(tz_id: str, sign: str, hours_s: str, minutes_s: str | None) -> str:
    hours, minutes = int(hours_s), int(minutes_s or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(tz_id)
    if minutes or hours > (14 if sign == "+" else 12):
        raise _Unsupported(
            f"time-zone '{tz_id}' is a fixed offset no IANA zone names; "
            "use a zone such as Asia/Kolkata"
        )
    if hours == 0:
        return "Etc/GMT"
    return f"Etc/GMT{'-' if sign == '+' else '+'}{hours}"


def _cron_zone(t: QuartzTrigger, zone_name: str, out: TriggerSchedule) -> str:
    tz_id = t.values["time-zone"]
    if tz_id is None:
        return zone_name
    out.details["time_zone_quartz"] = tz_id
    try:
        return _zone_name(tz_id)
    except _Unsupported as e:
        out.unsupported = str(e)
    except ValueError:
        message = (
            f"trigger {t.key}: unknown time-zone '{tz_id}': Quartz silently uses GMT for an "
            "id it does not know; write the zone you mean (e.g. America/New_York) or GMT"
        )
        out.errors.append(Issue(t.line("time-zone"), message, fatal=False))
    return zone_name


# ============================================================================ start and end


def _times(
    t: QuartzTrigger, now: datetime, zone: ZoneInfo
) -> tuple[datetime, datetime | None, str]:
    """(start, end, start_source) as Quartz sets them, in UTC; ValueError for bad values."""
    start_text, future = t.values["start-time"], t.values["start-time-seconds-in-future"]
    if future is not None:
        seconds = java_int(future, 64)
        try:
            start = _ms(now) + timedelta(seconds=seconds)
        except OverflowError:
            raise ValueError(f"start-time-seconds-in-future {future} is too large") from None
        source = "seconds-in-future"
    elif start_text is not None:
        start, source = _datetime_value("start-time", start_text, zone), "file"
    else:
        start, source = _ms(now), "import-time"
    if t.kind == "cron":
        start = start.replace(microsecond=0)
    end_text = t.values["end-time"]
    end = _datetime_value("end-time", end_text, zone) if end_text else None
    if end is not None and end < start:
        what = "the import time (no start-time)" if source == "import-time" else "its start"
        raise ValueError(
            f"end-time {end_text} is before {what}: Quartz refuses the file "
            "('End time cannot be before start time')"
        )
    return start.astimezone(UTC), end, source


def _datetime_value(tag: str, text: str, zone: ZoneInfo) -> datetime:
    try:
        return xs_datetime(collapsed(text), zone)
    except OutOfRange as e:
        raise ValueError(f"{tag} '{text}' is {e}") from None
    except ValueError as e:
        raise ValueError(f"{tag} '{text}' is not an xs:dateTime ({e})") from None


def _ms(t: datetime) -> datetime:
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


# ============================================================================ the three kinds


def _cron_schedule(
    t: QuartzTrigger,
    zone_name: str,
    out: TriggerSchedule,
    start: datetime | None,
    end: datetime | None,
    source: str,
) -> ScheduleSpec | None:
    from bridge.core.schedules import compile_schedule
    from bridge.core.schedules import quartz as quartz_schedule

    expression = t.values["cron-expression"]
    line = t.line("cron-expression")
    if expression is None:
        raise _TriggerProblem(line, "cron trigger without a cron-expression")
    try:
        quartz_schedule.validate(expression)
    except ScheduleError as e:
        raise _TriggerProblem(line, f"cron-expression '{expression}': {e.message}") from e
    zone = _cron_zone(t, zone_name, out)
    bare = ScheduleSpec(dialect=Dialect.QUARTZ, timezone=zone, expression=expression)
    if start is not None:
        try:
            first = compile_schedule(bare).next_after(start - timedelta(seconds=1))
        except OverflowError:
            raise _TriggerProblem(
                t.line("start-time"),
                "start-time is too far in the past or future for the bridge's calendar",
            ) from None
        if first is None or (end is not None and first > end):
            raise _TriggerProblem(
                t.node.line,
                "never fires between its start and end time: "
                "Quartz refuses the file ('will never fire')",
            )
    kept_start = start if source != "import-time" else None
    return replace(bare, start=kept_start, end=end)


def _simple_schedule(
    t: QuartzTrigger, zone_name: str, start: datetime | None, end: datetime | None
) -> ScheduleSpec:
    count_text, interval_text = t.values["repeat-count"], t.values["repeat-interval"]
    try:
        count = java_int(count_text, 32) if count_text else 0
        interval = java_int(interval_text, 64) if interval_text else 0
    except ValueError as e:
        raise _TriggerProblem(t.line("repeat-count"), str(e)) from None
    if count < -1:
        raise _TriggerProblem(t.line("repeat-count"), f"repeat-count {count} is below -1")
    if count != 0 and interval < 1:
        raise _TriggerProblem(
            t.line("repeat-interval"),
            "repeat-interval 0 with a repeat-count: "
            "Quartz refuses the file ('Repeat Interval cannot be zero.')",
        )
    return ScheduleSpec(
        dialect=Dialect.QUARTZ_SIMPLE,
        timezone=zone_name,
        start=start,
        end=end,
        interval_ms=interval,
        repeat_count=count,
    )


def _calendar_schedule(
    t: QuartzTrigger, zone_name: str, start: datetime | None, end: datetime | None
) -> ScheduleSpec:
    line = t.line("repeat-interval")
    unit = t.values["repeat-interval-unit"]
    if unit not in INTERVAL_UNITS:
        raise _TriggerProblem(
            t.line("repeat-interval-unit"), f"unknown repeat-interval-unit {unit!r}"
        )
    try:
        interval = java_int(t.values["repeat-interval"] or "", 32)
    except ValueError as e:
        raise _TriggerProblem(line, f"repeat-interval: {e}") from None
    if interval < 1:
        raise _TriggerProblem(
            line,
            "repeat-interval must be >= 1: Quartz refuses the file "
            "('Interval must be a positive value.')",
        )
    return ScheduleSpec(
        dialect=Dialect.CALENDAR_INTERVAL,
        timezone=zone_name,
        start=start,
        end=end,
        interval=interval,
        interval_unit=IntervalUnit(unit.lower()),
    )


# ============================================================================ misfire


def misfire_policy(
    trigger_type: str, instruction: str | None, repeat_count: int | None = None
) -> tuple[MisfirePolicy, str | None]:
    """The bridge policy for a Quartz misfire instruction, and a note when it is approximate.

    ``trigger_type`` is ``cron``, ``calendar-interval`` or ``simple``; ``instruction`` the
    Quartz constant name (with or without ``MISFIRE_INSTRUCTION_``; None = smart policy);
    ``repeat_count`` (simple only; -1 = forever) decides what the smart policy means.
    ValueError for an instruction that does not exist for the trigger type.
    """
    name = (instruction or "SMART_POLICY").removeprefix("MISFIRE_INSTRUCTION_")
    if name == "IGNORE_MISFIRE_POLICY":
        return MisfirePolicy.FIRE_ALL, None
    if trigger_type in ("cron", "calendar-interval"):
        if name not in CRON_MISFIRES:
            raise ValueError(f"no {trigger_type} misfire instruction {instruction!r}")
        return (MisfirePolicy.SKIP if name == "DO_NOTHING" else MisfirePolicy.FIRE_ONCE), None
    if name not in SIMPLE_MISFIRES:
        raise ValueError(f"no simple misfire instruction {instruction!r}")
    return _simple_misfire(name, -1 if repeat_count is None else repeat_count)


def _simple_misfire(name: str, repeat: int) -> tuple[MisfirePolicy, str | None]:
    if name == "SMART_POLICY":
        name = {0: "FIRE_NOW", -1: "RESCHEDULE_NEXT_WITH_REMAINING_COUNT"}.get(
            repeat, "RESCHEDULE_NOW_WITH_EXISTING_REPEAT_COUNT"
        )
    if name == "FIRE_NOW" and repeat == 0:
        return MisfirePolicy.FIRE_ONCE, None
    if name == "RESCHEDULE_NEXT_WITH_REMAINING_COUNT" or (
        name == "RESCHEDULE_NEXT_WITH_EXISTING_COUNT" and repeat == -1
    ):
        return MisfirePolicy.SKIP, None
    if name == "RESCHEDULE_NEXT_WITH_EXISTING_COUNT":
        return MisfirePolicy.SKIP, (
            "approximation: Quartz does not count missed firings, so after a misfire its last "
            "repeats move past the original end; the bridge keeps the original slots"
        )
    return MisfirePolicy.FIRE_ONCE, (
        f"approximation: Quartz ({name}) fires once at once and re-anchors the remaining "
        "repeats at that moment (the phase moves); the bridge fires once and keeps the "
        "original slots"
    )
