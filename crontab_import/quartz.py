"""Quartz ``job_scheduling_data`` XML (2.0 and 1.8) -> bridge jobs. Pure: bytes in, result out.

``parse_quartz_xml(data, file=..., handlers=..., now=..., default_timezone=...)`` reads the
document the way Quartz 2.3.2's ``XMLSchedulingDataProcessor`` does (checked against the real
processor, see ``tests/oracle/QuartzXmlOracle.java``) and returns a :class:`ParseResult` with
one :class:`ImportItem` per trigger. It never raises for bad input: every problem is an
:class:`ImportError_` naming ``file:line``. ``parse_file`` and ``load_handler_map`` are the
thin I/O wrappers.

Reading the XML
  Only through defusedxml's SAX driver: a DOCTYPE (hence every entity declaration: billion
  laughs, XXE) is refused at once, as Quartz itself refuses it. Elements nested deeper than
  ``MAX_DEPTH`` are refused too (Quartz documents are six levels deep). Each element keeps the
  line where its start tag begins; errors and ``SourceLocation.line`` use it.

What Quartz 2.3.2 does, and so what the importer reproduces
  * The document is validated against ``job_scheduling_data_2_0.xsd`` and **any** schema error
    makes Quartz reject the whole file: element order, an unknown element, text where only
    elements go, ``TRUE`` for a boolean, a ``cron-expression`` or ``misfire-instruction`` with
    blanks around it, lower-case day names, two blanks between cron fields (the schema's
    cron pattern). The importer checks the same rules, located. ``MISFIRE_INSTRUCTION_
    IGNORE_MISFIRE_POLICY`` cannot be written in a job XML (schema and reader reject it).
  * Values are trimmed; an empty value is absent (``null``): group ``DEFAULT`` for jobs and
    triggers, an empty job-data-map value is ``null``. ``durability``/``recover`` are true only
    for the exact text ``true`` (``1`` is schema-valid but reads as false).
    ``processing-directives`` read true only for ``true``/``yes``/``y`` (any case, untrimmed).
  * ``start-time``/``end-time`` are ``xs:dateTime``; without an offset they are wall times of
    the JVM's default zone (``default_timezone`` here): a time in a spring-forward gap moves
    forward by the gap, an ambiguous autumn time is the later (standard-time) instant.
    Fractions are truncated to milliseconds; a cron trigger's start drops its milliseconds.
    No start: Quartz starts the trigger when it loads the file. For cron triggers that only
    bounds the schedule (``start`` stays empty); for simple and calendar-interval triggers the
    load time fixes the phase, which the bridge cannot know: it uses ``now`` (the import time)
    and says so in a note and in ``details["start_source"]`` (``file``, ``seconds-in-future``
    = ``now`` + seconds, ``import-time``, or ``none`` for a cron trigger without start).
  * A cron ``time-zone`` id is looked up with ``java.util.TimeZone``: an unknown id silently
    becomes GMT. The importer makes that an ERROR for the trigger instead. Java's three-letter
    ids (``PST``, ``IST``, ...) become their IANA zone; ``GMT+h`` custom ids become ``Etc/GMT-h``;
    non-whole-hour custom offsets are UNSUPPORTED. No ``time-zone``: the default zone. (An id
    only Java knows, e.g. ``SystemV/EST5``, is reported unknown too.)
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
  * ``pre-processing-commands`` and ``processing-directives`` are reported in ``notes``.

Quartz 1.8 files
  Same namespace; recognised by ``version="1.8"`` on the root and validated with the 1.8 schema
  rules (``job-listener-ref``, ``volatility``, ``date-interval``; no ``priority``,
  ``calendar-interval`` or ``start-time-seconds-in-future``; a stricter cron pattern).
  ``date-interval`` (1.8's DateIntervalTrigger) is read as ``calendar-interval``;
  ``volatility`` and ``job-listener-ref`` are kept in ``details`` (listeners are not
  reproduced). A note says when the file uses 1.8-only elements, which Quartz 2.x refuses.

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

Job ids and details
  One bridge job per trigger: ``<job-group>.<job-name>`` when the job has one trigger in the
  file, ``<job-group>.<job-name>.<trigger-name>`` when it has several (``<trigger-group>.
  <trigger-name>`` if two of them share a name). Characters outside ``[A-Za-z0-9._@-]`` become
  ``-``; a clash after that gets ``-2``, ``-3``... ``details``: ``trigger`` (name, group, type,
  priority), ``misfire`` (Quartz name), ``misfire_policy``, ``job_class``, ``handler`` (or
  None), ``mapped``, ``durability``, ``recover``, ``job_data`` (and ``trigger_data``), ...

Handler map (TOML, ``load_handler_map``)
  ::

      version = 1                       # optional
      [defaults]                        # optional, applies to every [[handler]]
      user = "batch"                    # user, shell, env, timeout, queue, shadow
      timeout = 3600
      [[handler]]
      job_class = "com.acme.InvoiceJob" # required: the Quartz job-class it maps
      job = "billing.invoices"          # optional: only this job key (group.name)
      match = { region = "eu" }         # optional: job-data-map values that must be equal
      command = "/opt/acme/invoice --region {region}"   # or: callable = "acme.jobs:invoice"
      dry_run_command = "/opt/acme/invoice --region {region} --dry-run"
      user = "billing"                  # command user   } commands only,
      shell = "/bin/bash"               # default /bin/sh } ignored for
      env = { LANG = "C.UTF-8" }        # merged over [defaults].env } callables
      timeout = 1800                    # seconds, > 0
      queue = "billing"                 # Celery queue (default "bridge")
      shadow = "dry-run"                # observe (default) | dry-run | execute

  ``{key}`` in ``command``/``dry_run_command`` is the job's merged job-data-map value (the
  trigger's entries override the job's, as in Quartz), shell-quoted with ``shlex.quote``;
  ``{{``/``}}`` are literal braces. A missing or empty key is an ERROR naming the job. A
  ``callable`` (``module:function``, and ``dry_run_callable``) gets the merged job-data-map as
  keyword arguments. Among the ``[[handler]]`` entries whose selectors match a job, the most
  specific wins (``job`` first, then the number of ``match`` keys); a tie is an ERROR. A job
  no entry matches is imported with an :class:`UnmappedHandler` (status OK,
  ``details["mapped"] = False``): it can be shadow-observed, never executed or flipped.
  Errors in the map are :class:`ParseError` located ``handlers.toml:LINE`` (else by key path).
"""

from __future__ import annotations

import hashlib
import re
import shlex
import tomllib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from io import BytesIO
from pathlib import Path
from typing import Any
from xml.sax import SAXParseException
from xml.sax.handler import ContentHandler
from xml.sax.xmlreader import InputSource
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from defusedxml.common import DefusedXmlException, DTDForbidden
from defusedxml.expatreader import DefusedExpatParser

