"""One daemon thread per process renews every active lease when it is due.

Started on first use and again after a fork (a forked child renews only its own leases); no
thread is created per run. A beater is anything with ``next_beat`` (a monotonic time) and
``beat()`` (:class:`legacy_wrappers.claims.Lease`).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Protocol


class Beater(Protocol):
    next_beat: float

    def beat(self) -> None: ...


class Heartbeat:
    """The renewing thread of this process and the leases it renews."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.beaters: set[Beater] = set()
        self.pid = -1
        self.wake_at = 0.0  # when the thread looks next (monotonic)

    def add(self, beater: Beater) -> None:
        """Renew ``beater`` from now on; the thread is woken only when the newcomer is due
        before it would look anyway (not in a burst of runs: each is due a renewal period
        later, while the thread looks at least once a second)."""
        with self.lock:
            if self.pid != os.getpid():
                self.pid = os.getpid()
                self.beaters = set()
                self.wake_at = 0.0
                threading.Thread(target=self.run, name="lease-heartbeat", daemon=True).start()
            self.beaters.add(beater)
            early = beater.next_beat < self.wake_at
        if early:
            self.wake.set()

    def discard(self, beater: Beater) -> None:
        with self.lock:
            self.beaters.discard(beater)

    def run(self) -> None:
        while True:
            self.wake.clear()
            with self.lock:
                beaters = list(self.beaters)
            now = time.monotonic()
            for beater in beaters:
                if beater.next_beat <= now:
                    beater.beat()
            with self.lock:
                soonest = min((b.next_beat for b in self.beaters), default=now + 1.0)
                pause = max(0.01, min(1.0, soonest - time.monotonic()))
                self.wake_at = time.monotonic() + pause
            self.wake.wait(pause)


HEARTBEAT = Heartbeat()
