"""Quartz ``job_scheduling_data`` XML (2.0 and 1.8): a safe, line-tracked reader and the schema.

``read_tree(data)`` parses a document into a :class:`Node` tree; ``validate_schema(root,
version)`` lists every way it breaks the ``job_scheduling_data`` schema, as :class:`Issue` records
located by line. ``xs_datetime`` and ``java_int`` read values the way Quartz's Java code does.
The importer (``crontab_import.quartz``) builds on these.

Reading the XML
  Only through defusedxml's SAX driver: a DOCTYPE (hence every entity declaration: billion
  laughs, XXE) is refused at once, as Quartz itself refuses it. Elements nested deeper than
  ``MAX_DEPTH`` are refused too (Quartz documents are six levels deep). Each element keeps the
  line where its start tag begins; errors and ``SourceLocation.line`` use it.

Schema rules (what Quartz 2.3.2 checks before reading anything)
  The document is validated against ``job_scheduling_data_2_0.xsd`` and **any** schema error
  makes Quartz reject the whole file: element order, an unknown element, text where only
  elements go, ``TRUE`` for a boolean, a ``cron-expression`` or ``misfire-instruction`` with
  blanks around it, lower-case day names, two blanks between cron fields (the schema's cron
  pattern). The same rules are checked here, located. ``MISFIRE_INSTRUCTION_
  IGNORE_MISFIRE_POLICY`` cannot be written in a job XML (schema and reader reject it).

  A Quartz 1.8 file (``version="1.8"`` on the root, same namespace) is checked with the 1.8
  schema rules instead: ``job-listener-ref``, ``volatility``, ``date-interval``; no
  ``priority``, ``calendar-interval`` or ``start-time-seconds-in-future``; a stricter cron
  pattern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from io import BytesIO
from typing import Any
from xml.sax import SAXParseException
from xml.sax.handler import ContentHandler
from xml.sax.xmlreader import InputSource
from zoneinfo import ZoneInfo

from defusedxml.common import DefusedXmlException, DTDForbidden
from defusedxml.expatreader import DefusedExpatParser

from bridge.core.errors import InputError, ParseError

__all__ = [
    "CRON_MISFIRES",
    "CRON_SCHEMA_PATTERNS",
    "INTERVAL_UNITS",
    "MAX_DEPTH",
    "NS",
    "SIMPLE_MISFIRES",
    "TRIGGER_ELEMENTS",
    "WS",
    "XSI_NS",
    "Issue",
    "Node",
    "OutOfRange",
    "collapsed",
    "java_int",
    "read_tree",
    "validate_schema",
    "xs_datetime",
]

NS = "http://www.quartz-scheduler.org/xml/JobSchedulingData"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
MAX_DEPTH = 32
WS = " \t\n\r"  # XML white space

# ============================================================================ XML tree (SAX)


@dataclass
class Node:
    tag: str
    ns: str
    line: int
    attrs: dict[tuple[str | None, str], str] = field(default_factory=dict)
    parts: list[Node | str] = field(default_factory=list)  # text and children, in order
    end_line: int = 0

    @property
    def children(self) -> list[Node]:
        return [p for p in self.parts if isinstance(p, Node)]

    @property
    def text(self) -> str:
        """The element's own text (not its descendants')."""
        return "".join(p for p in self.parts if isinstance(p, str))

    def kids(self, tag: str) -> list[Node]:
        return [c for c in self.children if c.ns == NS and c.tag == tag]

    def first(self, tag: str) -> Node | None:
        found = self.kids(tag)
        return found[0] if found else None

    def line_of(self, tag: str) -> int:
        node = self.first(tag)
        return node.line if node else self.line

    def string_value(self) -> str:
        """XPath string value: the text of the element and all its descendants, in order."""
        out: list[str] = []
        stack: list[Node | str] = [self]
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
        text = node.string_value().strip(WS) if node else ""
        return text or None


class _TreeBuilder(ContentHandler):
    def __init__(self, max_triggers: int | None = None) -> None:
        super().__init__()
        self.root: Node | None = None
        self._stack: list[Node] = []
        self._locator: Any = None
        self._max_triggers = max_triggers
        self._triggers = 0

    def setDocumentLocator(self, locator: Any) -> None:
        self._locator = locator

    def _line(self) -> int:
        return int(self._locator.getLineNumber() or 0) if self._locator else 0

    def startElementNS(self, name: Any, qname: Any, attrs: Any) -> None:
        if len(self._stack) >= MAX_DEPTH:
            raise ParseError(f"elements nested deeper than {MAX_DEPTH} levels", line=self._line())
        ns, local = name
        if local == "trigger" and self._max_triggers is not None:
            self._triggers += 1
            if self._triggers > self._max_triggers:
                raise InputError(
                    f"more than {self._max_triggers} triggers: refused while reading",
                    line=self._line(),
                    hint="raise --max-jobs if this is intended",
                )
        node = Node(tag=local, ns=ns or "", line=self._line(), attrs=dict(attrs.items()))
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


def read_tree(data: bytes, *, max_triggers: int | None = None) -> Node:
    """Parse with defusedxml (no DTD, no entities, no external references) into a Node tree.

    ``max_triggers``: an :class:`InputError` (not a ParseError: the import stops) as soon as
    the document's ``trigger`` elements exceed it, before the rest is read."""
    builder = _TreeBuilder(max_triggers)
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
class Issue:
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
TRIGGER_ELEMENTS = tuple(_CHILD_TYPES["trigger"])  # the elements a <trigger> may wrap