from bridge.errors import BridgeError, ParseError, ScheduleError
from bridge.spec import (
    CALLABLE_RE,
    ENV_NAME_RE,
    CallableHandler,
    CommandHandler,
    Dialect,
    Handler,
    IntervalUnit,
    JobSpec,
    MisfirePolicy,
    Policies,
    ScheduleSpec,
    ShadowMode,
    SourceKind,
    SourceLocation,
    UnmappedHandler,
)
from crontab_import.model import ImportError_, ImportItem, ItemStatus, ParseResult

__all__ = [
    "NS",
    "HandlerMap",
    "HandlerRule",
    "load_handler_map",
    "misfire_policy",
    "parse_file",
    "parse_handler_map",
    "parse_quartz_xml",
]

NS = "http://www.quartz-scheduler.org/xml/JobSchedulingData"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
DEFAULT_GROUP = "DEFAULT"
MAX_DEPTH = 32
_WS = " \t\n\r"
_RAW_MAX = 4000

# ============================================================================ XML tree (SAX)


@dataclass
class _Node:
    tag: str
    ns: str
    line: int
    attrs: dict[tuple[str | None, str], str] = field(default_factory=dict)
    parts: list[_Node | str] = field(default_factory=list)  # text and children, in order
    end_line: int = 0

    @property
    def children(self) -> list[_Node]:
        return [p for p in self.parts if isinstance(p, _Node)]

    @property
    def text(self) -> str:
        """The element's own text (not its descendants')."""
        return "".join(p for p in self.parts if isinstance(p, str))

    def kids(self, tag: str) -> list[_Node]:
        return [c for c in self.children if c.ns == NS and c.tag == tag]

    def first(self, tag: str) -> _Node | None:
        found = self.kids(tag)
        return found[0] if found else None

    def line_of(self, tag: str) -> int:
        node = self.first(tag)
        return node.line if node else self.line

    def string_value(self) -> str:
        """XPath string value: the text of the element and all its descendants, in order."""
        out: list[str] = []
        stack: list[_Node | str] = [self]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                out.append(item)
            else:
                stack.extend(reversed(item.parts))
        return "".join(out)

    def value(self, tag: str) -> str | None:
        """Quartz's ``getTrimmedToNullString``: first child's trimmed text, None if empty."""
        node = self.first(tag)
        text = node.string_value().strip(_WS) if node else ""
        return text or None


class _TreeBuilder(ContentHandler):
    def __init__(self) -> None:
        super().__init__()
        self.root: _Node | None = None
        self._stack: list[_Node] = []
        self._locator: Any = None

    def setDocumentLocator(self, locator: Any) -> None:
        self._locator = locator

    def _line(self) -> int:
        return int(self._locator.getLineNumber() or 0) if self._locator else 0

    def startElementNS(self, name: Any, qname: Any, attrs: Any) -> None:
        if len(self._stack) >= MAX_DEPTH:
            raise ParseError(f"elements nested deeper than {MAX_DEPTH} levels", line=self._line())
        ns, local = name
        node = _Node(tag=local, ns=ns or "", line=self._line(), attrs=dict(attrs.items()))
        if self._stack:
            self._stack[-1].parts.append(node)
        else:
            self.root = node
        self._stack.append(node)

    def endElementNS(self, name: Any, qname: Any) -> None:
        self._stack.pop().end_line = self._line()

    def characters(self, content: str) -> None:
        if self._stack:
            self._stack[-1].parts.append(content)


