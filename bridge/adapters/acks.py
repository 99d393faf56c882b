"""Acknowledgements written to Redis in batches, off the task threads.

kombu's Redis ``QoS.ack`` writes each acknowledgement at once: a ``MULTI`` / ``ZREM`` /
``HDEL`` / ``EXEC`` pipeline per message, from the thread that ran the task. A burst of 1,000
runs so pays 1,000 round trips and their Python (about a fifth of the worker's CPU in a
``py-spy --gil`` profile of such a burst: ``docs/benchmarks.md``), all of it competing for the
interpreter with the runs still starting.

:class:`AckBatcher` keeps kombu's bookkeeping in memory at once (the prefetch accounting sees
the ack immediately) and writes the Redis side for every acknowledgement pending at that moment
in one ``MULTI`` pipeline (``ZREM index tag...``, ``HDEL unacked tag...``) from one flusher
thread, at most :data:`LINGER_SECONDS` after the first of them.

Why no guarantee weakens: an acknowledgement only ever *removes* a message from the unacked
hash, and only after the run's verdict is in the registry. Until it is written the message
stays where kombu's own ack would have left it had the worker died just before acking: a
redelivery after the visibility timeout, which the slot claim records as a ``suppressed``
duplicate, never a second run. A failed write (Redis unreachable) keeps the tags and is retried
every :data:`RETRY_SECONDS`; closing the channel (warm shutdown) writes what is pending first.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

log = logging.getLogger("bridge.adapters.acks")

LINGER_SECONDS = 0.002  # the first pending ack waits this long for others to join it
RETRY_SECONDS = 1.0
MAX_BATCH = 1000  # tags per pipeline at most


class AckBatcher:
    """The pending acknowledgements of one channel and the thread that writes them."""

    def __init__(self, channel: Any, *, linger: float = LINGER_SECONDS) -> None:
        self.channel = channel
        self.linger = linger
        self.pending: list[str] = []
        self.lock = threading.Lock()  # guards pending and thread
        self.write_lock = threading.Lock()  # one write at a time (the thread, or close)
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self.closed = False
        self.failing = False
        self.pid = os.getpid()

    def add(self, delivery_tag: str) -> None:
        """Acknowledge ``delivery_tag`` in Redis soon (written by the flusher thread)."""
        if self.pid != os.getpid():
            self._after_fork()
        with self.lock:
            self.pending.append(delivery_tag)
            if self.thread is None and not self.closed:
                self.thread = threading.Thread(target=self._run, name="bridge-acks",
                                               daemon=True)
                self.thread.start()
        self.wake.set()

    def _after_fork(self) -> None:
        """A forked child has the parent's pending list but not its thread: start afresh (the
        parent writes its own acknowledgements)."""
        self.pid = os.getpid()
        self.pending, self.thread, self.closed, self.failing = [], None, False, False
        self.lock, self.write_lock = threading.Lock(), threading.Lock()
        self.wake = threading.Event()

    def _run(self) -> None:
        while not self.closed:
            self.wake.wait()
            if self.closed:
                return
            time.sleep(self.linger)
            self.wake.clear()  # before taking the batch: a later add wakes the next round
            if not self.flush():
                time.sleep(RETRY_SECONDS)
                self.wake.set()

    def flush(self) -> bool:
        """Write every pending acknowledgement now; False (tags kept) if Redis refused."""
        with self.write_lock:
            with self.lock:
                tags, self.pending = self.pending, []
            for start in range(0, len(tags), MAX_BATCH):
                chunk = tags[start:start + MAX_BATCH]
                try:
                    self._write(chunk)
                except Exception as e:
                    with self.lock:
                        self.pending[:0] = tags[start:]
                    if not self.failing:
                        log.warning("could not write %d acknowledgement(s) to Redis (%s); "
                                    "retrying every %g s", len(tags) - start, e, RETRY_SECONDS)
                    self.failing = True
                    return False
            if self.failing and tags:
                log.warning("acknowledgements written to Redis again")
            self.failing = False
            return True

    def _write(self, tags: list[str]) -> None:
        qos = self.channel.qos
        with self.channel.conn_or_acquire() as client:
            pipe = client.pipeline()  # MULTI / EXEC, as kombu's own ack
            pipe.zrem(qos.unacked_index_key, *tags)
            pipe.hdel(qos.unacked_key, *tags)
            pipe.execute()

    def close(self) -> None:
        """Write what is pending (once more on failure) and stop the thread."""
        self.closed = True
        self.wake.set()
        if not self.flush() and not self.flush():
            log.warning("%d acknowledgement(s) not written to Redis: those messages come back "
                        "after the visibility timeout and are recorded as suppressed "
                        "duplicates", len(self.pending))
