"""A timeout for an in-process call: SIGALRM, so only on the main thread (elsewhere: none)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class CallTimeout(Exception):
    pass


@contextlib.contextmanager
def alarm(timeout: float | None) -> Iterator[None]:
    """Raise :class:`CallTimeout` in the block after ``timeout`` seconds (main thread only)."""
    if timeout is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def fire(_signum: int, _frame: object) -> None:
        raise CallTimeout(f"timed out after {timeout:g} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
