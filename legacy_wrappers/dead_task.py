"""A terminal Celery event for the task of a dead holder whose slot another task took over.

Flower (and any ``celery.events`` monitor) keys tasks on their uuid and keeps the last state an
event gave it: a run whose worker was SIGKILLed stays ``STARTED`` forever, because its worker
never sends ``task-failed``/``task-succeeded``. When the takeover is a redelivery of the same
message (same task id) the new delivery's own outcome closes it; when it is another message (a
repair, ``bridge trigger``), :func:`close_dead_task` sends the dead task id a terminal event
from the worker that settled it: ``task-failed`` with the settlement note as the exception
("lost: ..." or the rerun note), or ``task-succeeded`` when the dead run had finished.

Sent whether or not this worker's task events are on (they are off until a monitor switches
them on, ``BRIDGE_TASK_EVENTS``; a takeover is rare, and a monitor that switched events on
after the dead run started still learns its end); best effort: a broker outage is logged, never
raised (the settlement is in the registry already).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bridge.core.claims import lineage_of

if TYPE_CHECKING:
    from celery import Task

log = logging.getLogger(__name__)


def dead_task_id(task: Task, dead_holder: str) -> str | None:
    """The dead holder's task id, or None when it is this very task (a redelivery) or unknown."""
    dead = lineage_of(dead_holder)
    if not dead or dead == "unknown" or dead == task.request.id:
        return None
    return dead


def close_dead_task(task: Task, dead_holder: str, note: str, *, succeeded: bool = False) -> None:
    """Send the dead holder's task its terminal event (see the module doc)."""
    dead = dead_task_id(task, dead_holder)
    if dead is None:
        return
    fields = ({"result": repr(note)} if succeeded else {"exception": note, "traceback": ""})
    try:
        with task.app.events.default_dispatcher(hostname=task.request.hostname) as dispatcher:
            dispatcher.send("task-succeeded" if succeeded else "task-failed", uuid=dead,
                            retry=False, **fields)
    except Exception as e:  # the broker is down: the registry has the settlement anyway
        log.warning("could not send the terminal event of dead task %s (%s)", dead, e)
