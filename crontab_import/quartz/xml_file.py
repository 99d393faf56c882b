"""Quartz ``job_scheduling_data`` XML (2.0 and 1.8) -> bridge jobs. Pure: bytes in, result out.

``parse_quartz_xml(data, file=..., handlers=..., now=..., default_timezone=...)`` reads the
document the way Quartz 2.3.2's ``XMLSchedulingDataProcessor`` does (checked against the real
processor, see ``tests/oracle/QuartzXmlOracle.java``) and returns a :class:`ParseResult` with
one :class:`ImportItem` per trigger. It never raises for bad input: every problem is an
:class:`ImportError_` naming ``file:line``. ``parse_file`` is the thin I/O wrapper.

The steps live in their own modules of :mod:`crontab_import.quartz`, each documenting what it
reproduces of Quartz: ``tree`` (safe XML reading, line tracking), ``schema`` (the 2.0 and 1.8
schema rules), ``document`` (the jobs, triggers and directives the document defines),
``schedules`` (a trigger's timing -> ScheduleSpec, its misfire instruction -> MisfirePolicy),
``handlers`` (the handler map), ``items`` (one trigger -> one item) and ``assemble`` (the
whole file's items and verdict).

Also checked here
  * ``calendar-name`` refers to a Calendar registered by code: not reproducible, UNSUPPORTED.
  * A job or trigger key defined twice is an error (Quartz silently keeps one of them; with
    ``overwrite-existing-data`` false and no ``ignore-duplicates`` it refuses the file).
  * Quartz also refuses a file when a ``job-class`` is not on its classpath: that cannot be
    checked here.

Quartz 1.8 files
  Same namespace; recognised by ``version="1.8"`` on the root and validated with the 1.8 schema
  rules. ``date-interval`` (1.8's DateIntervalTrigger) is read as ``calendar-interval``;
  ``volatility`` and ``job-listener-ref`` are kept in ``details`` (listeners are not
  reproduced). A note says when the file uses 1.8-only elements, which Quartz 2.x refuses.

Handler map (TOML, :func:`crontab_import.quartz.handlers.load_handler_map`)
  Maps each ``job-class`` to the command or callable the bridge runs for it. A job no entry
  matches is imported with an :class:`UnmappedHandler` (status OK, ``details["mapped"] =
  False``).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from bridge.core.errors import InputError, ParseError
from crontab_import.model import DEFAULT_MAX_BYTES, ImportError_, ParseResult
from crontab_import.quartz.assemble import assemble_items, default_zone
from crontab_import.quartz.document import (
    QuartzJob,
    document_notes,
    read_directive,
    read_jobs,
    read_triggers,
)
from crontab_import.quartz.handlers import HandlerMap
from crontab_import.quartz.items import ImportContext
from crontab_import.quartz.schema import validate_schema
from crontab_import.quartz.tree import NS, WS, Issue, Node, read_tree

DEFAULT_MAX_TRIGGERS = 10000  # import limit per file (--max-jobs)


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
    zone = default_zone(default_timezone)
    try:
        root = read_tree(data, max_triggers=max_triggers)
    except ParseError as e:
        line = e.line if e.line is not None else 1
        return ParseResult(file=file, errors=(ImportError_(file, line, e.message),))
    problem = _root_problem(root)
    if problem:
        return ParseResult(file=file, errors=(ImportError_(file, root.line, problem),))
    version = "1.8" if root.attrs.get((None, "version"), "").strip(WS) == "1.8" else "2.0"
    ctx = ImportContext(
        file=file,
        lines=_text_lines(data),
        handlers=handlers,
        now=now,
        zone_name=default_timezone,
        zone=zone,
        version=version,
    )
    return _import(root, ctx)


def _import(root: Node, ctx: ImportContext) -> ParseResult:
    issues = validate_schema(root, ctx.version)
    notes, pre_issues = document_notes(root, ctx.version)
    jobs, job_issues = read_jobs(root)
    ctx.jobs, dup_issues = _index_jobs(jobs, root)
    triggers = read_triggers(root)
    return assemble_items(triggers, ctx, [*issues, *pre_issues, *job_issues, *dup_issues], notes)


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


def _root_problem(root: Node) -> str | None:
    if root.ns == NS and root.tag == "job-scheduling-data":
        return None
    found = f"{{{root.ns}}}{root.tag}" if root.ns else root.tag
    return (
        f"not a Quartz job_scheduling_data document: the root element is <{found}>, "
        f'expected <job-scheduling-data xmlns="{NS}"> (1.8 or 2.0)'
    )


def _text_lines(data: bytes) -> list[str]:
    codec = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8"
    return data.decode(codec, "replace").splitlines()


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
