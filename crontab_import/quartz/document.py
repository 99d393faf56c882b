"""What a Quartz ``job_scheduling_data`` tree defines: its jobs, triggers and directives.

``read_jobs`` and ``read_triggers`` turn the elements of a ``quartz.tree.Node`` tree into
:class:`QuartzJob` and :class:`QuartzTrigger` records, read the way Quartz 2.3.2's
``XMLSchedulingDataProcessor`` reads them; ``document_notes`` reports what the file asks of
Quartz besides its schedule. The importer (``crontab_import.quartz.items``) turns the records into
bridge jobs.

How Quartz reads values
  Values are trimmed; an empty value is absent (``null``): group ``DEFAULT`` for jobs and
  triggers, an empty job-data-map value is ``null``. ``durability``/``recover`` are true only
  for the exact text ``true`` (``1`` is schema-valid but reads as false).
  ``processing-directives`` read true only for ``true``/``yes``/``y`` (any case, untrimmed).
  A 1.8 ``date-interval`` (DateIntervalTrigger) is read as a ``calendar-interval``.

Notes
  ``pre-processing-commands`` and ``processing-directives`` are reported in notes, and so is a
  1.8 file, naming the 1.8-only elements it uses (Quartz 2.x refuses them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from crontab_import.quartz.schema import TRIGGER_ELEMENTS
from crontab_import.quartz.tree import NS, WS, Issue, Node
from crontab_import.quartz.values import collapsed

__all__ = [
    "DEFAULT_GROUP",
    "QuartzJob",
    "QuartzTrigger",
    "document_notes",
    "read_directive",
    "read_jobs",
    "read_triggers",
]

DEFAULT_GROUP = "DEFAULT"


@dataclass
class QuartzJob:
    name: str
    group: str
    job_class: str | None
    description: str | None
    durable: bool
    recover: bool
    data: dict[str, str | None]
    node: Node
    listener: str | None = None
    volatility: str | None = None

    @property
    def key(self) -> str:
        return f"{self.group}.{self.name}"


@dataclass
class QuartzTrigger:
    element: str  # simple | cron | calendar-interval | date-interval
    name: str | None
    group: str
    job_name: str | None
    job_group: str
    node: Node
    values: dict[str, str | None]
    data: dict[str, str | None]

    @property
    def kind(self) -> str:
        return "calendar-interval" if self.element == "date-interval" else self.element

    @property
    def key(self) -> str:
        return f"{self.group}.{self.name}"

    @property
    def job_key(self) -> str:
        return f"{self.job_group}.{self.job_name}"

    def line(self, tag: str) -> int:
        return self.node.line_of(tag)


_TRIGGER_VALUES = (
    "description", "priority", "calendar-name", "start-time", "start-time-seconds-in-future",
    "end-time", "misfire-instruction", "cron-expression", "time-zone", "repeat-count",
    "repeat-interval", "repeat-interval-unit", "volatility",
)  # fmt: skip


def _data_map(node: Node) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for jdm in node.kids("job-data-map"):
        for entry in jdm.kids("entry"):
            out[entry.value("key") or ""] = entry.value("value")
    return out


def _schedule_nodes(root: Node, tag: str) -> Iterator[Node]:
    for schedule in root.kids("schedule"):
        yield from schedule.kids(tag)


def read_jobs(root: Node) -> tuple[list[QuartzJob], list[Issue]]:
    jobs, issues = [], []
    for node in _schedule_nodes(root, "job"):
        name = node.value("name")
        if name is None:
            issues.append(Issue(node.line, "job without a name (Quartz: 'Name cannot be null.')"))
            continue
        job = QuartzJob(
            name=name,
            group=node.value("group") or DEFAULT_GROUP,
            job_class=node.value("job-class"),
            description=node.value("description"),
            durable=node.value("durability") == "true",
            recover=node.value("recover") == "true",
            data=_data_map(node),
            node=node,
            listener=node.value("job-listener-ref"),
            volatility=node.value("volatility"),
        )
        if job.job_class is None:
            issues.append(Issue(node.line, f"job {job.key} has no job-class"))
        jobs.append(job)
    return jobs, issues


def read_triggers(root: Node) -> list[QuartzTrigger]:
    out = []
    for wrapper in _schedule_nodes(root, "trigger"):
        for node in wrapper.children:
            if node.ns != NS or node.tag not in TRIGGER_ELEMENTS:
                continue
            out.append(QuartzTrigger(
                element=node.tag,
                name=node.value("name"),
                group=node.value("group") or DEFAULT_GROUP,
                job_name=node.value("job-name"),
                job_group=node.value("job-group") or DEFAULT_GROUP,
                node=node,
                values={k: node.value(k) for k in _TRIGGER_VALUES},
                data=_data_map(node),
            ))  # fmt: skip
    return out


def read_directive(root: Node, tag: str) -> tuple[bool | None, Node | None]:
    """Quartz's ``getBoolean``: untrimmed text, true only for true/yes/y (any case)."""
    for directives in root.kids("processing-directives"):
        node = directives.first(tag)
        if node is not None:
            return node.string_value().lower() in ("true", "yes", "y"), node
    return None, None


def document_notes(root: Node, version: str) -> tuple[list[str], list[Issue]]:
    notes, issues = [], []
    if version == "1.8":
        notes.append(_note_18(root))
    for pre in root.kids("pre-processing-commands"):
        for node in pre.children:
            note, issue = _pre_command(node)
            notes.extend([note] if note else [])
            issues.extend([issue] if issue else [])
    for tag in ("overwrite-existing-data", "ignore-duplicates"):
        value, directive = read_directive(root, tag)
        if directive is not None:
            notes.append(_directive_note(tag, bool(value), directive))
    return notes, issues


def _directive_note(tag: str, value: bool, node: Node) -> str:
    literal = node.string_value()
    note = f"line {node.line}: processing-directives {tag} = {str(value).lower()}"
    if (collapsed(literal) in ("true", "1")) != value:
        note += f" (written {literal!r}: Quartz reads only true/yes/y as true)"
    return note


def _note_18(root: Node) -> str:
    only_18 = []
    stack = [root]
    while stack:  # document order
        node = stack.pop()
        if node.tag in ("volatility", "job-listener-ref", "date-interval") and node.ns == NS:
            only_18.append(f"{node.tag} at line {node.line}")
        stack.extend(reversed(node.children))
    text = "job_scheduling_data 1.8 file: read with the 1.8 schema"
    if only_18:
        text += f"; it uses 1.8-only elements Quartz 2.x refuses ({', '.join(only_18)})"
    return text


def _pre_command(node: Node) -> tuple[str | None, Issue | None]:
    if node.ns != NS:
        return None, None
    if node.tag in ("delete-jobs-in-group", "delete-triggers-in-group"):
        group = node.string_value().strip(WS)
        if not group:
            return None, None
        what = "jobs (and their triggers)" if node.tag == "delete-jobs-in-group" else "triggers"
        scope = "every group" if group == "*" else f"group '{group}'"
        return (
            f"line {node.line}: pre-processing {node.tag} '{group}': Quartz deletes all "
            f"{what} of {scope} before loading this file"
        ), None
    if node.tag in ("delete-job", "delete-trigger"):
        name = node.value("name")
        if name is None:
            return None, Issue(
                node.line, f"'{node.tag}' command without a name (Quartz refuses the file)"
            )
        key = f"{node.value('group') or DEFAULT_GROUP}.{name}"
        return f"line {node.line}: pre-processing {node.tag} {key}", None
    return None, None
