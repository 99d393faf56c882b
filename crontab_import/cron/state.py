"""What the parser of one crontab file carries from line to line.

The environment set so far, cronie's ``CRON_TZ``, the ``# bridge:`` directives waiting for the
next job line, the job ordinal, the items, errors and notes, and the first line Debian rejects
(which makes cron ignore the whole file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge.core.spec import Policies, ScheduleSpec
from crontab_import.cron.kinds import FileOptions
from crontab_import.model import ImportError_, ImportItem


@dataclass
class Pending:
    """Directives seen in the run of comment lines above the next job line."""

    id: str | None = None
    id_line: int | None = None
    name: str | None = None
    first_line: int | None = None
    policies: dict[str, Any] = field(default_factory=dict)  # Policies field -> value


@dataclass
class ParseState:
    opts: FileOptions
    env: dict[str, str] = field(default_factory=dict)
    zone: str | None = None  # cronie CRON_TZ; None = host zone
    bad_zone: tuple[str, int] | None = None  # cronie: unknown CRON_TZ value and its line
    random_delay: tuple[int, int] | None = None  # cronie: RANDOM_DELAY minutes and its line
    pending: Pending = field(default_factory=Pending)
    ordinal: int = 0
    items: list[ImportItem] = field(default_factory=list)
    errors: list[ImportError_] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    invalid_line: int | None = None  # first line Debian rejects
    override_lines: dict[int, int] = field(default_factory=dict)  # job line -> directive line
    bridge_job: str | None = None  # from a BRIDGE_JOB= line inserted by `bridge legacy rewrite`
    claimed_policies: dict[str, Any] = field(default_factory=dict)  # directives of the last job
    # Values many job lines share, built once per file (a big crontab repeats a few schedules
    # and one environment): equal immutable values, one object each.
    _env_items: tuple[tuple[str, str], ...] | None = None
    _schedules: dict[tuple[str, str], ScheduleSpec] = field(default_factory=dict)
    _policies: dict[tuple[tuple[str, Any], ...], Policies] = field(default_factory=dict)
    _details: dict[tuple[str | None, int | None], dict[str, Any]] = field(default_factory=dict)

    def error(self, line: int | None, message: str, *, debian_rejects: bool) -> None:
        self.errors.append(ImportError_(self.opts.file, line, message))
        if debian_rejects and line is not None and self.invalid_line is None:
            self.invalid_line = line

    def note(self, line: int | None, message: str) -> None:
        where = f"{self.opts.file}:{line}" if line is not None else self.opts.file
        self.notes.append(f"{where}: {message}")

    def set_env(self, name: str, value: str) -> None:
        self.env[name] = value
        self._env_items = None

    def env_items(self) -> tuple[tuple[str, str], ...]:
        """The environment so far, in order of first setting (one tuple until it changes)."""
        if self._env_items is None:
            self._env_items = tuple(self.env.items())
        return self._env_items

    def schedule(self, expression: str) -> ScheduleSpec:
        """The schedule of a job line below the current ``CRON_TZ`` (shared by equal lines)."""
        zone = self.zone or self.opts.timezone
        spec = self._schedules.get((zone, expression))
        if spec is None:
            spec = ScheduleSpec(dialect=self.opts.dialect, timezone=zone, expression=expression)
            self._schedules[(zone, expression)] = spec
        return spec

    def policies(self) -> Policies:
        """The policies the directives above the current job line set (shared when equal)."""
        key = tuple(sorted(self.claimed_policies.items()))
        found = self._policies.get(key)
        if found is None:
            found = self._policies[key] = Policies(**self.claimed_policies)
        return found

    def details(self, user: str | None, id_line: int | None) -> dict[str, Any]:
        """An item's ``details`` (read-only: items with the same values share one dict)."""
        found = self._details.get((user, id_line))
        if found is None:
            found = {"user": user, "dialect": self.opts.dialect.value, "kind": self.opts.kind.value}
            if id_line is not None:
                found["id_line"] = id_line
            self._details[(user, id_line)] = found
        return found

    def end_directive_run(self) -> None:
        """A line that is no comment ends the run of comments above a job: a directive there
        is directly above no job (noted, ignored)."""
        p = self.pending
        if p.id is not None or p.name is not None or p.policies:
            self.note(p.first_line, "directive is not directly above a job line (ignored)")
        self.pending = Pending()
