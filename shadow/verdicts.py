"""Slot verdicts: what the comparator (:mod:`shadow.compare`) says about one slot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bridge.core.errors import InputError
from bridge.core.runs import RunRecord


class Verdict(StrEnum):
    MATCH = "match"
    MISSING_CELERY = "missing_celery"
    MISSING_LEGACY = "missing_legacy"
    LATE = "late"
    DUPLICATE = "duplicate"
    OUTCOME_MISMATCH = "outcome_mismatch"
    PENDING = "pending"
    UNEXPECTED_SLOT = "unexpected_slot"
    BEFORE_IMPORT = "before_import"  # a firing of a slot at or before the job's import
    LOST = "lost"  # a run whose holder died before recording its outcome (outcome unknown)


class Basis(StrEnum):
    OUTCOME = "outcome"  # both paths executed: outcome fields and timing compared
    TIMING = "timing"  # one side observed or stood down: only timing compared
    NONE = "none"  # nothing comparable (pending, missing, duplicate, unexpected, lost,
    # before import)


# Not findings: matched, still waiting, or a slot before the job's import (nothing could have
# compared it; shown, never counted against the job).
RESOLVED = frozenset({Verdict.MATCH, Verdict.PENDING, Verdict.BEFORE_IMPORT})


class IgnoreRuleError(InputError):
    """An ignore rule that cannot be parsed (exit 2)."""


@dataclass(frozen=True)
class SlotVerdict:
    """The verdict for one slot, with both sides' representative records."""

    slot: datetime
    verdict: Verdict
    legacy: RunRecord | None
    celery: RunRecord | None
    detail: str = ""
    ignored_by: str | None = None
    basis: Basis = Basis.NONE
    mismatched: tuple[str, ...] = ()  # outcome fields that differ
    legacy_lag: float | None = None  # fire lag in seconds (negative = early)
    celery_lag: float | None = None

    @property
    def unresolved(self) -> bool:
        """A mismatch nobody has explained: not match, not pending, not ignored."""
        return self.verdict not in RESOLVED and self.ignored_by is None

