"""Wait on conditions, never on fixed times."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

Logs = str | Callable[[], str]


def wait_for(what: str, check: Callable[[], T], timeout: float = 30.0, logs: Logs = "", *,
             interval: float = 0.2) -> T:
    """Poll ``check`` every ``interval`` s until it returns something truthy and return that.

    After ``timeout`` s fail with ``AssertionError("timed out after … waiting for <what>")``
    followed by ``logs``: a callable read at failure time (``chaos.tail_logs``: the end of the
    processes' logs, not their start) or a string. ``check`` runs once more at the deadline, so
    a condition that became true during the last interval is not reported as a timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
    text = logs() if callable(logs) else logs
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}"
                         + (f"\n{text}" if text else ""))


def sleep_until(epoch: float) -> None:
    """Sleep until the wall clock reads ``epoch`` (for tests whose behaviour IS a clock edge)."""
    while (left := epoch - time.time()) > 0:
        time.sleep(min(left, 0.5))
