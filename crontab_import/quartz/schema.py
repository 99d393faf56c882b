"""The ``job_scheduling_data`` schema rules (2.0 and 1.8) Quartz checks before reading anything.

``validate_schema(root, version)`` lists every way a :class:`~crontab_import.quartz.tree.Node`
tree breaks the schema, as :class:`~crontab_import.quartz.tree.Issue` records located by line.

Schema rules
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
from datetime import UTC

from crontab_import.quartz.tree import NS, WS, XSI_NS, Issue, Node
from crontab_import.quartz.values import INT_RE, OutOfRange, collapsed, xs_datetime


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

_NNI_RE = re.compile(r"\+?[0-9]+|-0+")


def _check_simple_value(kind: str, text: str, version: str) -> str | None:
    """Why ``text`` is not a valid value of schema type ``kind`` (None when it is)."""
    value = collapsed(text)
    if kind == "boolean" and value not in ("true", "false", "1", "0"):
        return f"{text!r} is not an xs:boolean (true, false, 1 or 0)"
    if kind == "nni" and not _NNI_RE.fullmatch(value):
        return f"{text!r} is not a non-negative integer"
    if kind == "repeat-count" and not (INT_RE.fullmatch(value) and int(value) >= -1):
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
