"""What a worker does with a slot whose previous holder died (issue 20: prefer skip over
double-run).

The authoritative path of ``bridge.run_job`` writes two durable records around every command
(:mod:`legacy_wrappers.authoritative`):

* **started**: a ``runs`` row (role ``authoritative``, status ``running``, ``record_key`` =
  :func:`started_key`), inserted before the process is forked, then given the command's pid
  (its process group) before the gated command may ``exec`` (:mod:`legacy_wrappers.runner`);
* **finished**: the same row updated with the outcome the moment the command has exited, before
  anything else (retry publication, the claim's verdict).

When a claim is *taken over* (its lease expired: the holder stopped renewing it, i.e. died or
was cut off), the newcomer reads the latest started row of the slot (of any earlier attempt: a
takeover that itself died before starting anything leaves none of its own) and decides (pure
:func:`decide_takeover`; a row a ``rerun`` takeover closed counts as "nothing in flight"):

=============================================  ==================================================
previous attempt's record                        what the takeover does
=============================================  ==================================================
none, or ``running`` without a pid (command      run the slot (the command never started; the
gated and never released)                        old row becomes ``suppressed``, "never ran")
finished (an outcome is recorded)               complete the claim with that outcome; run nothing
``running`` with a pid (command started,         wait until that process group is gone (same
outcome unknown)                                host; it is killed after a bound), then:
                                                ``on_lost=skip``: the row becomes ``lost``
                                                ("outcome unknown ..."), the claim ``lost``
                                                (terminal): never re-run automatically;
                                                ``on_lost=rerun``: the row is closed
                                                ``interrupted`` and the slot runs again
=============================================  ==================================================

A claim released on purpose (``bridge trigger --rerun``: state ``abandoned``) is not settled:
it runs. Callable handlers run in-process: their started row has no pid, and a started row of a
callable is always "in flight" (nothing sits between the row and the call).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bridge.core.runs import Status
from bridge.core.spec import LostPolicy

LOST_NOTE = "outcome unknown"
RERUN_NOTE = "rerun: holder died mid-run, outcome unknown"  # a row a rerun takeover closed


class Settle(StrEnum):
    RUN = "run"  # nothing ran: run it
    COMPLETE = "complete"  # it finished before its holder died: take the recorded outcome
    LOST = "lost"  # it was in flight and the job says skip
    RERUN = "rerun"  # it was in flight and the job says rerun


@dataclass(frozen=True)
class StartedRecord:
    """The previous attempt's started row, as the takeover needs it."""

    status: str
    pid: int | None
    host: str | None
    callable_handler: bool = False
    closed_by_takeover: bool = False  # a rerun takeover closed it; nothing has run since

    @property
    def finished(self) -> bool:
        return self.status != Status.RUNNING and not self.closed_by_takeover

    @property
    def in_flight(self) -> bool:
        return self.status == Status.RUNNING and (self.pid is not None or self.callable_handler)


def started_prefix(job_id: str, slot: datetime) -> str:
    digest = hashlib.sha256(f"{job_id}\0{slot.isoformat()}".encode()).hexdigest()[:40]
    return f"celery-run:{digest}:"


def started_key(job_id: str, slot: datetime, attempt: int) -> str:
    """The record key of the started row of one attempt of one slot (unique in ``runs``)."""
    return f"{started_prefix(job_id, slot)}{attempt}"


def decide_takeover(previous: StartedRecord | None, on_lost: LostPolicy) -> Settle:
    """Pure: what a takeover of a dead holder's claim does (see the module table)."""
    if previous is None or not (previous.finished or previous.in_flight):
        return Settle.RUN
    if previous.finished:
        return Settle.COMPLETE
    return Settle.LOST if on_lost is LostPolicy.SKIP else Settle.RERUN


def lost_note(holder: str, pid: int | None, host: str | None) -> str:
    where = f"pid {pid} on {host}" if pid is not None else f"in-process on {host}"
    return (f"{LOST_NOTE}: holder {holder} died after the command started ({where}) and before "
            "its outcome was recorded; on_lost=skip: not re-run (bridge trigger --rerun runs it)")


def group_alive(pgid: int) -> bool:
    """Whether any process of process group ``pgid`` still exists on this host."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_group_gone(
    pid: int | None,
    host: str | None,
    *,
    bound: float,
    kill: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    alive: Callable[[int], bool] = group_alive,
) -> str:
    """Wait until the previous command's process group is gone (never start a takeover while
    it runs). Only checkable on the same host; past ``bound`` seconds it is killed when ``kill``
    (SIGKILL to the group, before a re-run), else left alone (a ``skip`` takeover starts
    nothing). Returns what happened."""
    if pid is None:
        return "no process"
    if host != socket.gethostname():
        return f"on {host}: not checkable from here (its worker's watchdog kills it)"
    deadline = time.monotonic() + bound
    while alive(pid):
        if time.monotonic() >= deadline:
            if not kill:
                return f"process group {pid} still running after {bound:g} s"
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            sleep(0.2)
            return f"process group {pid} still ran after {bound:g} s: killed"
        sleep(0.2)
    return f"process group {pid} gone"