def _read_tree(data: bytes) -> _Node:
    """Parse with defusedxml (no DTD, no entities, no external references) into a _Node tree."""
    builder = _TreeBuilder()
    parser = DefusedExpatParser(
        namespaceHandling=1, forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    parser.setContentHandler(builder)
    source = InputSource()
    source.setByteStream(BytesIO(data))
    try:
        parser.parse(source)
    except DTDForbidden as e:
        raise ParseError(
            "a DOCTYPE is not allowed (Quartz refuses it too; entity declarations are how "
            "billion-laughs and XXE attacks work)",
            line=_parser_line(parser),
        ) from e
    except DefusedXmlException as e:
        raise ParseError(f"refused XML construct: {e}", line=_parser_line(parser)) from e
    except SAXParseException as e:
        raise ParseError(f"not well-formed XML: {e.getMessage()}", line=e.getLineNumber()) from e
    except (ValueError, LookupError) as e:
        raise ParseError(f"unreadable XML: {e}", line=_parser_line(parser)) from e
    if builder.root is None:
        raise ParseError("no root element", line=1)
    return builder.root


def _parser_line(parser: Any) -> int | None:
    try:
        return int(parser.getLineNumber())
    except (AttributeError, TypeError, ValueError):
        return None


# ============================================================================ schema (XSD rules)


@dataclass(frozen=True)
class _Issue:
    line: int | None
    message: str
    fatal: bool = True  # Quartz rejects the whole file for it


def _compile_model(notation: str) -> re.Pattern[str]:
    """A content model (``name group? (a | b)*``) as a regex over "tag tag " strings."""

    def token(t: str) -> str:
        if t == "(":
            return "(?:"
        return t if t in ")|?*+" else f"(?:{t} )"

    return re.compile("".join(token(t) for t in re.findall(r"[a-z][a-z0-9-]*|[()|?*+]", notation)))


_BASE_20 = (
    "name group? description? job-name job-group? priority? calendar-name? job-data-map? "
    "((start-time | start-time-seconds-in-future) end-time?)?"
)
_BASE_18 = (
    "name group? description? job-name job-group? calendar-name? volatility? job-data-map? "
    "(start-time end-time?)?"
)
_COMMON_MODELS = {
    "root": "(pre-processing-commands | processing-directives | schedule)*",
    "pre-processing-commands": (
        "(delete-jobs-in-group | delete-triggers-in-group | delete-job | delete-trigger)*"
    ),
    "processing-directives": "overwrite-existing-data? ignore-duplicates?",
    "delete-key": "name group?",
    "schedule": "(job | trigger)*",
    "job-data-map": "entry*",
    "entry": "key value",
}


def _version_models(version: str) -> dict[str, str]:
    base = _BASE_18 if version == "1.8" else _BASE_20
    if version == "1.8":
        job = "name group? description? job-class job-listener-ref? "
        job += "(volatility durability recover)? job-data-map?"
        trigger = "simple | cron | date-interval"
    else:
        job = "name group? description? job-class (durability recover)? job-data-map?"
        trigger = "simple | cron | calendar-interval"
    return {
        **_COMMON_MODELS,
        "job": job,
        "trigger": trigger,
        "simple": base + " misfire-instruction? (repeat-count repeat-interval)?",
        "cron": base + " misfire-instruction? cron-expression time-zone?",
        "calendar-interval": base + " misfire-instruction? repeat-interval repeat-interval-unit",
    }


_MODELS = {
    v: {k: (n, _compile_model(n)) for k, n in _version_models(v).items()} for v in ("2.0", "1.8")
}

_TRIGGER_KIDS = {
    "name": "string", "group": "string", "description": "string", "job-name": "string",
    "job-group": "string", "priority": "nni", "calendar-name": "string",
    "volatility": "boolean", "job-data-map": "job-data-map", "start-time": "dateTime",
    "start-time-seconds-in-future": "nni", "end-time": "dateTime",
}  # fmt: skip
_CHILD_TYPES: dict[str, dict[str, str]] = {
    "root": {k: k for k in ("pre-processing-commands", "processing-directives", "schedule")},
    "pre-processing-commands": {
        "delete-jobs-in-group": "string", "delete-triggers-in-group": "string",
        "delete-job": "delete-key", "delete-trigger": "delete-key",
    },
    "processing-directives": {"overwrite-existing-data": "boolean", "ignore-duplicates": "boolean"},
    "delete-key": {"name": "string", "group": "string"},
    "schedule": {"job": "job", "trigger": "trigger"},
    "job": {
        "name": "string", "group": "string", "description": "string", "job-class": "string",
        "job-listener-ref": "string", "volatility": "boolean", "durability": "boolean",
        "recover": "boolean", "job-data-map": "job-data-map",
    },
    "job-data-map": {"entry": "entry"},
    "entry": {"key": "string", "value": "string"},
    "trigger": {
        "simple": "simple", "cron": "cron", "calendar-interval": "calendar-interval",
        "date-interval": "calendar-interval",
    },
    "simple": {**_TRIGGER_KIDS, "misfire-instruction": "simple-misfire",
               "repeat-count": "repeat-count", "repeat-interval": "nni"},
    "cron": {**_TRIGGER_KIDS, "misfire-instruction": "cron-misfire",
             "cron-expression": "cron-expression", "time-zone": "string"},
    "calendar-interval": {**_TRIGGER_KIDS, "misfire-instruction": "calendar-misfire",
                          "repeat-interval": "nni", "repeat-interval-unit": "interval-unit"},
}  # fmt: skip

CRON_MISFIRES = ("SMART_POLICY", "DO_NOTHING", "FIRE_ONCE_NOW")
SIMPLE_MISFIRES = (
    "SMART_POLICY",
    "RESCHEDULE_NEXT_WITH_EXISTING_COUNT",
    "RESCHEDULE_NEXT_WITH_REMAINING_COUNT",
    "RESCHEDULE_NOW_WITH_EXISTING_REPEAT_COUNT",
    "RESCHEDULE_NOW_WITH_REMAINING_REPEAT_COUNT",
    "FIRE_NOW",
)
_ENUMS = {
    "cron-misfire": tuple(f"MISFIRE_INSTRUCTION_{m}" for m in CRON_MISFIRES),
    "calendar-misfire": tuple(f"MISFIRE_INSTRUCTION_{m}" for m in CRON_MISFIRES),
    "simple-misfire": tuple(f"MISFIRE_INSTRUCTION_{m}" for m in SIMPLE_MISFIRES),
    "interval-unit": ("DAY", "HOUR", "MINUTE", "MONTH", "SECOND", "WEEK", "YEAR"),
}


def _cron_field_patterns(version: str) -> list[str]:
    """The seven field patterns of the schema's ``cron-expressionType`` (2.0 or 1.8)."""
    sec, hour = "[0-9]|[0-5][0-9]", "[0-9]|[0-1][0-9]|[2][0-3]"
    dom, mon = "[1-9]|[0][1-9]|[1-2][0-9]|[3][0-1]", "[1-9]|0[1-9]|1[0-2]"
    months = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC"
    days, year = "MON|TUE|WED|THU|FRI|SAT|SUN", "(19[7-9][0-9])|(20[0-9][0-9])"
    if version == "1.8":

        def lst(n: str) -> str:
            return f"((({n}),)*({n}))"

        def rng(n: str, star: bool = True) -> str:
            return f"(({'[*]|' if star else ''}{n})(/|-)({n}))"

        dom_extra = "(L)"
        dow = f"(([1-7],)*([1-7]))|([1-7](/|-)([1-7]))|(((({days}),)*({days})(C)?))"
        dow += f"|(({days})(-|/)({days})(C)?)"
        yr = f"([ \t\n\r]?(([*])?|{year})?| (({year})(-|/)({year}))?| (((({year}),)*({year})))?)"
    else:

        def lst(n: str) -> str:
            return f"((({n})(-({n}))?,)*({n})(-({n}))?)"

        def rng(n: str, star: bool = True) -> str:
            return f"(({'[*]|' if star else ''}{n})/({n}))"

        dom_extra = "(L(-[0-9])?)|(L(-[1-2][0-9])?)|(L(-[3][0-1])?)"
        dow = f"({lst('[1-7]')})|([1-7]/([1-7]))|({lst(days)}(C)?)|(({days})/({days})(C)?)"
        yr = f"([ \t\n\r]?(([*])?|{year})?| (({year})/({year}))?| ({lst(year)})?)"

    def simple(n: str) -> str:
        return f"({lst(n)})|({rng(n)})|([?])|([*])"

    return [
        simple(sec),
        simple(sec),
        simple(hour),
        f"({lst(dom)}(C)?)|({rng(dom, star=False)}(C)?)|{dom_extra}"
        "|(LW)|([1-9]W)|([1-3][0-9]W)|([?])|([*])",
        f"({lst(mon)})|({rng(mon, star=False)})|({lst(months)})|({rng(months, star=False)})"
        "|([?])|([*])",
        f"{dow}|(([1-7]|({days}))?(L|LW)?)|(([1-7]|{days})#([1-7])?)|([?])|([*])",
        yr,
    ]


def _cron_schema_pattern(version: str) -> re.Pattern[str]:
    fields_ = _cron_field_patterns(version)
    body = "[ \t\n\r]".join(f"({f})" for f in fields_[:6])
    return re.compile(body + fields_[6])


CRON_SCHEMA_PATTERNS = {v: _cron_schema_pattern(v) for v in ("2.0", "1.8")}

_DATETIME_RE = re.compile(
    r"(-?)([0-9]{4,})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_NNI_RE = re.compile(r"\+?[0-9]+|-0+")
_INT_RE = re.compile(r"[+-]?[0-9]+")


def _collapsed(text: str) -> str:
    return " ".join(part for part in re.split(r"[ \t\n\r]+", text) if part)


def _check_simple_value(kind: str, text: str, version: str) -> str | None:
    """Why ``text`` is not a valid value of schema type ``kind`` (None when it is)."""
    value = _collapsed(text)
    if kind == "boolean" and value not in ("true", "false", "1", "0"):
        return f"{text!r} is not an xs:boolean (true, false, 1 or 0)"
    if kind == "nni" and not _NNI_RE.fullmatch(value):
        return f"{text!r} is not a non-negative integer"
    if kind == "repeat-count" and not (_INT_RE.fullmatch(value) and int(value) >= -1):
        return f"{text!r} is not an integer >= -1 (-1 repeats forever)"
    if kind == "dateTime":
        return _datetime_problem(value, text)
    if kind == "cron-expression" and not CRON_SCHEMA_PATTERNS[version].fullmatch(text):
        return (
            f"{text!r} does not match the job_scheduling_data {version} schema's cron pattern "
            "(upper-case names, one blank between fields, nothing around the expression)"
        )
    if kind in _ENUMS and text not in _ENUMS[kind]:
        if text.strip(_WS) == "MISFIRE_INSTRUCTION_IGNORE_MISFIRE_POLICY":
            return "MISFIRE_INSTRUCTION_IGNORE_MISFIRE_POLICY cannot be written in a job XML"
        return f"{text!r} is not one of {', '.join(_ENUMS[kind])} (exact spelling, no blanks)"
    return None


class _OutOfRange(ValueError):
    """A valid xs:dateTime Python's datetime cannot hold."""


def _datetime_problem(value: str, text: str) -> str | None:
    try:
        _xs_datetime(value, UTC)
    except _OutOfRange:
        return None
    except ValueError as e:
        return f"{text!r} is not an xs:dateTime ({e})"
    return None


def _validate(root: _Node, version: str) -> list[_Issue]:
    """Every schema violation of the tree (iterative: depth is bounded by MAX_DEPTH anyway)."""
    issues: list[_Issue] = []
    stack: list[tuple[_Node, str]] = [(root, "root")]
    while stack:
        node, kind = stack.pop()
        issues.extend(_check_attributes(node, kind == "root"))
        if kind in _MODELS[version]:
            issues.extend(_check_complex(node, kind, version))
            types = _CHILD_TYPES[kind]
            stack.extend((c, types[c.tag]) for c in node.children if c.ns == NS and c.tag in types)
        else:
            issues.extend(_check_simple(node, kind, version))
    return issues


def _check_attributes(node: _Node, is_root: bool) -> list[_Issue]:
    bad = [
        local
        for (ns, local) in node.attrs
        if ns != XSI_NS and not (is_root and ns is None and local == "version")
    ]
    return [_Issue(node.line, f"attribute '{a}' is not allowed on <{node.tag}>") for a in bad]


def _check_complex(node: _Node, kind: str, version: str) -> list[_Issue]:
    issues = []
    text = node.text.strip(_WS)
    if text:
        issues.append(
            _Issue(node.line, f"<{node.tag}> may only contain elements, not text {_short(text)!r}")
        )
    notation, pattern = _MODELS[version][kind]
    vocabulary = set(re.findall(r"[a-z][a-z0-9-]*", notation))
    strangers = [c for c in node.children if c.ns != NS or c.tag not in vocabulary]
    for child in strangers:
        where = "" if child.ns == NS else f" (namespace {child.ns or 'none'})"
        issues.append(
            _Issue(
                child.line,
                f"<{child.tag}>{where} is not allowed in <{node.tag}> "
                f"(job_scheduling_data {version})",
            )
        )
    tokens = "".join(f"{c.tag} " for c in node.children)
    if not strangers and not pattern.fullmatch(tokens):
        found = ", ".join(c.tag for c in node.children) or "nothing"
        issues.append(
            _Issue(
                node.line,
                f"<{node.tag}> content is out of order or incomplete: "
                f"expected {notation}; found {found}",
            )
        )
    return issues


def _check_simple(node: _Node, kind: str, version: str) -> list[_Issue]:
    if node.children:
        return [_Issue(node.line, f"<{node.tag}> may not contain elements")]
    problem = _check_simple_value(kind, node.text, version)
    return [_Issue(node.line, f"<{node.tag}>: {problem}")] if problem else []


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ============================================================================ values & times


def _xs_datetime(value: str, default_zone: ZoneInfo | timezone) -> datetime:
    """An ``xs:dateTime`` as Java's DatatypeConverter reads it (local times: default zone), in
    UTC; ValueError when it is not one (or not representable)."""
    m = _DATETIME_RE.fullmatch(value)
    if not m:
        raise ValueError("expected YYYY-MM-DDThh:mm:ss[.fff][Z|+hh:mm]")
    sign, year_s, mo, d, h, mi, s, frac, tz = m.groups()
    if sign or year_s == "0000" or (len(year_s) > 4 and year_s[0] == "0"):
        raise ValueError(f"year {sign}{year_s} is not an XML Schema year")
    if int(year_s) > 9999:
        raise _OutOfRange("outside the years 0001..9999 (UTC) the bridge supports")
    micro = int((frac[1:] + "000")[:3]) * 1000 if frac else 0
    midnight = (h, mi, s) == ("24", "00", "00") and not micro
    try:
        wall = datetime(
            int(year_s), int(mo), int(d), 0 if midnight else int(h), int(mi), int(s), micro
        ) + timedelta(days=midnight)
        local = (
            _java_local(wall, default_zone) if tz is None else wall.replace(tzinfo=_offset_zone(tz))
        )
        return local.astimezone(UTC)
    except OverflowError:
        raise _OutOfRange("outside the years 0001..9999 (UTC) the bridge supports") from None


def _offset_zone(tz: str) -> timezone:
    if tz == "Z":
        return UTC
    hours, minutes = int(tz[1:3]), int(tz[4:6])
    if minutes > 59 or hours * 60 + minutes > 14 * 60:
        raise ValueError(f"offset {tz} is outside -14:00..+14:00")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if tz[0] == "-" else delta)


def _java_local(wall: datetime, zone: ZoneInfo | timezone) -> datetime:
    """A wall time of ``zone`` as Java's GregorianCalendar resolves it.

    Ambiguous (autumn) times are the later, standard-time instant; times in a spring gap are
    read with the offset before the gap (so 02:30 becomes 03:30 on a 1-hour jump).
    """
    later = wall.replace(tzinfo=zone, fold=1)
    if later.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return later
    return wall.replace(tzinfo=zone, fold=0)


def _java_int(text: str, bits: int) -> int:
    """``Integer.parseInt``/``Long.parseLong``: ASCII digits, optional sign, bounded."""
    if not _INT_RE.fullmatch(text):
        raise ValueError(f"'{text}' is not a number")
    value = int(text)
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise ValueError(f"'{text}' does not fit a Java {'int' if bits == 32 else 'long'}")
    return value


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


# ============================================================================ handler map


@dataclass(frozen=True)
class HandlerRule:
    """One ``[[handler]]`` entry of the map (defaults already applied)."""

    index: int
    where: str  # "handlers.toml:12" or "handlers.toml handler[2]"
    job_class: str
    job: str | None = None
    match: tuple[tuple[str, str], ...] = ()
    command: str | None = None
    dry_run_command: str | None = None
    callable: str | None = None
    dry_run_callable: str | None = None
    user: str | None = None
    shell: str = "/bin/sh"
    env: tuple[tuple[str, str], ...] = ()
    timeout: int | None = None
    queue: str = "bridge"
    shadow: ShadowMode = ShadowMode.OBSERVE

    def selects(self, job_class: str, job_key: str, data: Mapping[str, str | None]) -> bool:
        return (
            self.job_class == job_class
            and self.job in (None, job_key)
            and all(data.get(k) == v for k, v in self.match)
        )

    @property
    def specificity(self) -> tuple[int, int]:
        return (self.job is not None, len(self.match))


@dataclass(frozen=True)
class HandlerMap:
    file: str
    rules: tuple[HandlerRule, ...] = ()

    def select(
        self, job_class: str, job_key: str, data: Mapping[str, str | None]
    ) -> HandlerRule | None:
        """The most specific matching rule; ValueError when two tie."""
        matching = [r for r in self.rules if r.selects(job_class, job_key, data)]
        if not matching:
            return None
        best = max(r.specificity for r in matching)
        top = [r for r in matching if r.specificity == best]
        if len(top) > 1:
            raise ValueError(
                f"ambiguous handler mapping: {top[0].where} and {top[1].where} both match"
            )
        return top[0]


_RULE_KEYS = {
    "job_class", "job", "match", "command", "dry_run_command", "callable", "dry_run_callable",
    "user", "shell", "env", "timeout", "queue", "shadow",
}  # fmt: skip
_DEFAULT_KEYS = {"user", "shell", "env", "timeout", "queue", "shadow"}
_QUEUE_RE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


class _TomlText:
    """Finds the line of a ``[[handler]]`` entry or of one of its keys in the raw text."""

    def __init__(self, text: str, file: str) -> None:
        self.file = file
        self.lines = text.splitlines()
        self.headers = [
            i + 1 for i, ln in enumerate(self.lines) if re.match(r"\s*\[\[\s*handler\s*\]\]", ln)
        ]
        self.defaults = next(
            (i + 1 for i, ln in enumerate(self.lines) if re.match(r"\s*\[\s*defaults\s*\]", ln)),
            None,
        )

    def _span(self, start: int | None) -> range:
        if start is None:
            return range(0)
        stop = next(
            (i for i in range(start, len(self.lines)) if re.match(r"\s*\[", self.lines[i])),
            len(self.lines),
        )
        return range(start, stop)

    def locate(self, section: int | None, key: str | None) -> int | None:
        start = (
            self.defaults
            if section is None
            else (self.headers[section] if section < len(self.headers) else None)
        )
        if key is None:
            return start
        pattern = re.compile(rf"\s*[\"']?{re.escape(key)}[\"']?\s*[.=]")
        return next((i + 1 for i in self._span(start) if pattern.match(self.lines[i])), start)

    def top_level(self, key: str) -> int | None:
        pattern = re.compile(rf"\s*(\[+\s*)?[\"']?{re.escape(key)}[\"']?\s*[.=\]]")
        return next((i + 1 for i, ln in enumerate(self.lines) if pattern.match(ln)), None)

    def error(self, section: int | None, key: str | None, message: str) -> ParseError:
        line = self.locate(section, key)
        if line is None:
            path = "defaults" if section is None else f"handler[{section + 1}]"
            return ParseError(f"{path}{'.' + key if key else ''}: {message}", file=self.file)
        return ParseError(message, file=self.file, line=line)


def parse_handler_map(text: str, *, file: str = "handlers.toml") -> HandlerMap:
    """Validate a handler map (see the module docstring); ParseError located file:line."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"at line (\d+)", str(e))
        raise ParseError(f"bad TOML: {e}", file=file, line=int(m.group(1)) if m else None) from e
    where = _TomlText(text, file)
    unknown = sorted(set(doc) - {"version", "defaults", "handler"})
    if unknown:
        raise ParseError(
            f"unknown top-level key '{unknown[0]}' (version, defaults, handler)",
            file=file,
            line=where.top_level(unknown[0]),
        )
    if doc.get("version", 1) != 1:
        raise ParseError(
            f"handler map version {doc['version']!r} is not supported (1)",
            file=file,
            line=where.top_level("version"),
        )
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise where.error(None, None, "'defaults' must be a table")
    _check_keys(defaults, _DEFAULT_KEYS, where, None)
    entries = doc.get("handler", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ParseError("'handler' must be an array of tables ([[handler]])", file=file)
    rules = tuple(_rule(i, entry, defaults, where) for i, entry in enumerate(entries))
    return HandlerMap(file=file, rules=rules)


def load_handler_map(path: str | Path) -> HandlerMap:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ParseError(f"cannot read handler map: {e}", file=str(path)) from e
    return parse_handler_map(text, file=str(path))


def _check_keys(
    table: Mapping[str, Any], allowed: set[str], where: _TomlText, section: int | None
) -> None:
    for key in table:
        if key not in allowed:
            raise where.error(
                section, key, f"unknown key '{key}' (known: {', '.join(sorted(allowed))})"
            )


def _rule(
    index: int, entry: dict[str, Any], defaults: Mapping[str, Any], where: _TomlText
) -> HandlerRule:
    _check_keys(entry, _RULE_KEYS, where, index)
    merged = {**defaults, **entry}
    envs = [defaults.get("env", {}), entry.get("env", {})]
    if all(isinstance(e, dict) for e in envs):
        merged["env"] = {**envs[0], **envs[1]}
    get = _Getter(merged, where, index)
    command, target = get.text("command"), get.text("callable")
    if (command is None) == (target is None):
        raise where.error(index, None, "give exactly one of 'command' or 'callable'")
    if command is None and get.text("dry_run_command") is not None:
        raise where.error(index, "dry_run_command", "dry_run_command needs a command")
    if target is None and get.text("dry_run_callable") is not None:
        raise where.error(index, "dry_run_callable", "dry_run_callable needs a callable")
    for key in ("command", "dry_run_command"):
        get.template(key)
    for key in ("callable", "dry_run_callable"):
        get.matching(key, CALLABLE_RE, "'module:function'")
    line = where.locate(index, None)
    return HandlerRule(
        index=index,
        where=f"{where.file}:{line}" if line else f"{where.file} handler[{index + 1}]",
        job_class=get.required("job_class"),
        job=get.text("job"),
        match=get.pairs("match", None),
        command=command,
        dry_run_command=get.text("dry_run_command"),
        callable=target,
        dry_run_callable=get.text("dry_run_callable"),
        user=get.text("user"),
        shell=get.text("shell") or "/bin/sh",
        env=get.pairs("env", ENV_NAME_RE),
        timeout=get.positive("timeout"),
        queue=get.matching("queue", _QUEUE_RE, "letters, digits, '_.:-'") or "bridge",
        shadow=get.shadow(),
    )


class _Getter:
    """Typed, located access to one merged ``[[handler]]`` table."""

    def __init__(self, table: Mapping[str, Any], where: _TomlText, index: int) -> None:
        self.table, self.where, self.index = table, where, index

    def fail(self, key: str, message: str) -> ParseError:
        return self.where.error(self.index, key, message)

    def text(self, key: str) -> str | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"'{key}' must be a non-empty string")
        return value

    def required(self, key: str) -> str:
        value = self.text(key)
        if value is None:
            raise self.fail(key, f"'{key}' is required")
        return value

    def matching(self, key: str, pattern: re.Pattern[str], what: str) -> str | None:
        value = self.text(key)
        if value is not None and not pattern.fullmatch(value):
            raise self.fail(key, f"'{key}' {value!r} must be {what}")
        return value

    def template(self, key: str) -> None:
        value = self.text(key)
        if value is not None:
            try:
                _template_fields(value)
            except ValueError as e:
                raise self.fail(key, f"'{key}': {e}") from None

    def pairs(self, key: str, names: re.Pattern[str] | None) -> tuple[tuple[str, str], ...]:
        value = self.table.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self.fail(key, f"'{key}' must be a table of strings")
        bad = [k for k in value if names is not None and not names.fullmatch(k)]
        if bad:
            raise self.fail(key, f"'{key}': bad variable name '{bad[0]}'")
        return tuple(sorted(value.items()))

    def positive(self, key: str) -> int | None:
        value = self.table.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value <= 0
        ):
            raise self.fail(key, f"'{key}' must be a whole number of seconds > 0")
        return value

    def shadow(self) -> ShadowMode:
        value = self.table.get("shadow", "observe")
        modes = [m.value for m in ShadowMode]
        if value not in modes:
            raise self.fail("shadow", f"'shadow' must be one of {', '.join(modes)}")
        return ShadowMode(value)


_TEMPLATE_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def _template_fields(template: str) -> list[str]:
    """The ``{key}`` names of a template; ValueError for a lone or empty brace."""
    names = []
    for m in _TEMPLATE_TOKEN.finditer(template):
        token = m.group(0)
        if token in ("{{", "}}"):
            continue
        if token in ("{", "}") or not m.group(1).strip():
            raise ValueError(
                f"unbalanced or empty '{{}}' at offset {m.start()} "
                "(write {{ and }} for literal braces)"
            )
        names.append(m.group(1))
    return names


def _render(template: str, data: Mapping[str, str | None], quote: bool) -> str:
    """Fill ``{key}`` from ``data``; KeyError(key) when a key is missing or empty."""

    def fill(m: re.Match[str]) -> str:
        token = m.group(0)
        if token in ("{{", "}}"):
            return token[0]
        value = data.get(m.group(1))
        if value is None:
            raise KeyError(m.group(1))
        return shlex.quote(value) if quote else value

    return _TEMPLATE_TOKEN.sub(fill, template)


# ============================================================================ reading Quartz


@dataclass
class _Job:
    name: str
    group: str
    job_class: str | None
    description: str | None
    durable: bool
    recover: bool
    data: dict[str, str | None]
    node: _Node
    listener: str | None = None
    volatility: str | None = None

    @property
    def key(self) -> str:
        return f"{self.group}.{self.name}"


@dataclass
class _Trigger:
    element: str  # simple | cron | calendar-interval | date-interval
    name: str | None
    group: str
    job_name: str | None
    job_group: str
    node: _Node
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


def _data_map(node: _Node) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for jdm in node.kids("job-data-map"):
        for entry in jdm.kids("entry"):
            out[entry.value("key") or ""] = entry.value("value")
    return out


def _schedule_nodes(root: _Node, tag: str) -> Iterator[_Node]:
    for schedule in root.kids("schedule"):
        yield from schedule.kids(tag)


def _read_jobs(root: _Node) -> tuple[list[_Job], list[_Issue]]:
    jobs, issues = [], []
    for node in _schedule_nodes(root, "job"):
        name = node.value("name")
        if name is None:
            issues.append(_Issue(node.line, "job without a name (Quartz: 'Name cannot be null.')"))
            continue
        job = _Job(
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
            issues.append(_Issue(node.line, f"job {job.key} has no job-class"))
        jobs.append(job)
    return jobs, issues


def _read_triggers(root: _Node) -> list[_Trigger]:
    out = []
    for wrapper in _schedule_nodes(root, "trigger"):
        for node in wrapper.children:
            if node.ns != NS or node.tag not in _CHILD_TYPES["trigger"]:
                continue
            out.append(_Trigger(
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


def _directive(root: _Node, tag: str) -> tuple[bool | None, _Node | None]:
    """Quartz's ``getBoolean``: untrimmed text, true only for true/yes/y (any case)."""
    for directives in root.kids("processing-directives"):
        node = directives.first(tag)
        if node is not None:
            return node.string_value().lower() in ("true", "yes", "y"), node
    return None, None


def _notes(root: _Node, version: str) -> tuple[list[str], list[_Issue]]:
    notes, issues = [], []
    if version == "1.8":
        notes.append(_note_18(root))
    for pre in root.kids("pre-processing-commands"):
        for node in pre.children:
            note, issue = _pre_command(node)
            notes.extend([note] if note else [])
            issues.extend([issue] if issue else [])
    for tag in ("overwrite-existing-data", "ignore-duplicates"):
        value, directive = _directive(root, tag)
        if directive is not None:
            notes.append(_directive_note(tag, bool(value), directive))
    return notes, issues


def _directive_note(tag: str, value: bool, node: _Node) -> str:
    literal = node.string_value()
    note = f"line {node.line}: processing-directives {tag} = {str(value).lower()}"
    if (_collapsed(literal) in ("true", "1")) != value:
        note += f" (written {literal!r}: Quartz reads only true/yes/y as true)"
    return note


def _note_18(root: _Node) -> str:
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


def _pre_command(node: _Node) -> tuple[str | None, _Issue | None]:
    if node.ns != NS:
        return None, None
    if node.tag in ("delete-jobs-in-group", "delete-triggers-in-group"):
        group = node.string_value().strip(_WS)
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
            return None, _Issue(
                node.line, f"'{node.tag}' command without a name (Quartz refuses the file)"
            )
        key = f"{node.value('group') or DEFAULT_GROUP}.{name}"
        return f"line {node.line}: pre-processing {node.tag} {key}", None
    return None, None


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
    jobs: dict[str, _Job] = field(default_factory=dict)
    triggers_per_job: Counter[str] = field(default_factory=Counter)
    trigger_names: Counter[tuple[str, str]] = field(default_factory=Counter)
    duplicate_triggers: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class _Draft:
    """What one trigger became, before the final status is decided."""

    id: str | None
    details: dict[str, Any] = field(default_factory=dict)
    errors: list[_Issue] = field(default_factory=list)
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


def _trigger_id(t: _Trigger, ctx: _Context) -> str:
    if ctx.triggers_per_job[t.job_key] <= 1:
        return _sanitize(t.job_key)
    shared = ctx.trigger_names[(t.job_key, str(t.name))] > 1
    return _sanitize(f"{t.job_key}.{t.key if shared else t.name}")


def _times(t: _Trigger, ctx: _Context) -> tuple[datetime, datetime | None, str]:
    """(start, end, start_source) as Quartz sets them, in UTC; ValueError for bad values."""
    start_text, future = t.values["start-time"], t.values["start-time-seconds-in-future"]
    if future is not None:
        seconds = _java_int(future, 64)
        try:
            start = _ms(ctx.now) + timedelta(seconds=seconds)
        except OverflowError:
            raise ValueError(f"start-time-seconds-in-future {future} is too large") from None
        source = "seconds-in-future"
    elif start_text is not None:
        start, source = _datetime_value("start-time", start_text, ctx.zone), "file"
    else:
        start, source = _ms(ctx.now), "import-time"
    if t.kind == "cron":
        start = start.replace(microsecond=0)
    end_text = t.values["end-time"]
    end = _datetime_value("end-time", end_text, ctx.zone) if end_text else None
    if end is not None and end < start:
        what = "the import time (no start-time)" if source == "import-time" else "its start"
        raise ValueError(
            f"end-time {end_text} is before {what}: Quartz refuses the file "
            "('End time cannot be before start time')"
        )
    return start.astimezone(UTC), end, source


def _datetime_value(tag: str, text: str, zone: ZoneInfo) -> datetime:
    try:
        return _xs_datetime(_collapsed(text), zone)
    except _OutOfRange as e:
        raise ValueError(f"{tag} '{text}' is {e}") from None
    except ValueError as e:
        raise ValueError(f"{tag} '{text}' is not an xs:dateTime ({e})") from None


def _ms(t: datetime) -> datetime:
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def _cron_zone(t: _Trigger, ctx: _Context, draft: _Draft) -> str:
    tz_id = t.values["time-zone"]
    if tz_id is None:
        return ctx.zone_name
    draft.details["time_zone_quartz"] = tz_id
    try:
        return _zone_name(tz_id)
    except _Unsupported as e:
        draft.unsupported = str(e)
    except ValueError:
        message = (
            f"trigger {t.key}: unknown time-zone '{tz_id}': Quartz silently uses GMT for an "
            "id it does not know; write the zone you mean (e.g. America/New_York) or GMT"
        )
        draft.errors.append(_Issue(t.line("time-zone"), message, fatal=False))
    return ctx.zone_name


def _schedule(t: _Trigger, ctx: _Context, draft: _Draft) -> None:
    try:
        start, end, source = _times(t, ctx)
    except (ValueError, OverflowError) as e:
        draft.errors.append(_Issue(t.line("start-time"), f"trigger {t.key}: {e}"))
        return
    no_start = t.kind == "cron" and source == "import-time"
    draft.details["start_source"] = "none" if no_start else source
    try:
        if t.kind == "cron":
            draft.schedule = _cron_schedule(t, ctx, draft, start, end, source)
        elif t.kind == "simple":
            draft.schedule = _simple_schedule(t, ctx, start, end)
        else:
            draft.schedule = _calendar_schedule(t, ctx, start, end)
    except _TriggerProblem as e:
        draft.errors.append(_Issue(e.line, f"trigger {t.key}: {e.message}", e.fatal))
    except BridgeError as e:
        draft.errors.append(_Issue(t.node.line, f"trigger {t.key}: {e.message}"))


class _TriggerProblem(Exception):
    def __init__(self, line: int, message: str, fatal: bool = True) -> None:
        super().__init__(message)
        self.line, self.message, self.fatal = line, message, fatal


def _cron_schedule(
    t: _Trigger,
    ctx: _Context,
    draft: _Draft,
    start: datetime | None,
    end: datetime | None,
    source: str,
) -> ScheduleSpec | None:
    from bridge.schedules import compile_schedule
    from bridge.schedules import quartz as quartz_schedule

    expression = t.values["cron-expression"]
    line = t.line("cron-expression")
    if expression is None:
        raise _TriggerProblem(line, "cron trigger without a cron-expression")
    try:
        quartz_schedule.validate(expression)
    except ScheduleError as e:
        raise _TriggerProblem(line, f"cron-expression '{expression}': {e.message}") from e
    zone = _cron_zone(t, ctx, draft)
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
    t: _Trigger, ctx: _Context, start: datetime | None, end: datetime | None
) -> ScheduleSpec:
    count_text, interval_text = t.values["repeat-count"], t.values["repeat-interval"]
    try:
        count = _java_int(count_text, 32) if count_text else 0
        interval = _java_int(interval_text, 64) if interval_text else 0
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
        timezone=ctx.zone_name,
        start=start,
        end=end,
        interval_ms=interval,
        repeat_count=count,
    )


