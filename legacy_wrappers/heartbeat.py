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

    def add(self, beater: Beater) -> None:
        with self.lock:
            if self.pid != os.getpid():
                self.pid = os.getpid()
                self.beaters = set()
                threading.Thread(target=self.run, name="lease-heartbeat", daemon=True).start()
            self.beaters.add(beater)
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
            self.wake.wait(max(0.01, min(1.0, soonest - time.monotonic())))


HEARTBEAT = Heartbeat()
