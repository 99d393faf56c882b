"""The run vocabulary: one record per firing of either path for one slot.

A :class:`RunRecord` is what the legacy shim, the Celery task and the beat write when a path
meets a slot (design §6): the job, the slot, which path (``legacy`` | ``celery``), in what role,
what happened, when, and the outcome (exit status, digest of the cleaned output, a bounded sample
of the raw output). The comparator (:mod:`shadow.compare`) and reconcile read them back; nothing
updates a record after it is written, so a record is a fact. This module is a leaf: it imports
only the standard library, so the shim's hot path can use it.

Vocabulary (stored legibly as ``str`` enums):

* :class:`Path`: ``legacy`` (cron / Quartz through the shim) or ``celery`` (beat + worker).
* :class:`Role`: ``authoritative`` (the path that owns the slot ran it), ``shadow`` (the other
  path ran the dry-run or the opted-in real handler), ``observe`` (the other path recorded the
  firing only), ``stand-down`` (the path fired but knew the other owns the slot),
  ``suppressed`` (the path lost the claim to an execution already under way), ``rejected``
  (the message could not be read or admitted), ``scheduler`` (the firing side declined the
  slot without running it: the beat's ``missed``/``skipped``, the shim's ``skipped`` for a
  paused job).
* :class:`Status`: ``succeeded`` | ``failed`` | ``interrupted`` | ``running`` (executions),
  ``timed_out`` (an execution killed at its timeout), ``error`` (it could not start),
  ``lost`` (an execution whose holder died before recording its outcome: the note in
  ``error`` starts ``outcome unknown``; the slot is not run again automatically),
  ``observed``, ``stood-down``, ``suppressed``, ``skipped`` | ``missed`` | ``rejected``
  (the path knew the slot and declined it).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

__all__ = [
    "CLEANED",
    "COLUMNS",
    "EXECUTION_STATUSES",
    "SAMPLE_LIMIT",
    "TRUNCATION_MARK",
    "Path",
    "Role",
    "RunRecord",
    "Status",
    "bound_sample",
    "clean_text",
    "digest_output",
]

SAMPLE_LIMIT = 4096  # bytes of UTF-8 kept in output_sample (head and tail)
TRUNCATION_MARK = "\n[... output truncated ...]\n"
CLEANED = "<*>"  # what a clean regex leaves in place of its match

class Path(StrEnum):
    LEGACY = "legacy"
    CELERY = "celery"


class Role(StrEnum):
    AUTHORITATIVE = "authoritative"
    SHADOW = "shadow"
    OBSERVE = "observe"
    STAND_DOWN = "stand-down"
    SUPPRESSED = "suppressed"
    REJECTED = "rejected"  # the message could not be read or admitted
    SCHEDULER = "scheduler"  # the firing side declined the slot: beat missed/skipped, shim paused


class Status(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    OBSERVED = "observed"
    STOOD_DOWN = "stood-down"
    SUPPRESSED = "suppressed"
    SKIPPED = "skipped"
    MISSED = "missed"
    REJECTED = "rejected"
    INTERRUPTED = "interrupted"
    TIMED_OUT = "timed_out"  # the command ran past its timeout: its process group was killed
    ERROR = "error"  # the command could not start (unknown or refused user, missing shell)
    RUNNING = "running"
    LOST = "lost"  # the holder died mid-run: outcome unknown, never re-run automatically


EXECUTION_STATUSES = frozenset(
    {Status.SUCCEEDED, Status.FAILED, Status.INTERRUPTED, Status.RUNNING}
)

def _aware(value: datetime | None, name: str) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"observation {name} must be timezone-aware")


@dataclass(frozen=True)
class RunRecord:
    """One firing of one path for one slot (see the module docstring for the vocabulary)."""

    job_id: str
    slot: datetime
    path: Path
    role: Role
    status: Status
    fired_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_status: int | None = None
    task_state: str | None = None
    attempts: int = 1
    output_digest: str | None = None
    output_sample: str | None = None
    host: str | None = None
    error: str | None = None
    record_key: str | None = None
    row_id: int | None = field(default=None, compare=False, repr=False)  # runs.id once stored

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "role", Role(self.role))
        object.__setattr__(self, "status", Status(self.status))
        for name in ("slot", "fired_at", "started_at", "finished_at"):
            _aware(getattr(self, name), name)
        if self.slot.microsecond:
            raise ValueError("a slot has whole-second precision")
        if self.output_sample is not None:
            object.__setattr__(self, "output_sample", bound_sample(self.output_sample))
        if self.record_key is not None and len(self.record_key) > 128:
            raise ValueError("record_key is at most 128 characters")

    @property
    def executed(self) -> bool:
        """True when this record is a run of the job's handler (real or dry-run)."""
        return self.status in EXECUTION_STATUSES and self.role in (Role.AUTHORITATIVE, Role.SHADOW)

    @property
    def fire_time(self) -> datetime | None:
        """When the path fired for the slot: ``fired_at``, else ``started_at``."""
        return self.fired_at or self.started_at

    def to_row(self) -> dict[str, Any]:
        """Column values for ``runs`` (enums as their stored strings)."""
        row = {name: getattr(self, name) for name in COLUMNS}
        row["path"], row["role"] = self.path.value, self.role.value
        row["status"] = self.status.value
        return row


COLUMNS = tuple(f.name for f in fields(RunRecord) if f.name != "row_id")


def bound_sample(text: str, limit: int = SAMPLE_LIMIT) -> str:
    """``text`` if it fits in ``limit`` UTF-8 bytes, else its head and tail around a mark."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    keep = (limit - len(TRUNCATION_MARK.encode())) // 2
    head = data[:keep].decode("utf-8", "ignore")
    tail = data[-keep:].decode("utf-8", "ignore")
    return head + TRUNCATION_MARK + tail


@lru_cache(maxsize=512)
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p) for p in patterns)


def clean_text(text: str, clean: Sequence[str]) -> str:
    """Apply a job's clean regexes in order, each match replaced by :data:`CLEANED`."""
    for pattern in _compiled(tuple(clean)):
        text = pattern.sub(CLEANED, text)
    return text


def digest_output(text: str, clean: Sequence[str] = ()) -> str:
    """sha256 (hex) of the output after the job's clean regexes: equal digests = equal output."""
    return hashlib.sha256(clean_text(text, clean).encode("utf-8", "replace")).hexdigest()
