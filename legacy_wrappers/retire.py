"""``bridge legacy retire``: comment out the crontab lines of jobs Celery now runs for good.

Pure: text in, text out. A job line is retired by prefixing it with
``# bridge-retired YYYY-MM-DD <job-id>: `` (the rest of the line, ``\\r`` included, stays
byte-for-byte); :func:`restore` removes exactly that prefix again. Every other line, and the
line ends, are untouched: ``restore(retire(text)) == text``.

Which jobs may be retired is decided by :func:`eligibility` from values the caller reads:
Celery must have owned the job for the whole stable period (the last flip is to Celery,
effective at least ``stable_days`` ago), with no unresolved shadow verdict and no failed
Celery run in that period.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from bridge.core.authority import AuthorityEvent, Owner, last_flip, owner_at
from bridge.core.hosts import qualify
from bridge.core.spec import Dialect
from crontab_import.crontab import parse_crontab
from crontab_import.model import ItemStatus

PREFIX = "# bridge-retired"
RETIRED_RE = re.compile(r"^# bridge-retired (\d{4}-\d{2}-\d{2}) ([^\s:]+): ")
FAILED_STATUSES = frozenset({"failed", "interrupted", "timed_out"})


@dataclass(frozen=True)
class Eligibility:
    job_id: str
    eligible: bool
    reason: str  # why not (or "stable since <slot>")
    since: datetime | None = None  # the flip to Celery


@dataclass(frozen=True)
class RetireResult:
    text: str
    retired: tuple[tuple[str, int], ...]  # (job id, 1-based line)


def retired_prefix(day: date, job_id: str) -> str:
    return f"{PREFIX} {day.isoformat()} {job_id}: "


def job_lines(
    text: str, *, file: str, timezone: str = "UTC", kind: str | None = None,
    user: str | None = None, dialect: Dialect = Dialect.VIXIE, host: str | None = None,
) -> dict[str, int]:
    """Job id -> 1-based line number of every active job line of a crontab (rewritten or not:
    the shim's inserted lines are transparent to the parser). Ids are computed on the file with
    its retired lines restored (line numbers do not change), so already retired lines keep
    their ordinals and never shift the ids of the lines after them; retired jobs are left out.
    ``dialect``: the host's cron; ``host``: ids are the fleet's ``<host>.<id>``.
    """
    undone = restore(text)
    retired = {job_id for job_id, _ in undone.retired}
    parsed = parse_crontab(undone.text, file=file, timezone=timezone, kind=kind, user=user,
                           dialect=dialect)
    return {
        (qualify(host, item.id) if host else item.id): item.source.line
        for item in parsed.items
        if item.id and item.source.line is not None and item.status is not ItemStatus.DISABLED
        and item.job is not None and (qualify(host, item.id) if host else item.id) not in retired
    }


def retire(text: str, lines: Mapping[str, int], day: date) -> RetireResult:
    """Comment out ``lines`` (job id -> line number) of ``text``."""
    by_line = {number: job_id for job_id, number in lines.items()}
    out = []
    for number, line in enumerate(text.split("\n"), 1):
        job_id = by_line.get(number)
        out.append(retired_prefix(day, job_id) + line if job_id else line)
    return RetireResult("\n".join(out), tuple(sorted(lines.items(), key=lambda kv: kv[1])))


def restore(text: str, job_ids: Iterable[str] | None = None) -> RetireResult:
    """Undo :func:`retire` for ``job_ids`` (default: every retired line)."""
    wanted = None if job_ids is None else set(job_ids)
    out: list[str] = []
    restored: list[tuple[str, int]] = []
    for number, line in enumerate(text.split("\n"), 1):
        m = RETIRED_RE.match(line)
        if m and (wanted is None or m.group(2) in wanted):
            out.append(line[m.end():])
            restored.append((m.group(2), number))
        else:
            out.append(line)
    return RetireResult("\n".join(out), tuple(restored))


def eligibility(
    job_id: str,
    history: Sequence[AuthorityEvent],
    *,
    now: datetime,
    stable: timedelta,
    unresolved: Sequence[datetime] = (),
    failures: Sequence[datetime] = (),
) -> Eligibility:
    """May ``job_id``'s legacy line be retired? ``unresolved`` and ``failures`` are the slots
    of unresolved verdicts and failed Celery runs since the flip (the caller reads them)."""
    flip = last_flip(history)
    if owner_at(history, now) is not Owner.CELERY or flip is None or flip.owner is not Owner.CELERY:
        return Eligibility(job_id, False, "Celery does not own the job")
    since = flip.effective_slot
    assert since is not None
    if since > now - stable:
        return Eligibility(job_id, False, f"Celery owns it only since {since.isoformat()}, "
                           f"less than {stable.days} day(s)", since)
    if unresolved:
        return Eligibility(job_id, False, f"{len(unresolved)} unresolved shadow verdict(s) since "
                           f"the flip (newest at {max(unresolved).isoformat()})", since)
    if failures:
        return Eligibility(job_id, False, f"{len(failures)} failed Celery run(s) since the flip "
                           f"(newest at {max(failures).isoformat()})", since)
    return Eligibility(job_id, True, f"stable since {since.isoformat()}", since)
