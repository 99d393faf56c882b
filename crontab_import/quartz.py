"""Quartz ``job_scheduling_data`` XML (2.0 and 1.8) -> bridge jobs. Pure: bytes in, result out.

``parse_quartz_xml(data, file=..., handlers=..., now=..., default_timezone=...)`` reads the
document the way Quartz 2.3.2's ``XMLSchedulingDataProcessor`` does (checked against the real
processor, see ``tests/oracle/QuartzXmlOracle.java``) and returns a :class:`ParseResult` with
one :class:`ImportItem` per trigger. It never raises for bad input: every problem is an
:class:`ImportError_` naming ``file:line``. ``parse_file`` and ``load_handler_map`` are the
thin I/O wrappers.

The steps live in their own modules, each documenting what it reproduces of Quartz:
``quartz_xml`` (safe XML reading, line tracking, the 2.0 and 1.8 schema rules),
``quartz_document`` (the jobs, triggers and directives the document defines),
``quartz_schedules`` (a trigger's start, end, time zone and repeats -> ScheduleSpec, its
misfire instruction -> MisfirePolicy, with the table) and ``quartz_handlers`` (the handler
map). This module puts them together into import items.

What Quartz 2.3.2 does with a file, and so what the importer reproduces
  * Quartz refuses the file (nothing of it is scheduled) for: a schema error, a missing name,
    an expression ``CronExpression`` rejects, a simple trigger repeating with interval 0, a
    calendar interval of 0, an end before the start, a cron trigger that never fires between
    its start and end, a trigger whose job the file does not define, a non-durable job without
    a trigger. These are errors, and every other item of such a file is INACTIVE (not running
    today). A durable job without a trigger never fires by itself: UNSUPPORTED.
    Quartz also refuses it when a ``job-class`` is not on its classpath: that cannot be
    checked here.
  * ``calendar-name`` refers to a Calendar registered by code: not reproducible, UNSUPPORTED.
  * A job or trigger key defined twice is an error (Quartz silently keeps one of them).
  * A simple or calendar-interval trigger without a start gets a note: its phase is the import
    time, not the (unknown) time Quartz loads the file.

Quartz 1.8 files
  Same namespace; recognised by ``version="1.8"`` on the root and validated with the 1.8 schema
  rules. ``date-interval`` (1.8's DateIntervalTrigger) is read as ``calendar-interval``;
  ``volatility`` and ``job-listener-ref`` are kept in ``details`` (listeners are not
  reproduced). A note says when the file uses 1.8-only elements, which Quartz 2.x refuses.

Job ids and details
  One bridge job per trigger: ``<job-group>.<job-name>`` when the job has one trigger in the
  file, ``<job-group>.<job-name>.<trigger-name>`` when it has several (``<trigger-group>.
  <trigger-name>`` if two of them share a name). Characters outside ``[A-Za-z0-9._@-]`` become
  ``-``; a clash after that gets ``-2``, ``-3``... ``details``: ``trigger`` (name, group, type,
  priority), ``misfire`` (Quartz name), ``misfire_policy``, ``job_class``, ``handler`` (or
  None), ``mapped``, ``durability``, ``recover``, ``job_data`` (and ``trigger_data``), ...

Handler map (TOML, ``load_handler_map``)
  Maps each ``job-class`` to the command or callable the bridge runs for it; the format is
  documented in ``crontab_import/quartz_handlers.py``. A job no entry matches is imported with
  an :class:`UnmappedHandler` (status OK, ``details["mapped"] = False``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.core.errors import BridgeError, InputError, ParseError, ScheduleError
from bridge.core.spec import (
    Handler,
    JobSpec,
    LostPolicy,
    MisfirePolicy,
    Placement,
    Policies,
    RepairPolicy,
    ScheduleSpec,
    SourceKind,
    SourceLocation,
    UnmappedHandler,
)
from crontab_import.model import ImportError_, ImportItem, ItemStatus, ParseResult
from crontab_import.quartz_document import (
    DEFAULT_GROUP,
    QuartzJob,
    QuartzTrigger,
    document_notes,
    read_directive,
    read_jobs,
    read_triggers,
)
from crontab_import.quartz_handlers import (
    HandlerMap,
    HandlerRule,
    build_handler,
    handler_details,
    load_handler_map,
    parse_handler_map,
)
from crontab_import.quartz_schedules import JAVA_SHORT_IDS, misfire_policy, trigger_schedule
from crontab_import.quartz_xml import (
    CRON_MISFIRES,
    CRON_SCHEMA_PATTERNS,
    MAX_DEPTH,
    NS,
    SIMPLE_MISFIRES,
    WS,
    XSI_NS,
    Issue,
    Node,
    java_int,
    read_tree,
    validate_schema,
)

# Most of these are defined in the step modules; they stay importable from here.
__all__ = [
    "CRON_MISFIRES",
    "CRON_SCHEMA_PATTERNS",
    "DEFAULT_GROUP",
    "JAVA_SHORT_IDS",
    "MAX_DEPTH",
    "NS",
    "SIMPLE_MISFIRES",
    "XSI_NS",
    "HandlerMap",
    "HandlerRule",
    "import_definitions",
    "load_handler_map",
    "misfire_policy",
    "parse_file",
    "parse_handler_map",
    "parse_quartz_xml",
]

_RAW_MAX = 4000
DEFAULT_MAX_BYTES = 10 * 1024 * 1024  # import limit per file (--max-bytes)
DEFAULT_MAX_TRIGGERS = 10000  # import limit per file (--max-jobs)


# ============================================================================ building items


@dataclass
class _Context:
    """What every trigger of one document needs; filled in as the document is read."""

    file: str
    lines: list[str]
    handlers: HandlerMap | None
    now: datetime
    zone_name: str
    zone: ZoneInfo
    version: str
    jobs: dict[str, QuartzJob] = field(default_factory=dict)
    triggers_per_job: Counter[str] = field(default_factory=Counter)
    trigger_names: Counter[tuple[str, str]] = field(default_factory=Counter)
    duplicate_triggers: dict[str, list[int]] = field(default_factory=dict)
    # Definitions read from a Quartz store (crontab_import.quartz_jdbc) rather than a file:
    # their source kind, their text by element (``raws``), no line numbers, and no issue
    # refuses the whole source (the store already holds every definition it accepted).
    kind: SourceKind = SourceKind.QUARTZ_XML
    raws: dict[int, str] = field(default_factory=dict)
    whole_file: bool = True


@dataclass
class _Draft:
    """What one trigger became, before the final status is decided."""

    id: str | None
    details: dict[str, Any] = field(default_factory=dict)
    errors: list[Issue] = field(default_factory=list)
    unsupported: str | None = None
    schedule: ScheduleSpec | None = None
    handler: Handler | None = None
    policies: Policies = field(default_factory=Policies)


def _sanitize(raw: str) -> str:
    text = re.sub(r"[^A-Za-z0-9._@-]", "-", raw)
    text = re.sub(r"^[^A-Za-z0-9]+", "", text) or "quartz-job"
    if len(text) > 200:
        text = text[:191] + "-" + hashlib.sha256(raw.encode()).hexdigest()[:8]
    return text


def _trigger_id(t: QuartzTrigger, ctx: _Context) -> str:
    if ctx.triggers_per_job[t.job_key] <= 1:
        return _sanitize(t.job_key)
    shared = ctx.trigger_names[(t.job_key, str(t.name))] > 1
    return _sanitize(f"{t.job_key}.{t.key if shared else t.name}")


def _schedule(t: QuartzTrigger, ctx: _Context, draft: _Draft) -> None:
    timing = trigger_schedule(t, now=ctx.now, zone=ctx.zone, zone_name=ctx.zone_name)
    draft.schedule = timing.schedule
    draft.details.update(timing.details)
    draft.errors.extend(timing.errors)
    if timing.unsupported is not None:
        draft.unsupported = timing.unsupported


def _misfire(t: QuartzTrigger, draft: _Draft) -> MisfirePolicy:
    instruction = t.values["misfire-instruction"]
    draft.details["misfire"] = instruction or "MISFIRE_INSTRUCTION_SMART_POLICY"
    count = None
    if t.kind == "simple":
        count = draft.schedule.repeat_count if draft.schedule else 0
        count = -1 if count is None else count
    try:
        policy, note = misfire_policy(t.kind, instruction, count)
    except ValueError as e:
        draft.errors.append(Issue(t.line("misfire-instruction"), f"trigger {t.key}: {e}"))
        return MisfirePolicy.FIRE_ONCE
    draft.details["misfire_policy"] = policy.value
    if note:
        draft.details["misfire_note"] = note
    return policy


def _handler(
    t: QuartzTrigger, job: QuartzJob, ctx: _Context, draft: _Draft, misfire: MisfirePolicy
) -> None:
    data = {**job.data, **t.data}
    job_data = tuple((k, v or "") for k, v in job.data.items())
    unmapped = UnmappedHandler(job_class=job.job_class or "", job_data=job_data)
    extra = _bridge_policies(t, job, data, draft)
    data = {k: v for k, v in data.items() if k not in BRIDGE_DATA_KEYS}  # not the handler's
    draft.handler, draft.policies = unmapped, Policies(misfire=misfire, **extra)
    draft.details.update(handler=None, mapped=False)
    if ctx.handlers is None or job.job_class is None:
        return
    try:
        rule = ctx.handlers.select(job.job_class, job.key, data)
    except ValueError as e:
        draft.errors.append(Issue(t.node.line, f"job {job.key}: {e}", fatal=False))
        return
    if rule is None:
        return
    try:
        draft.handler = build_handler(rule, data)
    except KeyError as e:
        message = (
            f"job {job.key}: handler {rule.where} needs job-data-map key '{e.args[0]}', "
            "which the job does not define (or leaves empty)"
        )
        draft.errors.append(Issue(t.node.line, message, fatal=False))
        return
    draft.policies = Policies(
        misfire=misfire, timeout_seconds=rule.timeout, queue=rule.queue, shadow_mode=rule.shadow,
        group=rule.group, max_concurrency=rule.max_concurrency, **extra,
    )
    draft.details.update(handler=handler_details(rule, draft.handler), mapped=True)


BRIDGE_DATA_KEYS = {"bridge.on-lost": ("on_lost", LostPolicy),
                    "bridge.repair": ("repair", RepairPolicy),
                    "bridge.placement": ("placement", Placement)}


def _bridge_policies(
    t: QuartzTrigger, job: QuartzJob, data: dict[str, str | None], draft: _Draft
) -> dict[str, Any]:
    """Policies set in the (merged) job-data-map: ``bridge.on-lost`` = ``skip`` | ``rerun``,
    ``bridge.repair`` = ``auto`` | ``alert-only``, ``bridge.placement`` = ``host`` | ``anywhere``
    (binds only a job that has a host); a bad value is an error at the trigger."""
    out: dict[str, Any] = {}
    for key, (name, enum) in BRIDGE_DATA_KEYS.items():
        value = data.get(key)
        if value is None:
            continue
        try:
            out[name] = enum(value.strip())
        except ValueError:
            allowed = " | ".join(v.value for v in enum)
            draft.errors.append(Issue(t.node.line, f"job {job.key}: job-data-map {key} "
                                      f"'{value}' is not one of {allowed}", fatal=False))
    return out


def _raw(ctx: _Context, node: Node) -> str:
    """The source lines of an element (capped at _RAW_MAX characters)."""
    if id(node) in ctx.raws:
        return ctx.raws[id(node)][:_RAW_MAX]
    first, last = max(node.line - 1, 0), max(node.end_line, node.line)
    lines = [ln[:_RAW_MAX] for ln in ctx.lines[first : min(last, first + 200)]]
    return "\n".join(lines).strip()[:_RAW_MAX]


def _draft_trigger(t: QuartzTrigger, ctx: _Context) -> _Draft:
    if t.name is None or t.job_name is None:
        what = "a name" if t.name is None else "a job-name"
        return _Draft(
            id=None,
            errors=[
                Issue(
                    t.node.line,
                    f"{t.element} trigger without {what} (Quartz: 'Name cannot be null.')",
                )
            ],
        )
    draft = _Draft(id=_trigger_id(t, ctx))
    draft.details["trigger"] = {
        "name": t.name, "group": t.group, "type": t.kind, "priority": _priority(t, draft),
    }  # fmt: skip
    if t.element != t.kind:
        draft.details["trigger"]["element"] = t.element
    job = ctx.jobs.get(t.job_key)
    if job is None:
        draft.errors.append(
            Issue(
                t.line("job-name"),
                (
                    f"trigger {t.key} refers to job {t.job_key}, which this file does not define "
                    "(Quartz refuses the file unless that job is already in its store)"
                ),
            )
        )
        return draft
    _fill(t, job, ctx, draft)
    return draft


def _priority(t: QuartzTrigger, draft: _Draft) -> int:
    text = t.values["priority"]
    try:
        return java_int(text, 32) if text else 5
    except ValueError as e:
        draft.errors.append(Issue(t.line("priority"), f"trigger {t.key}: priority {e}"))
        return 5


def _fill(t: QuartzTrigger, job: QuartzJob, ctx: _Context, draft: _Draft) -> None:
    draft.details.update(
        job={"name": job.name, "group": job.group, "description": job.description},
        job_class=job.job_class, durability=job.durable, recover=job.recover,
        job_data=dict(job.data), schema=ctx.version,
    )  # fmt: skip
    if t.data:
        draft.details["trigger_data"] = dict(t.data)
    for key, value in (
        ("job_listener", job.listener),
        ("volatility", job.volatility),
        ("trigger_volatility", t.values["volatility"]),
    ):
        if value is not None:
            draft.details[key] = value
    if t.key in ctx.duplicate_triggers:
        lines = " and ".join(map(str, ctx.duplicate_triggers[t.key]))
        draft.errors.append(
            Issue(
                t.node.line,
                f"trigger {t.key} is defined more than once (lines {lines}); Quartz keeps only one",
                fatal=False,
            )
        )
    refused = t.values.get("refused")  # a store's trigger type the bridge cannot reproduce
    if refused is not None:
        draft.details["misfire"] = t.values["misfire-instruction"]
        draft.unsupported = refused
        return
    calendar = t.values["calendar-name"]
    if calendar is not None:
        draft.details["calendar"] = calendar
        draft.unsupported = (
            f"calendar-name '{calendar}': Quartz Calendars are registered by "
            "code and cannot be reproduced by the bridge"
        )
    _schedule(t, ctx, draft)
    misfire = _misfire(t, draft)
    _handler(t, job, ctx, draft, misfire)


def _finish(t: QuartzTrigger, draft: _Draft, ctx: _Context) -> ImportItem:
    source = SourceLocation(
        file=ctx.file, line=t.node.line or None, raw=_raw(ctx, t.node), kind=ctx.kind
    )
    job = None
    if draft.id and draft.schedule is not None and draft.handler is not None:
        description = t.values["description"] or draft.details.get("job", {}).get("description")
        try:
            job = JobSpec(
                id=draft.id,
                schedule=draft.schedule,
                handler=draft.handler,
                source=source,
                policies=draft.policies,
                description=description,
            )
        except BridgeError as e:
            draft.errors.append(Issue(t.node.line, f"trigger {t.key}: {e.message}", False))
    if draft.errors:
        status, reason = ItemStatus.ERROR, draft.errors[0].message
    elif draft.unsupported:
        status, reason = ItemStatus.UNSUPPORTED, draft.unsupported
    else:
        status, reason = ItemStatus.OK, None
    return ImportItem(
        status=status, source=source, id=draft.id, job=job, reason=reason, details=draft.details
    )


def _dedupe_ids(items: list[ImportItem]) -> list[ImportItem]:
    seen: Counter[str] = Counter()
    out = []
    for item in items:
        if item.id is None:
            out.append(item)
            continue
        seen[item.id] += 1
        if seen[item.id] == 1:
            out.append(item)
            continue
        new_id = f"{item.id}-{seen[item.id]}"
        job = item.job.with_(id=new_id) if item.job else None
        details = {**item.details, "id_note": f"'{item.id}' was taken: renamed"}
        out.append(replace(item, id=new_id, job=job, details=details))
    return out


def _job_items(jobs: list[QuartzJob], ctx: _Context) -> tuple[list[ImportItem], list[Issue]]:
    """Items and issues for jobs without a trigger in the file."""
    items, issues = [], []
    for job in jobs:
        if ctx.triggers_per_job[job.key]:
            continue
        if not job.durable:
            issues.append(
                Issue(
                    job.node.line,
                    (
                        f"job {job.key} has no trigger and is not durable: Quartz refuses the file "
                        "('A new job defined without any triggers must be durable')"
                    ),
                )
            )
            continue
        source = SourceLocation(
            file=ctx.file, line=job.node.line or None, raw=_raw(ctx, job.node), kind=ctx.kind
        )
        items.append(ImportItem(
            status=ItemStatus.UNSUPPORTED, source=source, id=_sanitize(job.key),
            reason="durable job without a trigger: Quartz stores it but never fires it by itself",
            details={"job": {"name": job.name, "group": job.group,
                             "description": job.description},
                     "job_class": job.job_class, "durability": True, "recover": job.recover,
                     "job_data": dict(job.data), "mapped": False, "handler": None},
        ))  # fmt: skip
    return items, issues


def _index_jobs(jobs: list[QuartzJob], root: Node) -> tuple[dict[str, QuartzJob], list[Issue]]:
    by_key: dict[str, QuartzJob] = {}
    issues = []
    overwrite, _ = read_directive(root, "overwrite-existing-data")
    ignore, _ = read_directive(root, "ignore-duplicates")
    refuses = overwrite is False and not ignore
    for job in jobs:
        first = by_key.get(job.key)
        if first is not None:
            issues.append(
                Issue(
                    job.node.line,
                    (
                        f"job {job.key} is defined more than once (lines {first.node.line} and "
                        f"{job.node.line}); Quartz keeps only one"
                    ),
                    fatal=refuses,
                )
            )
        if first is None or overwrite is not False:
            by_key[job.key] = job
    return by_key, issues


def _deactivate(items: list[ImportItem], fatal: Issue) -> list[ImportItem]:
    reason = (
        f"Quartz 2.3.2 refuses this whole file (line {fatal.line}: {fatal.message}): "
        "none of its jobs is scheduled today"
    )
    return [
        replace(i, status=ItemStatus.INACTIVE, reason=reason) if i.status is ItemStatus.OK else i
        for i in items
    ]


def _root_problem(root: Node) -> str | None:
    if root.ns == NS and root.tag == "job-scheduling-data":
        return None
    found = f"{{{root.ns}}}{root.tag}" if root.ns else root.tag
    return (
        f"not a Quartz job_scheduling_data document: the root element is <{found}>, "
        f'expected <job-scheduling-data xmlns="{NS}"> (1.8 or 2.0)'
    )


def parse_quartz_xml(
    data: bytes,
    *,
    file: str,
    handlers: HandlerMap | None = None,
    now: datetime,
    default_timezone: str,
    max_triggers: int | None = None,
) -> ParseResult:
    """Read one job_scheduling_data document (see the module docstring). Never raises for bad
    input; raises ScheduleError for a bad ``default_timezone``, ValueError for a naive ``now``,
    InputError past ``max_triggers`` (as soon as the SAX reader meets one trigger too many)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    zone = _default_zone(default_timezone)
    try:
        root = read_tree(data, max_triggers=max_triggers)
    except ParseError as e:
        line = e.line if e.line is not None else 1
        return ParseResult(file=file, errors=(ImportError_(file, line, e.message),))
    problem = _root_problem(root)
    if problem:
        return ParseResult(file=file, errors=(ImportError_(file, root.line, problem),))
    version = "1.8" if root.attrs.get((None, "version"), "").strip(WS) == "1.8" else "2.0"
    ctx = _Context(
        file=file,
        lines=_text_lines(data),
        handlers=handlers,
        now=now,
        zone_name=default_timezone,
        zone=zone,
        version=version,
    )
    return _import(root, ctx)