CRON_MISFIRES = ("SMART_POLICY", "DO_NOTHING", "FIRE_ONCE_NOW")
SIMPLE_MISFIRES = (
    "SMART_POLICY",
    "RESCHEDULE_NEXT_WITH_EXISTING_COUNT",
    "RESCHEDULE_NEXT_WITH_REMAINING_COUNT",
    "RESCHEDULE_NOW_WITH_EXISTING_REPEAT_COUNT",
    "RESCHEDULE_NOW_WITH_REMAINING_REPEAT_COUNT",
    "FIRE_NOW",
)
INTERVAL_UNITS = ("DAY", "HOUR", "MINUTE", "MONTH", "SECOND", "WEEK", "YEAR")
_ENUMS = {
    "cron-misfire": tuple(f"MISFIRE_INSTRUCTION_{m}" for m in CRON_MISFIRES),
    "calendar-misfire": tuple(f"MISFIRE_INSTRUCTION_{m}" for m in CRON_MISFIRES),
    "simple-misfire": tuple(f"MISFIRE_INSTRUCTION_{m}" for m in SIMPLE_MISFIRES),
    "interval-unit": INTERVAL_UNITS,
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


def collapsed(text: str) -> str:
    return " ".join(part for part in re.split(r"[ \t\n\r]+", text) if part)


def _check_simple_value(kind: str, text: str, version: str) -> str | None:
    """Why ``text`` is not a valid value of schema type ``kind`` (None when it is)."""
    value = collapsed(text)
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
        if text.strip(WS) == "MISFIRE_INSTRUCTION_IGNORE_MISFIRE_POLICY":
            return "MISFIRE_INSTRUCTION_IGNORE_MISFIRE_POLICY cannot be written in a job XML"
        return f"{text!r} is not one of {', '.join(_ENUMS[kind])} (exact spelling, no blanks)"
    return None


class OutOfRange(ValueError):
    """A valid xs:dateTime Python's datetime cannot hold."""


def _datetime_problem(value: str, text: str) -> str | None:
    try:
        xs_datetime(value, UTC)
    except OutOfRange:
        return None
    except ValueError as e:
        return f"{text!r} is not an xs:dateTime ({e})"
    return None


def validate_schema(root: Node, version: str) -> list[Issue]:
    """Every schema violation of the tree (iterative: depth is bounded by MAX_DEPTH anyway)."""
    issues: list[Issue] = []
    stack: list[tuple[Node, str]] = [(root, "root")]
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


def _check_attributes(node: Node, is_root: bool) -> list[Issue]:
    bad = [
        local
        for (ns, local) in node.attrs
        if ns != XSI_NS and not (is_root and ns is None and local == "version")
    ]
    return [Issue(node.line, f"attribute '{a}' is not allowed on <{node.tag}>") for a in bad]


def _check_complex(node: Node, kind: str, version: str) -> list[Issue]:
    issues = []
    text = node.text.strip(WS)
    if text:
        issues.append(
            Issue(node.line, f"<{node.tag}> may only contain elements, not text {_short(text)!r}")
        )
    notation, pattern = _MODELS[version][kind]
    vocabulary = set(re.findall(r"[a-z][a-z0-9-]*", notation))
    strangers = [c for c in node.children if c.ns != NS or c.tag not in vocabulary]
    for child in strangers:
        where = "" if child.ns == NS else f" (namespace {child.ns or 'none'})"
        issues.append(
            Issue(
                child.line,
                f"<{child.tag}>{where} is not allowed in <{node.tag}> "
                f"(job_scheduling_data {version})",
            )
        )
    tokens = "".join(f"{c.tag} " for c in node.children)
    if not strangers and not pattern.fullmatch(tokens):
        found = ", ".join(c.tag for c in node.children) or "nothing"
        issues.append(
            Issue(
                node.line,
                f"<{node.tag}> content is out of order or incomplete: "
                f"expected {notation}; found {found}",
            )
        )
    return issues


def _check_simple(node: Node, kind: str, version: str) -> list[Issue]:
    if node.children:
        return [Issue(node.line, f"<{node.tag}> may not contain elements")]
    problem = _check_simple_value(kind, node.text, version)
    return [Issue(node.line, f"<{node.tag}>: {problem}")] if problem else []


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ================================================================ values, as Java reads them


def xs_datetime(value: str, default_zone: ZoneInfo | timezone) -> datetime:
    """An ``xs:dateTime`` as Java's DatatypeConverter reads it (local times: default zone), in
    UTC; ValueError when it is not one (or not representable)."""
    m = _DATETIME_RE.fullmatch(value)
    if not m:
        raise ValueError("expected YYYY-MM-DDThh:mm:ss[.fff][Z|+hh:mm]")
    sign, year_s, mo, d, h, mi, s, frac, tz = m.groups()
    if sign or year_s == "0000" or (len(year_s) > 4 and year_s[0] == "0"):
        raise ValueError(f"year {sign}{year_s} is not an XML Schema year")
    if int(year_s) > 9999:
        raise OutOfRange("outside the years 0001..9999 (UTC) the bridge supports")
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
        raise OutOfRange("outside the years 0001..9999 (UTC) the bridge supports") from None


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


def java_int(text: str, bits: int) -> int:
    """``Integer.parseInt``/``Long.parseLong``: ASCII digits, optional sign, bounded."""
    if not _INT_RE.fullmatch(text):
        raise ValueError(f"'{text}' is not a number")
    value = int(text)
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise ValueError(f"'{text}' does not fit a Java {'int' if bits == 32 else 'long'}")
    return value
