"""A whole Quartz source's import items: every trigger's, the trigger-less jobs', the verdict.

``assemble_items`` is shared by the XML importer (:mod:`crontab_import.quartz.xml_file`) and
the store importers (``import_definitions``: JDBC tables, the plugin's export), so both convert
definitions the same way.

What Quartz 2.3.2 does with a whole file, and so what is reproduced
  * Quartz refuses the file (nothing of it is scheduled) for: a schema error, a missing name,
    an expression ``CronExpression`` rejects, a simple trigger repeating with interval 0, a
    calendar interval of 0, an end before the start, a cron trigger that never fires between
    its start and end, a trigger whose job the file does not define, a non-durable job without
    a trigger. These are errors, and every other item of such a file is INACTIVE (not running
    today). A durable job without a trigger never fires by itself: UNSUPPORTED. A store's
    definitions are never refused as a whole (the store already holds what it accepted).
  * Ids that clash after sanitising get ``-2``, ``-3``...
  * A simple or calendar-interval trigger without a start gets a note: its phase is the import
    time, not the (unknown) time Quartz loads the file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.core.errors import ScheduleError
from bridge.core.spec import SourceKind, SourceLocation
from crontab_import.model import ImportError_, ImportItem, ItemStatus, ParseResult
from crontab_import.quartz.document import QuartzJob, QuartzTrigger
from crontab_import.quartz.handlers import HandlerMap
from crontab_import.quartz.items import (
    ImportContext,
    draft_trigger,
    finish_item,
    raw_text,
    safe_job_id,
)
from crontab_import.quartz.tree import Issue


def assemble_items(
    triggers: list[QuartzTrigger], ctx: ImportContext, issues: list[Issue], notes: list[str]
) -> ParseResult:
    """The items of ``ctx.jobs`` and ``triggers``: shared by the XML and the store importers."""
    _count_triggers(triggers, ctx)
    drafts = [(t, draft_trigger(t, ctx)) for t in triggers]
    items = [finish_item(t, d, ctx) for t, d in drafts]
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
    ctx = ImportContext(
        file=source, lines=[], handlers=handlers, now=now, zone_name=default_timezone,
        zone=default_zone(default_timezone), version="store", kind=kind, raws=raws,
        whole_file=False,
    )  # fmt: skip
    ctx.jobs = {j.key: j for j in jobs}
    return assemble_items(triggers, ctx, [], notes)


def _count_triggers(triggers: list[QuartzTrigger], ctx: ImportContext) -> None:
    lines: dict[str, list[int]] = {}
    for t in triggers:
        lines.setdefault(t.key, []).append(t.node.line)
    ctx.duplicate_triggers = {k: v for k, v in lines.items() if len(v) > 1}
    ctx.triggers_per_job = Counter(t.job_key for t in triggers if t.job_name is not None)
    ctx.trigger_names = Counter((t.job_key, str(t.name)) for t in triggers)


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


def _job_items(jobs: list[QuartzJob], ctx: ImportContext) -> tuple[list[ImportItem], list[Issue]]:
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
            file=ctx.file, line=job.node.line or None, raw=raw_text(ctx, job.node), kind=ctx.kind
        )
        items.append(ImportItem(
            status=ItemStatus.UNSUPPORTED, source=source, id=safe_job_id(job.key),
            reason="durable job without a trigger: Quartz stores it but never fires it by itself",
            details={"job": {"name": job.name, "group": job.group,
                             "description": job.description},
                     "job_class": job.job_class, "durability": True, "recover": job.recover,
                     "job_data": dict(job.data), "mapped": False, "handler": None},
        ))  # fmt: skip
    return items, issues


def _deactivate(items: list[ImportItem], fatal: Issue) -> list[ImportItem]:
    reason = (
        f"Quartz 2.3.2 refuses this whole file (line {fatal.line}: {fatal.message}): "
        "none of its jobs is scheduled today"
    )
    return [
        replace(i, status=ItemStatus.INACTIVE, reason=reason) if i.status is ItemStatus.OK else i
        for i in items
    ]


def _phase_notes(items: list[ImportItem]) -> list[str]:
    return [
        f"line {i.source.line}: trigger {i.details['trigger']['group']}."
        f"{i.details['trigger']['name']} has no start-time: Quartz counts its repeats from when "
        "it loads the file, unknown here; the bridge counts from the import time"
        for i in items
        if i.details.get("start_source") == "import-time"
    ]


def default_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError, UnicodeError) as e:
        raise ScheduleError(f"unknown default time zone '{name}'") from e