def _calendar_schedule(
    t: _Trigger, ctx: _Context, start: datetime | None, end: datetime | None
) -> ScheduleSpec:
    line = t.line("repeat-interval")
    unit = t.values["repeat-interval-unit"]
    if unit not in _ENUMS["interval-unit"]:
        raise _TriggerProblem(
            t.line("repeat-interval-unit"), f"unknown repeat-interval-unit {unit!r}"
        )
    try:
        interval = _java_int(t.values["repeat-interval"] or "", 32)
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
        timezone=ctx.zone_name,
        start=start,
        end=end,
        interval=interval,
        interval_unit=IntervalUnit(unit.lower()),
    )


def _misfire(t: _Trigger, draft: _Draft) -> MisfirePolicy:
    instruction = t.values["misfire-instruction"]
    draft.details["misfire"] = instruction or "MISFIRE_INSTRUCTION_SMART_POLICY"
    count = None
    if t.kind == "simple":
        count = draft.schedule.repeat_count if draft.schedule else 0
        count = -1 if count is None else count
    try:
        policy, note = misfire_policy(t.kind, instruction, count)
    except ValueError as e:
        draft.errors.append(_Issue(t.line("misfire-instruction"), f"trigger {t.key}: {e}"))
        return MisfirePolicy.FIRE_ONCE
    draft.details["misfire_policy"] = policy.value
    if note:
        draft.details["misfire_note"] = note
    return policy


