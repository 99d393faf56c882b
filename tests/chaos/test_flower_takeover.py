"""What Flower shows for a run whose worker was SIGKILLed mid-run and whose slot another task
took over (a repair or ``bridge trigger`` message: a new task id; the dead delivery is not
redelivered before the visibility timeout).

A real prefork worker is SIGKILLed while the job's callable holds (after its side effect); a new
worker runs a second message for the same slot, which takes over the dead claim when its lease
expires. Flower's own :class:`flower.events.EventsState`, fed by a real ``celery.events``
receiver, must end with the DEAD task id in FAILURE (not STARTED forever), its exception naming
the dead holder: ``lost`` under ``on_lost=skip``, the rerun note under ``on_lost=rerun``.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from celery import Celery
from flower.events import EventsState

from bridge.store.models import ClaimRow
from tests.chaos.harness import CHAOS_APP, Chaos, slot_text
from tests.support import wait_for

EVENTS_ON = {"BRIDGE_TASK_EVENTS": "1"}  # as Flower's enable_events would switch them on

pytestmark = [pytest.mark.integration, pytest.mark.slow(seconds=50), pytest.mark.timeout(150)]


class Watcher:
    """A ``celery.events`` receiver on a thread, feeding Flower's events state."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.state = EventsState()
        self.seen: list[dict[str, Any]] = []
        self.receiver: Any = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _on(self, event: dict[str, Any]) -> None:
        self.seen.append(event)
        self.state.event(event)

    def _run(self) -> None:
        with self.app.connection() as conn:
            self.receiver = self.app.events.Receiver(conn, handlers={"*": self._on})
            self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def start(self) -> None:
        self.thread.start()

        def probed() -> bool:  # the receiver's queue is bound once it sees our own probe
            with self.app.events.default_dispatcher() as d:
                d.send("probe-ping")
            time.sleep(0.2)
            return any(e["type"] == "probe-ping" for e in self.seen)

        wait_for("the events receiver", probed, 20)

    def stop(self) -> None:
        if self.receiver is not None:
            self.receiver.should_stop = True
        self.thread.join(10)

    def task_state(self, uuid: str) -> str | None:
        task = self.state.tasks.get(uuid)
        return None if task is None else str(task.state)


def lease_expired(chaos: Chaos) -> bool:
    with chaos.registry.session() as s:
        claim = s.query(ClaimRow).one()
        return bool(claim.expires_at < datetime.now(UTC))


@pytest.mark.parametrize("on_lost", ["skip", "rerun"])
def test_the_dead_task_of_a_taken_over_slot_ends_failed_in_flower(
    chaos: Chaos, on_lost: str
) -> None:
    # the chaos fixture's visibility timeout (3600 s): the dead delivery is not redelivered
    watcher = Watcher(chaos.client)
    watcher.start()
    try:
        slot = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        chaos.add_job("flower-kill", "0 * * * *", dialect="vixie", hold=120, on_lost=on_lost)
        worker = chaos.worker(concurrency=1, app=CHAOS_APP, env=EVENTS_ON)
        dead = chaos.client.send_task("bridge.run_job", args=["flower-kill", slot_text(slot)],
                                      queue="bridge").id
        wait_for("the side effect", chaos.effects, 30, logs=chaos.tail_logs)
        wait_for("Flower to see it started", lambda: watcher.task_state(dead) == "STARTED", 10)
        worker.signal(signal.SIGKILL)  # mid-run: after the effect, before the verdict
        worker.popen.wait(timeout=20)
        chaos.add_job("flower-kill", "0 * * * *", dialect="vixie", on_lost=on_lost)
        chaos.worker(concurrency=1, app=CHAOS_APP, env=EVENTS_ON)
        wait_for("the dead run's lease to expire", lambda: lease_expired(chaos), 45)
        taker = chaos.client.send_task("bridge.run_job", args=["flower-kill", slot_text(slot)],
                                       queue="bridge").id
        wanted = "FAILURE" if on_lost == "skip" else "SUCCESS"
        wait_for("the takeover's verdict", lambda: watcher.task_state(taker) == wanted, 90,
                 logs=chaos.tail_logs)
        wait_for("the dead task's terminal event",
                 lambda: watcher.task_state(dead) not in (None, "STARTED"), 10,
                 logs=lambda: f"{[e for e in watcher.seen if e.get('uuid') == dead]}\n"
                              f"{chaos.tail_logs()}")

        task = watcher.state.tasks[dead]
        assert task.state == "FAILURE"
        assert f"{dead}@" in str(task.exception)  # names the dead holder
        if on_lost == "skip":
            assert str(task.exception).startswith("lost: outcome unknown"), task.exception
            assert str(watcher.state.tasks[taker].exception).find("lost") >= 0
        else:
            assert str(task.exception).startswith("rerun: holder died mid-run"), task.exception
            assert chaos.effects() == [("flower-kill", slot)] * 2  # the rerun is visible
    finally:
        watcher.stop()