def _import(root: Node, ctx: _Context) -> ParseResult:
    issues = validate_schema(root, ctx.version)
    notes, pre_issues = document_notes(root, ctx.version)
    jobs, job_issues = read_jobs(root)
    ctx.jobs, dup_issues = _index_jobs(jobs, root)
    triggers = read_triggers(root)
    return _assemble(triggers, ctx, [*issues, *pre_issues, *job_issues, *dup_issues], notes)


def _assemble(
    triggers: list[QuartzTrigger], ctx: _Context, issues: list[Issue], notes: list[str]
) -> ParseResult:
    """The items of ``ctx.jobs`` and ``triggers``: shared by the XML and the store importers."""
    _count_triggers(triggers, ctx)
    drafts = [(t, _draft_trigger(t, ctx)) for t in triggers]
    items = [_finish(t, d, ctx) for t, d in drafts]
    job_items, orphan_issues = _job_items(list(ctx.jobs.values()), ctx)
    issues = [*issues, *orphan_issues]
    issues += [i for _, d in drafts for i in d.errors]
    items = _dedupe_ids(items + job_items)
    fatal = sorted((i for i in issues if i.fatal), key=lambda i: i.line or 0)
    if fatal and ctx.whole_file:
        items = _deactivate(items, fatal[0])
    unique = sorted(
        {(i.line or 0, i.message): i for i in issues}.values(),
        key=lambda i: (i.line or 0, i.message),
    )
    first_line = 1 if ctx.whole_file else None
    return ParseResult(
        file=ctx.file,
        items=tuple(items),
        errors=tuple(ImportError_(ctx.file, i.line or first_line, i.message) for i in unique),
        notes=tuple(notes + _phase_notes(items)),
    )


