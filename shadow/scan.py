"""The report's fast path: find the slots that trivially match without building observations.

A report over a large window judges millions of slots, nearly all of them the same story: one
execution per path, the same outcome, both on time. :func:`scan` recognises that story on plain
row tuples (:data:`CompactRow`, selected by :func:`compact_rows` with SQL-side conversions:
the slot as a key comparable to the schedule's slots, a code for path/role/status, the fire
lag in seconds), so a *quiet* slot costs a few integer comparisons. Every other slot is
*loud*: its records are fetched in full by row id and judged by :mod:`shadow.compare` exactly
as :func:`~shadow.compare.compare_job` would.

A slot is quiet when it is an expected slot and has exactly two records, one per path, with
legacy an authoritative/shadow execution that finished (not ``running``), and Celery either
such an execution (not both ``authoritative``; exit statuses equal, or succeeded-vs-not equal
when either lacks one, when ``exit_status`` is compared; output digests equal or absent when
``output_digest`` is compared) or an ``observe`` record; and both fire lags (when known) lie
within the tolerance minus :data:`LAG_MARGIN` (the database's lag arithmetic may be off by a
millisecond; a lag near the tolerance is left to the general path). That is a subset of the
cases :func:`shadow.judge.quick_match` answers ``match``, so a quiet slot's verdict is ``match``
(never ignored: rules only explain mismatches). The tests hold the two paths equal.

:func:`prepare` scans a job's rows, :func:`finish` judges its loud slots from their full records:
together they give the job's verdicts without its quiet matches, except the newest
``keep_tail`` ones (a report's readiness and timeline look at the newest slots in full).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.core.authority import AuthorityEvent
from bridge.core.runs import Path, RunRecord
from bridge.core.spec import JobSpec
from bridge.store.run_scan import CELERY, CompactRow
from shadow.compare import (
    before_import_verdict,
    context_for,
    judge_records,
    unexpected_verdict,
)
from shadow.ignore import apply_ignore, parse_ignore
from shadow.verdicts import SlotVerdict

LAG_MARGIN = 0.01  # seconds: lags closer than this to the tolerance go the general way
LOUD, TIMING, SAME_SUCCESS, OTHER_SUCCESS = 0, 1, 2, 3  # what a pair of codes needs


def _pair_table() -> tuple[int, ...]:
    """Pair (sum of two codes) -> how :func:`shadow.judge.quick_match` would judge it."""
    table = [LOUD] * (2 * 5 * CELERY + 1)
    for lkind in (1, 2, 3, 4):  # legacy: a finished execution
        for ckind in (1, 2, 3, 4, 5):
            if ckind == 5:
                need = TIMING
            elif lkind > 2 and ckind > 2:
                continue  # both authoritative: a duplicate
            else:
                need = SAME_SUCCESS if lkind % 2 == ckind % 2 else OTHER_SUCCESS
            table[lkind + ckind * CELERY] = need
    return tuple(table)


PAIRS = _pair_table()


def lag_limit(spec: JobSpec) -> float:
    """The fire lag (seconds) above which a record is loud: the tolerance minus the margin."""
    return max(float(spec.compare.tolerance_seconds) - LAG_MARGIN, -1.0)


def scan(rows: Sequence[CompactRow], keys: Mapping[Any, int],
         fields: Sequence[str]) -> tuple[list[tuple[int, int]], dict[Any, tuple[int, int]]]:
    """Split one job's rows (slot order) into quiet slots ``(expected slot index, first row)``
    and loud groups ``{slot key: (first row, end)}`` (the module docstring). The hot loop."""
    exit_, digest = "exit_status" in fields, "output_digest" in fields
    quiet: list[tuple[int, int]] = []
    loud: dict[Any, tuple[int, int]] = {}
    get, pairs = keys.get, PAIRS
    n, i = len(rows), 0
    while i < n:
        a = rows[i]
        key, j = a[0], i + 1
        if j < n and rows[j][0] == key:
            b = rows[j]
            j += 1
            if j == n or rows[j][0] != key:
                need = pairs[a[1] + b[1]] if a[1] and b[1] else LOUD
                if need and (k := get(key)) is not None and (
                        need == TIMING or _same_outcome(a, b, need, exit_, digest)):
                    quiet.append((k, i))
                    i = j
                    continue
            while j < n and rows[j][0] == key:
                j += 1
        loud[key] = (i, j)
        i = j
    return quiet, loud


def _same_outcome(a: CompactRow, b: CompactRow, need: int, exit_: bool, digest: bool) -> bool:
    """No compared outcome field differs (as :func:`shadow.compare.outcome_diffs`)."""
    if exit_:
        ea, eb = a[2], b[2]
        if ea is None or eb is None:
            if need != SAME_SUCCESS:
                return False
        elif ea != eb:
            return False
    return not (digest and a[3] and b[3] and a[3] != b[3])


@dataclass
class Prepared:
    """A scanned job waiting for the full records of its loud slots (and kept quiet ones)."""

    spec: JobSpec
    slots: Sequence[datetime]
    history: Sequence[AuthorityEvent]
    quiet: bytearray  # per expected slot: 1 = a quiet match left out
    groups: dict[int, list[CompactRow]]  # expected slot index: its rows, for every other slot
    unexpected: list[list[CompactRow]]  # rows of slots the schedule does not contain
    quiet_count: int
    first_quiet: datetime | None
    last_quiet: datetime | None
    before: frozenset[datetime] = frozenset()  # the schedule's slots at/before the import
    imported: datetime | None = None

    @property
    def row_ids(self) -> list[int]:
        return [r[4] for g in (*self.groups.values(), *self.unexpected) for r in g]


def prepare(spec: JobSpec, slots: Sequence[datetime], rows: Sequence[CompactRow],
            keys: Mapping[Any, int], *, history: Sequence[AuthorityEvent] = (),
            keep_tail: int = 0, before: Iterable[datetime] = (),
            imported: datetime | None = None) -> Prepared:
    """Scan one job's rows; the newest ``keep_tail`` quiet slots are to be judged in full."""
    quiet_at, loud = scan(rows, keys, spec.compare.fields)
    kept_quiet = quiet_at[-keep_tail:] if keep_tail > 0 else []
    left_out = quiet_at[:len(quiet_at) - len(kept_quiet)]
    groups = {k: [rows[i], rows[i + 1]] for k, i in kept_quiet}
    unexpected = []
    for key, (start, end) in loud.items():
        k = keys.get(key)
        if k is None:
            unexpected.append(list(rows[start:end]))
        else:
            groups[k] = list(rows[start:end])
    flags = bytearray(len(slots))
    for k, _ in left_out:
        flags[k] = 1
    return Prepared(spec, slots, history, flags, groups, unexpected, len(left_out),
                    slots[left_out[0][0]] if left_out else None,
                    slots[left_out[-1][0]] if left_out else None,
                    frozenset(before), imported)


