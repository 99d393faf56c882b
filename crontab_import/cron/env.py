"""Environment lines (``NAME = value``), read with Debian cron's ``load_env`` rules.

See docs/debian-cron-rules.md ("Lines", "Environment of a job"). Lines ``bridge legacy
rewrite`` inserted (``BRIDGE_JOB``, ``BRIDGE_SHELL``, ``SHELL=.../bridge-cron-shell``) are
transparent; cronie's ``CRON_TZ`` sets the zone of the job lines below it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bridge.core.spec import ENV_NAME_RE, Dialect
from crontab_import import cronie
from crontab_import.cron.kinds import known_zone
from crontab_import.cron.lines import BLANKS, C_SPACE, Line
from crontab_import.cron.state import ParseState

MAX_ENV_LINE_BYTES = 998  # Debian reads only this much of an environment line


@dataclass(frozen=True)
class EnvSetting:
    name: str
    value: str
    truncated: bool = False


@dataclass(frozen=True)
class EnvFailure:
    reached_equals: bool  # a name and '=' were read: report it as a bad environment line
    reason: str


_NOT_ENV = EnvFailure(False, "not an environment line")


def parse_env_line(text: str) -> EnvSetting | EnvFailure:
    """Debian cron's ``load_env`` on one line (without its newline)."""
    if "=" not in text:
        return _NOT_ENV  # a setting needs its '=' (most job lines have none)
    body = text.lstrip(BLANKS)
    raw = body.encode("utf-8", errors="surrogatepass")
    truncated = len(raw) > MAX_ENV_LINE_BYTES
    if truncated:
        body = raw[:MAX_ENV_LINE_BYTES].decode("utf-8", errors="ignore")
    name, pos = _env_name(body)
    if name is None:
        return _NOT_ENV
    result = _env_value(body, pos)
    if isinstance(result, EnvFailure):
        cut = f"; cron reads only the first {MAX_ENV_LINE_BYTES} bytes of the line"
        return replace(result, reason=result.reason + cut) if truncated else result
    return EnvSetting(name, result.rstrip(C_SPACE), truncated)


def _env_name(body: str) -> tuple[str | None, int]:
    """The name and the index just past '=' (None when the line is not NAME = ...)."""
    i, quote = 0, ""
    if body[:1] in ("'", '"'):
        quote, i = body[0], 1
    start = i
    while i < len(body):
        c = body[i]
        if quote and c == quote:
            name, i = body[start:i], i + 1
            break
        if quote and c == "=":
            return None, 0
        if not quote and (c in C_SPACE or c == "="):
            name = body[start:i]
            break
        i += 1
    else:
        return None, 0
    while i < len(body) and body[i] in C_SPACE:
        i += 1
    if i >= len(body) or body[i] != "=":
        return None, 0
    return name, i + 1


def _env_value(body: str, i: int) -> str | EnvFailure:
    while i < len(body) and body[i] in C_SPACE:
        i += 1
    if i >= len(body):
        return EnvFailure(True, 'empty value; write NAME="" for an empty value')
    if body[i] not in ("'", '"'):
        return body[i:]
    quote = body[i]
    end = body.find(quote, i + 1)
    if end < 0:
        return EnvFailure(True, f"unterminated {quote} quote")
    if body[end + 1 :].strip(C_SPACE):
        return EnvFailure(True, "text after the closing quote")
    return body[i + 1 : end]


SHIM_NAME = "bridge-cron-shell"


def _bridge_line(state: ParseState, env: EnvSetting) -> bool:
    """Lines `bridge legacy rewrite` inserted are transparent: they name the job (BRIDGE_JOB)
    and route it through the shim (BRIDGE_SHELL, SHELL=.../bridge-cron-shell) but are not part
    of the job's own environment, so a rewritten file re-imports unchanged."""
    if env.name == "BRIDGE_JOB":
        state.bridge_job = env.value or None
        return True
    return env.name == "BRIDGE_SHELL" or (
        env.name == "SHELL" and env.value.rsplit("/", 1)[-1] == SHIM_NAME
    )


def env_line(state: ParseState, line: Line, env: EnvSetting) -> None:
    state.end_directive_run()
    if _bridge_line(state, env):
        return
    if env.truncated:
        state.note(
            line.number,
            f"environment line longer than {MAX_ENV_LINE_BYTES} bytes: "
            f"cron keeps only its first {MAX_ENV_LINE_BYTES} bytes ({env.name} is cut)",
        )
    if not ENV_NAME_RE.match(env.name):
        state.note(
            line.number,
            f"environment variable name '{env.name}' cannot be passed to "
            "a shell; it is left out of the jobs' environment",
        )
    else:
        state.set_env(env.name, env.value)
    if env.name == "RANDOM_DELAY" and state.opts.dialect is Dialect.CRONIE:
        minutes = cronie.random_delay(env.value)
        state.random_delay = (minutes, line.number) if minutes else None
    if env.name == "CRON_TZ":
        _cron_tz(state, line.number, env.value)
    elif env.name == "TZ":
        state.note(line.number, "TZ only changes the commands' environment, not when jobs run")


def _cron_tz(state: ParseState, number: int, value: str) -> None:
    if state.opts.dialect is Dialect.VIXIE:
        state.note(
            number,
            f"CRON_TZ has no effect in Debian cron (vixie dialect): jobs run in "
            f"{state.opts.timezone}; use the cronie dialect for RHEL-family hosts",
        )
        return
    state.zone, state.bad_zone = None, None
    if not value:
        return
    if known_zone(value):
        state.zone = value
    else:
        state.bad_zone = (value, number)
        state.error(number, f"unknown timezone in CRON_TZ '{value}'", debian_rejects=True)
