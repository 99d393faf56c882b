"""The Quartz handler map: which bridge handler runs each Quartz ``job-class`` (TOML).

``parse_handler_map(text)`` / ``load_handler_map(path)`` read it into a :class:`HandlerMap`;
``HandlerMap.select`` picks the rule for a job and ``build_handler`` fills its placeholders.

Format
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
      group = "billing"                 # optional job group (letters, digits, '_.:-')
      max_concurrency = 2               # optional, needs group: runs of the group at once

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

import re
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.core.errors import ParseError
from bridge.core.spec import (
    CALLABLE_RE,
    ENV_NAME_RE,
    CallableHandler,
    CommandHandler,
    Handler,
    ShadowMode,
)

__all__ = [
    "HandlerMap",
    "HandlerRule",
    "build_handler",
    "handler_details",
    "load_handler_map",
    "parse_handler_map",
]


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
    group: str | None = None
    max_concurrency: int | None = None

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
    "user", "shell", "env", "timeout", "queue", "shadow", "group", "max_concurrency",
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
    group = get.matching("group", _QUEUE_RE, "letters, digits, '_.:-'")
    limit = get.count("max_concurrency")
    if limit is not None and group is None:
        raise where.error(index, "max_concurrency", "max_concurrency needs a group")
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
        group=group,
        max_concurrency=limit,
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

    def count(self, key: str) -> int | None:
        value = self.table.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise self.fail(key, f"'{key}' must be a whole number >= 1")
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


def build_handler(rule: HandlerRule, data: Mapping[str, str | None]) -> Handler:
    """The handler ``rule`` makes for a job whose merged job-data-map is ``data``; KeyError(key)
    when a ``{key}`` of its command is missing or empty."""
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


def handler_details(rule: HandlerRule, handler: Handler) -> dict[str, Any]:
    """What an import item's ``details["handler"]`` says about a mapped handler."""
    out: dict[str, Any] = {"kind": handler.kind, "rule": rule.where, "shadow": rule.shadow.value}
    if isinstance(handler, CommandHandler):
        out.update(command=handler.command, user=handler.user)
    elif isinstance(handler, CallableHandler):
        out.update(target=handler.target)
    return out