def _handler(t: _Trigger, job: _Job, ctx: _Context, draft: _Draft, misfire: MisfirePolicy) -> None:
    data = {**job.data, **t.data}
    job_data = tuple((k, v or "") for k, v in job.data.items())
    unmapped = UnmappedHandler(job_class=job.job_class or "", job_data=job_data)
    draft.handler, draft.policies = unmapped, Policies(misfire=misfire)
    draft.details.update(handler=None, mapped=False)
    if ctx.handlers is None or job.job_class is None:
        return
    try:
        rule = ctx.handlers.select(job.job_class, job.key, data)
    except ValueError as e:
        draft.errors.append(_Issue(t.node.line, f"job {job.key}: {e}", fatal=False))
        return
    if rule is None:
        return
    try:
        draft.handler = _mapped_handler(rule, data)
    except KeyError as e:
        message = (
            f"job {job.key}: handler {rule.where} needs job-data-map key '{e.args[0]}', "
            "which the job does not define (or leaves empty)"
        )
        draft.errors.append(_Issue(t.node.line, message, fatal=False))
        return
    draft.policies = Policies(
        misfire=misfire, timeout_seconds=rule.timeout, queue=rule.queue, shadow_mode=rule.shadow
    )
    draft.details.update(handler=_handler_details(rule, draft.handler), mapped=True)


