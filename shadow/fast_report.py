""":func:`shadow.report.build_report` through :mod:`shadow.scan`: the same reports, faster.

Jobs are scanned one at a time (compact rows, quiet slots left out); the full records of the
loud slots of several jobs are then fetched together by row id (few, batched queries) and the
jobs finished in order. A job the fast path cannot answer exactly (an unknown database, slot
texts from a foreign writer, a readiness window reaching past the kept matches) goes back to
the caller for the general path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from bridge.core.authority import Owner, owner_at
from bridge.core.spec import JobSpec
from bridge.store import run_scan
from bridge.store.db import Session
from bridge.store.runs import by_row_id
from shadow import scan
from shadow.readiness import required_matches
from shadow.report_model import JobReport, Planned, job_report

BATCH_ROWS = 5000  # full records fetched per flush (bounds the memory of kept records)


class FastPath:
    """Feed :meth:`add` the planned jobs in order; it yields ``(job, report or None)`` in the
    same order as their records are fetched (``None``: use the general path)."""

    def __init__(self, session: Session, since: datetime, until: datetime, now: datetime,
                 timeline_limit: int, mismatch_limit: int) -> None:
        self.session, self.since, self.until, self.now = session, since, until, now
        self.timeline_limit, self.mismatch_limit = timeline_limit, mismatch_limit
        self.supported = run_scan.supported(session)
        self.keys: dict[int, dict[Any, int]] = {}  # per distinct schedule (slot lists shared)
        self.waiting: list[tuple[Planned, scan.Prepared, int]] = []
        self.row_count = 0

    def add(self, p: Planned, *, flush: bool = False) -> list[tuple[Planned, JobReport | None]]:
        if not self.supported or p.members:  # a group folds its members' records: general path
            return [*self.flush(), (p, None)]
        keep = keep_quiet(p.spec, p.slots, self.timeline_limit)
        if id(p.slots) not in self.keys:
            self.keys[id(p.slots)] = run_scan.slot_keys(self.session, p.slots)
        rows = run_scan.compact_rows(self.session, p.spec.id, self.since, self.until,
                                     lag_limit=scan.lag_limit(p.spec),
                                     digest="output_digest" in p.spec.compare.fields)
        job = scan.prepare(p.spec, p.slots, rows, self.keys[id(p.slots)], history=p.history,
                           keep_tail=keep, before=p.before, imported=p.imported)
        self.waiting.append((p, job, keep))
        self.row_count += len(job.row_ids)
        return self.flush() if flush or self.row_count >= BATCH_ROWS else []

    def flush(self) -> list[tuple[Planned, JobReport | None]]:
        ids = [i for _, job, _ in self.waiting for i in job.row_ids]
        full = by_row_id(self.session, ids, lean=True) if ids else {}
        out = [(p, self._report(p, job, keep, full)) for p, job, keep in self.waiting]
        self.waiting, self.row_count = [], 0
        return out

    def _report(self, p: Planned, job: scan.Prepared, keep: int,
                full: dict[int, Any]) -> JobReport | None:
        sparse = scan.finish(job, full, self.now)
        if sparse is None:
            return None
        return sparse_job_report(p.spec, sparse, owner_at(p.history, self.until),
                                 expected=len(p.slots), kept_quiet=keep,
                                 timeline_limit=self.timeline_limit,
                                 mismatch_limit=self.mismatch_limit)


def keep_quiet(spec: JobSpec, slots: Sequence[datetime], timeline_limit: int) -> int:
    """How many of the newest quiet matches a report needs in full: its timeline's and the
    readiness window's (``None`` from :func:`sparse_job_report` when that guess, made from
    the first expected slot, falls short)."""
    return max(timeline_limit, required_matches(spec, _anchor(slots[:1])))


def sparse_job_report(spec: JobSpec, sparse: scan.Sparse, owner: Owner, *, expected: int,
                      kept_quiet: int, timeline_limit: int,
                      mismatch_limit: int) -> JobReport | None:
    """:func:`shadow.report.job_report` of the whole verdict list, from its sparse form
    (``kept_quiet``: the newest quiet matches kept in full). ``None`` when readiness would
    look past them."""
    first = sparse.first_slot
    need = required_matches(spec, _anchor([first] if first else []))
    if sparse.quiet and need > kept_quiet:
        return None
    report = job_report(spec, sparse.kept, owner=owner, expected=expected,
                        timeline_limit=timeline_limit, mismatch_limit=mismatch_limit,
                        required=None if owner is Owner.CELERY else need)
    s = report.summary
    summary = replace(s, compared=s.compared + sparse.quiet,
                      counts={**s.counts, "match": s.counts["match"] + sparse.quiet},
                      first_slot=first, last_slot=sparse.last_slot)
    return replace(report, summary=summary,
                   timeline_omitted=report.timeline_omitted + sparse.quiet)


def _anchor(first: Sequence[datetime]) -> datetime | None:
    """The anchor :func:`shadow.readiness.readiness` takes: just before the first verdict."""
    return first[0] - timedelta(seconds=1) if first else None
