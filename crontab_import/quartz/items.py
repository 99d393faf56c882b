"""One Quartz trigger -> one import item: its id, schedule, misfire policy, handler, details.

``draft_trigger`` converts a :class:`~crontab_import.quartz.document.QuartzTrigger` of a
document (or of a store) with the job it fires; ``finish_item`` decides the item's status.
:mod:`crontab_import.quartz.assemble` puts a whole source's items together.

Job ids and details
  One bridge job per trigger: ``<job-group>.<job-name>`` when the job has one trigger in the
  source, ``<job-group>.<job-name>.<trigger-name>`` when it has several (``<trigger-group>.
  <trigger-name>`` if two of them share a name). Characters outside ``[A-Za-z0-9._@-]`` become
  ``-`` (``safe_job_id``); a clash after that gets ``-2``, ``-3``... ``details``: ``trigger``
  (name, group, type, priority), ``misfire`` (Quartz name), ``misfire_policy``, ``job_class``,
  ``handler`` (or None), ``mapped``, ``durability``, ``recover``, ``job_data`` (and
  ``trigger_data``), ...

Policies from the job-data-map
  ``bridge.on-lost`` = ``skip`` | ``rerun`` and ``bridge.repair`` = ``auto`` | ``alert-only``
  set the job's policies (a bad value is an error at the trigger); they are not passed to the
  handler.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bridge.core.errors import BridgeError
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
from crontab_import.model import ImportItem, ItemStatus
from crontab_import.quartz.document import QuartzJob, QuartzTrigger
from crontab_import.quartz.handlers import HandlerMap, build_handler, handler_details
from crontab_import.quartz.schedules import misfire_policy, trigger_schedule
from crontab_import.quartz.tree import Issue, Node
from crontab_import.quartz.values import java_int

_RAW_MAX = 4000


@dataclass
class ImportContext:
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
    # Definitions read from a Quartz store (crontab_import.quartz.store) rather than a file:
    # their source kind, their text by element (``raws``), no line numbers, and no issue
    # refuses the whole source (the store already holds every definition it accepted).
    kind: SourceKind = SourceKind.QUARTZ_XML
    raws: dict[int, str] = field(default_factory=dict)
    whole_file: bool = True


@dataclass
class Draft:
    """What one trigger became, before the final status is decided."""

    id: str | None
    details: dict[str, Any] = field(default_factory=dict)
    errors: list[Issue] = field(default_factory=list)
    unsupported: str | None = None
    schedule: ScheduleSpec | None = None
    handler: Handler | None = None
    policies: Policies = field(default_factory=Policies)


def safe_job_id(raw: str) -> str:
    text = re.sub(r"[^A-Za-z0-9._@-]", "-", raw)
    text = re.sub(r"^[^A-Za-z0-9]+", "", text) or "quartz-job"
    if len(text) > 200:
        text = text[:191] + "-" + hashlib.sha256(raw.encode()).hexdigest()[:8]
    return text


def _trigger_id(t: QuartzTrigger, ctx: ImportContext) -> str:
    if ctx.triggers_per_job[t.job_key] <= 1:
        return safe_job_id(t.job_key)
    shared = ctx.trigger_names[(t.job_key, str(t.name))] > 1
    return safe_job_id(f"{t.job_key}.{t.key if shared else t.name}")


def _schedule(t: QuartzTrigger, ctx: ImportContext, draft: Draft) -> None:
    timing = trigger_schedule(t, now=ctx.now, zone=ctx.zone, zone_name=ctx.zone_name)
    draft.schedule = timing.schedule
    draft.details.update(timing.details)
    draft.errors.extend(timing.errors)
    if timing.unsupported is not None:
        draft.unsupported = timing.unsupported


def _misfire(t: QuartzTrigger, draft: Draft) -> MisfirePolicy:
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
    t: QuartzTrigger, job: QuartzJob, ctx: ImportContext, draft: Draft, misfire: MisfirePolicy
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
        misfire=misfire,
        timeout_seconds=rule.timeout,
        queue=rule.queue,
        shadow_mode=rule.shadow,
        group=rule.group,
        max_concurrency=rule.max_concurrency,
        **extra,
    )
    draft.details.update(handler=handler_details(rule, draft.handler), mapped=True)


BRIDGE_DATA_KEYS = {
    "bridge.on-lost": ("on_lost", LostPolicy),
    "bridge.repair": ("repair", RepairPolicy),
    "bridge.placement": ("placement", Placement),
}


def _bridge_policies(
    t: QuartzTrigger, job: QuartzJob, data: dict[str, str | None], draft: Draft
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
            draft.errors.append(
                Issue(
                    t.node.line,
                    f"job {job.key}: job-data-map {key} '{value}' is not one of {allowed}",
                    fatal=False,
                )
            )
    return out


def raw_text(ctx: ImportContext, node: Node) -> str:
    """The source lines of an element (capped at _RAW_MAX characters)."""
    if id(node) in ctx.raws:
        return ctx.raws[id(node)][:_RAW_MAX]
    first, last = max(node.line - 1, 0), max(node.end_line, node.line)
    lines = [ln[:_RAW_MAX] for ln in ctx.lines[first : min(last, first + 200)]]
    return "\n".join(lines).strip()[:_RAW_MAX]


def draft_trigger(t: QuartzTrigger, ctx: ImportContext) -> Draft:
    if t.name is None or t.job_name is None:
        what = "a name" if t.name is None else "a job-name"
        return Draft(
            id=None,
            errors=[
                Issue(
                    t.node.line,
                    f"{t.element} trigger without {what} (Quartz: 'Name cannot be null.')",
                )
            ],
        )
    draft = Draft(id=_trigger_id(t, ctx))
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


def _priority(t: QuartzTrigger, draft: Draft) -> int:
    text = t.values["priority"]
    try:
        return java_int(text, 32) if text else 5
    except ValueError as e:
        draft.errors.append(Issue(t.line("priority"), f"trigger {t.key}: priority {e}"))
        return 5


def _fill(t: QuartzTrigger, job: QuartzJob, ctx: ImportContext, draft: Draft) -> None:
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


def finish_item(t: QuartzTrigger, draft: Draft, ctx: ImportContext) -> ImportItem:
    source = SourceLocation(
        file=ctx.file, line=t.node.line or None, raw=raw_text(ctx, t.node), kind=ctx.kind
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