def _mapped_handler(rule: HandlerRule, data: Mapping[str, str | None]) -> Handler:
    if rule.command is not None:
        dry = rule.dry_run_command
        return CommandHandler(
            command=_render(rule.command, data, quote=True),
            user=rule.user,
            shell=rule.shell,
            env=rule.env,
            dry_run_command=_render(dry, data, quote=True) if dry else None,
        )
    assert rule.callable is not None
    return CallableHandler(
        target=rule.callable,
        kwargs=tuple(sorted(data.items())),
        dry_run_target=rule.dry_run_callable,
    )


def _handler_details(rule: HandlerRule, handler: Handler) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": handler.kind, "rule": rule.where, "shadow": rule.shadow.value}
    if isinstance(handler, CommandHandler):
        out.update(command=handler.command, user=handler.user)
    elif isinstance(handler, CallableHandler):
        out.update(target=handler.target)
    return out


def _raw(ctx: _Context, node: _Node) -> str:
    """The source lines of an element (capped at _RAW_MAX characters)."""
    first, last = max(node.line - 1, 0), max(node.end_line, node.line)
    lines = [ln[:_RAW_MAX] for ln in ctx.lines[first : min(last, first + 200)]]
    return "\n".join(lines).strip()[:_RAW_MAX]


def _draft_trigger(t: _Trigger, ctx: _Context) -> _Draft:
    if t.name is None or t.job_name is None:
        what = "a name" if t.name is None else "a job-name"
        return _Draft(
            id=None,
            errors=[
                _Issue(
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
            _Issue(
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


def _priority(t: _Trigger, draft: _Draft) -> int:
    text = t.values["priority"]
    try:
        return _java_int(text, 32) if text else 5
    except ValueError as e:
        draft.errors.append(_Issue(t.line("priority"), f"trigger {t.key}: priority {e}"))
        return 5


def _fill(t: _Trigger, job: _Job, ctx: _Context, draft: _Draft) -> None:
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
            _Issue(
                t.node.line,
                f"trigger {t.key} is defined more than once (lines {lines}); Quartz keeps only one",
                fatal=False,
            )
        )
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


def _finish(t: _Trigger, draft: _Draft, ctx: _Context) -> ImportItem:
    source = SourceLocation(
        file=ctx.file, line=t.node.line, raw=_raw(ctx, t.node), kind=SourceKind.QUARTZ_XML
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
            draft.errors.append(_Issue(t.node.line, f"trigger {t.key}: {e.message}", False))
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


def _job_items(jobs: list[_Job], ctx: _Context) -> tuple[list[ImportItem], list[_Issue]]:
    """Items and issues for jobs without a trigger in the file."""
    items, issues = [], []
    for job in jobs:
        if ctx.triggers_per_job[job.key]:
            continue
        if not job.durable:
            issues.append(
                _Issue(
                    job.node.line,
                    (
                        f"job {job.key} has no trigger and is not durable: Quartz refuses the file "
                        "('A new job defined without any triggers must be durable')"
                    ),
                )
            )
            continue
        source = SourceLocation(
            file=ctx.file, line=job.node.line, raw=_raw(ctx, job.node), kind=SourceKind.QUARTZ_XML
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


def _index_jobs(jobs: list[_Job], root: _Node) -> tuple[dict[str, _Job], list[_Issue]]:
    by_key: dict[str, _Job] = {}
    issues = []
    overwrite, _ = _directive(root, "overwrite-existing-data")
    ignore, _ = _directive(root, "ignore-duplicates")
    refuses = overwrite is False and not ignore
    for job in jobs:
        first = by_key.get(job.key)
        if first is not None:
            issues.append(
                _Issue(
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


def _deactivate(items: list[ImportItem], fatal: _Issue) -> list[ImportItem]:
    reason = (
        f"Quartz 2.3.2 refuses this whole file (line {fatal.line}: {fatal.message}): "
        "none of its jobs is scheduled today"
    )
    return [
        replace(i, status=ItemStatus.INACTIVE, reason=reason) if i.status is ItemStatus.OK else i
        for i in items
    ]


def _root_problem(root: _Node) -> str | None:
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
) -> ParseResult:
    """Read one job_scheduling_data document (see the module docstring). Never raises for bad
    input; raises ScheduleError for a bad ``default_timezone``, ValueError for a naive ``now``."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    zone = _default_zone(default_timezone)
    try:
        root = _read_tree(data)
    except ParseError as e:
        line = e.line if e.line is not None else 1
        return ParseResult(file=file, errors=(ImportError_(file, line, e.message),))
    problem = _root_problem(root)
    if problem:
        return ParseResult(file=file, errors=(ImportError_(file, root.line, problem),))
    version = "1.8" if root.attrs.get((None, "version"), "").strip(_WS) == "1.8" else "2.0"
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


def _import(root: _Node, ctx: _Context) -> ParseResult:
    issues = _validate(root, ctx.version)
    notes, pre_issues = _notes(root, ctx.version)
    jobs, job_issues = _read_jobs(root)
    ctx.jobs, dup_issues = _index_jobs(jobs, root)
    triggers = _read_triggers(root)
    _count_triggers(triggers, ctx)
    drafts = [(t, _draft_trigger(t, ctx)) for t in triggers]
    items = [_finish(t, d, ctx) for t, d in drafts]
    job_items, orphan_issues = _job_items(list(ctx.jobs.values()), ctx)
    issues += [*pre_issues, *job_issues, *dup_issues, *orphan_issues]
    issues += [i for _, d in drafts for i in d.errors]
    items = _dedupe_ids(items + job_items)
    fatal = sorted((i for i in issues if i.fatal), key=lambda i: i.line or 0)
    if fatal:
        items = _deactivate(items, fatal[0])
    unique = sorted(
        {(i.line or 0, i.message): i for i in issues}.values(),
        key=lambda i: (i.line or 0, i.message),
    )
    return ParseResult(
        file=ctx.file,
        items=tuple(items),
        errors=tuple(ImportError_(ctx.file, i.line or 1, i.message) for i in unique),
        notes=tuple(notes + _phase_notes(items)),
    )


def _count_triggers(triggers: list[_Trigger], ctx: _Context) -> None:
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
) -> ParseResult:
    """Read ``path`` and parse it; ParseError when the file cannot be read."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ParseError(f"cannot read Quartz XML: {e.strerror or e}", file=str(path)) from e
    return parse_quartz_xml(
        data, file=str(path), handlers=handlers, now=now, default_timezone=default_timezone
    )
