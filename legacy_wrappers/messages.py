"""The ``bridge.run_job`` message: exactly ``(job_id, slot)``, validated before anything else.

Contract: two positional arguments, a job id (``JOB_ID_RE``) and the slot as ISO-8601 UTC to the
second (``"2026-03-08T07:00:00Z"``; ``+00:00`` accepted), no kwargs, at most
:data:`MAX_ARGS_JSON` bytes of JSON. The command always comes from the registry, never from the
message. Anything else is a :class:`Rejection` carrying the reason (the task records it as a
``rejected`` row and acknowledges the message: no retry loop). Pure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridge.core.spec import JOB_ID_RE

MAX_ARGS_JSON = 512
REJECTED_SLOT = datetime(1970, 1, 1, tzinfo=UTC)  # stands in for a slot that could not be read
SLOT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|\+00:00)$")


@dataclass(frozen=True)
class JobRequest:
    job_id: str
    slot: datetime


@dataclass(frozen=True)
class Rejection:
    job_id: str
    slot: datetime
    reason: str


def shortened(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_slot(value: Any) -> datetime:
    """The slot as aware UTC; ValueError with the reason for anything else."""
    if not isinstance(value, str):
        raise ValueError(f"slot must be an ISO-8601 string, got {type(value).__name__}")
    if not SLOT_RE.match(value):
        raise ValueError(
            f"malformed slot {shortened(value)}: expected UTC to the second, like "
            "2026-03-08T07:00:00Z"
        )
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError as e:
        raise ValueError(f"malformed slot {shortened(value)}: {e}") from e


def slot_arg(slot: datetime) -> str:
    """The slot as a message argument (the inverse of :func:`parse_slot`)."""
    return slot.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_request(args: Sequence[Any], kwargs: dict[str, Any]) -> JobRequest | Rejection:
    """Validate a message's arguments."""
    job_id = args[0] if args and isinstance(args[0], str) and len(args[0]) <= 200 else "<invalid>"
    slot = REJECTED_SLOT
    slot_error = "expected 2 arguments (job_id, slot)"
    if len(args) > 1:
        try:
            slot, slot_error = parse_slot(args[1]), ""
        except ValueError as e:
            slot_error = str(e)
    reason = request_problem(args, kwargs) or slot_error or None
    if reason is not None:
        return Rejection(job_id, slot, reason)
    return JobRequest(args[0], slot)


def request_problem(args: Sequence[Any], kwargs: dict[str, Any]) -> str | None:
    """What is wrong with the message's shape (size, kwargs, arity, job id); None: nothing."""
    try:
        size = len(json.dumps([list(args), kwargs], default=str))
    except (TypeError, ValueError):
        size = MAX_ARGS_JSON + 1
    if size > MAX_ARGS_JSON:
        return f"oversized arguments ({size} bytes of JSON, at most {MAX_ARGS_JSON})"
    if kwargs:
        return f"unexpected keyword arguments {sorted(kwargs)}: only (job_id, slot) is accepted"
    if len(args) != 2:
        return f"expected 2 arguments (job_id, slot), got {len(args)}"
    if not isinstance(args[0], str) or not JOB_ID_RE.match(args[0]):
        return f"malformed job id {shortened(args[0])}"
    return None
