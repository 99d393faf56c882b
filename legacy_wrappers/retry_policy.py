"""When a run is tried again inside its slot, and after how long (pure).

A failed, timed-out or interrupted run is retried per the job's
:class:`~bridge.core.spec.RetryPolicy` while the attempts stay below ``max_retries + 1`` and the
run did not lose its lease (someone else holds the slot then): exponential backoff, capped,
with equal jitter. An unreachable registry or Redis retries the message after
:data:`INFRA_RETRY_SECONDS`; a full group after :data:`GROUP_RETRY_SECONDS` (uniform).
"""

from __future__ import annotations

from bridge.core.runs import Status
from bridge.core.spec import RetryPolicy

INFRA_RETRY_SECONDS = 30
GROUP_RETRY_SECONDS = (2.0, 5.0)  # a slot deferred by a full group retries after this (uniform)
RETRYABLE = frozenset({Status.FAILED, Status.TIMED_OUT, Status.INTERRUPTED})


def retry_delay(policy: RetryPolicy, attempt: int, rand: float) -> float:
    """Backoff before retry number ``attempt`` (1-based): doubling, capped, equal jitter."""
    base = min(policy.backoff_max_seconds, policy.backoff_seconds * 2 ** max(attempt - 1, 0))
    return base * (0.5 + rand / 2) if policy.jitter else base


def should_retry(status: Status, attempts: int, policy: RetryPolicy, lease_lost: bool) -> bool:
    """Retry when the run failed in a way a retry can fix and the budget allows."""
    return status in RETRYABLE and not lease_lost and attempts < policy.max_retries + 1
