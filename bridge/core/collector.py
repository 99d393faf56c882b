"""Bulk work (an import, a shadow report) allocates millions of small objects in no cycles.

Python's cyclic collector would walk all of them again and again while they are built (the
older they get, the more often a full collection visits them), so the time of a 100k-line import
grew faster than its lines. :func:`paused_collector` turns the collector off for such a stretch
of work and back on (as it was) afterwards; reference counting still frees everything that is
not in a cycle, and anything that is gets collected once the collector runs again.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_collector() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
