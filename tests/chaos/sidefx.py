"""The chaos tests' side effect: a callable job handler that appends ``<job> <slot>`` to a file.

A command handler is not told its slot (the runner exports no ``BRIDGE_SLOT``), so the chaos jobs
use this in-process callable: it reads ``[job_id, slot]`` from the Celery request that runs it
(the real ``bridge.run_job`` wrapper, after its claim) and appends one line per execution, so a
test counts real executions per slot by counting lines.
"""

from __future__ import annotations

import os
import time


def append(path: str, delay: float = 0.0, hold: float = 0.0) -> None:
    """Sleep ``delay``, append the line, then sleep ``hold`` (a side effect that happened before
    the run is over: what a crash after the effect looks like)."""
    from celery import current_task

    job_id, slot = current_task.request.args[:2]
    if delay:
        time.sleep(delay)
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{job_id} {slot}\n")
        f.flush()
        os.fsync(f.fileno())
    if hold:
        time.sleep(hold)