def import_definitions(
    jobs: list[QuartzJob],
    triggers: list[QuartzTrigger],
    *,
    source: str,
    raws: dict[int, str],
    handlers: HandlerMap | None,
    now: datetime,
    default_timezone: str,
    notes: list[str],
    kind: SourceKind,
) -> ParseResult:
    """Items for jobs and triggers read from a Quartz store (JDBC tables, a plugin export),
    converted exactly as the XML importer converts a file's. ``source`` names the store (the
    plan's "file", the unit of pruning); ``raws`` is each row's text by ``id(node)``."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    ctx = _Context(
        file=source, lines=[], handlers=handlers, now=now, zone_name=default_timezone,
        zone=_default_zone(default_timezone), version="store", kind=kind, raws=raws,
        whole_file=False,
    )  # fmt: skip
    ctx.jobs = {j.key: j for j in jobs}
    return _assemble(triggers, ctx, [], notes)


def _count_triggers(triggers: list[QuartzTrigger], ctx: _Context) -> None:
    lines: dict[str, list[int]] = {}
    for t in triggers:
        lines.setdefault(t.key, []).append(t.node.line)
    ctx.duplicate_triggers = {k: v for k, v in lines.items() if len(v) > 1}
    ctx.triggers_per_job = Counter(t.job_key for t in triggers if t.job_name is not None)
    ctx.trigger_names = Counter((t.job_key, str(t.name)) for t in triggers)


def _text_lines(data: bytes) -> list[str]:
    codec = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8"
    return data.decode(codec, "replace").splitlines()


def _phase_notes(items: list[ImportItem]) -> list[str]:
    return [
        f"line {i.source.line}: trigger {i.details['trigger']['group']}."
        f"{i.details['trigger']['name']} has no start-time: Quartz counts its repeats from when "
        "it loads the file, unknown here; the bridge counts from the import time"
        for i in items
        if i.details.get("start_source") == "import-time"
    ]


def _default_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError, UnicodeError) as e:
        raise ScheduleError(f"unknown default time zone '{name}'") from e


def parse_file(
    path: str | Path,
    *,
    handlers: HandlerMap | None = None,
    now: datetime,
    default_timezone: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_triggers: int = DEFAULT_MAX_TRIGGERS,
) -> ParseResult:
    """Read ``path`` and parse it; ParseError when the file cannot be read.

    Bounded: a file larger than ``max_bytes`` is refused from its size, before it is read;
    more than ``max_triggers`` triggers stop the reading at the first one too many (both an
    :class:`InputError` naming the file, exit 2)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = b"" if size > max_bytes else f.read(max_bytes + 1)
    except OSError as e:
        raise ParseError(f"cannot read Quartz XML: {e.strerror or e}", file=str(path)) from e
    if size > max_bytes or len(data) > max_bytes:
        raise InputError(
            f"file larger than {max_bytes} bytes: refused before parsing",
            file=str(path),
            hint="raise --max-bytes if this is intended",
        )
    try:
        return parse_quartz_xml(
            data,
            file=str(path),
            handlers=handlers,
            now=now,
            default_timezone=default_timezone,
            max_triggers=max_triggers,
        )
    except InputError as e:
        if e.file is None and not isinstance(e, ParseError):
            raise e.at(str(path), e.line) from None
        raise