@dataclass(frozen=True)
class Sparse:
    """A job's verdicts without most quiet matches: ``kept`` (slot order) holds every verdict
    but ``quiet`` matches; ``first_slot``/``last_slot`` are those of the whole list."""

    kept: list[SlotVerdict]
    quiet: int
    first_slot: datetime | None
    last_slot: datetime | None


def finish(job: Prepared, full: Mapping[int, RunRecord], now: datetime) -> Sparse | None:
    """The job's :class:`Sparse` verdicts from the full records of its loud slots (``full``:
    row id -> observation). ``None`` when records at an expected instant were stored under
    another slot text (a writer other than the registry's own): the general path decides."""
    kept = _judge(job, full, now)
    if kept is None:
        return None
    first, last = job.first_quiet, job.last_quiet
    if kept:
        first = kept[0].slot if first is None else min(first, kept[0].slot)
        last = kept[-1].slot if last is None else max(last, kept[-1].slot)
    return Sparse(kept, job.quiet_count, first, last)


def _judge(job: Prepared, full: Mapping[int, RunRecord],
           now: datetime) -> list[SlotVerdict] | None:
    """Every verdict but the quiet ones, judged from full records (slot order)."""
    ctx = context_for(job.spec, now, job.history)
    rules = [parse_ignore(r) for r in job.spec.compare.ignore]
    none: list[CompactRow] = []
    out = []
    for k, slot in enumerate(job.slots):
        if not job.quiet[k]:
            legacy, celery = _split(job.groups.get(k, none), full)
            verdict = judge_records(slot, legacy, celery, ctx)
            out.append(apply_ignore(verdict, rules) if rules else verdict)
    expected = set(job.slots) if job.unexpected else set()
    for rows in job.unexpected:
        legacy, celery = _split(rows, full)
        slot = (legacy or celery)[0].slot
        if slot in expected:
            return None
        if slot in job.before:
            out.append(before_import_verdict(slot, legacy, celery, job.imported))
            continue
        out.append(apply_ignore(unexpected_verdict(slot, legacy, celery), rules))
    if job.unexpected:
        out.sort(key=lambda v: v.slot)
    return out


def _split(rows: Sequence[CompactRow], full: Mapping[int, RunRecord],
           ) -> tuple[list[RunRecord], list[RunRecord]]:
    legacy: list[RunRecord] = []
    celery: list[RunRecord] = []
    for row in rows:
        obs = full[row[4]]
        (legacy if obs.path is Path.LEGACY else celery).append(obs)
    return legacy, celery
