"""The dead holder's terminal event: which task id gets it, and a broker outage never raises.
(The event as Flower sees it, with a real SIGKILLed worker: tests/chaos/test_flower_takeover.py.)"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from legacy_wrappers.dead_task import close_dead_task, dead_task_id
from tests.support.net import free_port


@pytest.fixture
def task() -> Iterator[Any]:
    app = Celery("dead-task-test", broker=f"redis://127.0.0.1:{free_port()}/0")  # nobody there

    @app.task(bind=True, name=f"dead-task-probe-{id(app)}")  # one per app: no clash
    def run(self: Any) -> None:
        pass

    run.push_request(id="new-task", hostname="w1@host")
    yield run
    run.pop_request()
    app.close()


def test_only_another_task_id_is_the_dead_one(task: Any) -> None:
    assert dead_task_id(task, "old-task@host:123") == "old-task"
    assert dead_task_id(task, "new-task@host:123") is None  # a redelivery: its own outcome ends it
    assert dead_task_id(task, "unknown@host:123") is None


def test_a_redelivery_sends_nothing_and_opens_no_connection(task: Any) -> None:
    started = time.monotonic()
    close_dead_task(task, "new-task@host:1", "lost: outcome unknown")  # its own task id
    assert time.monotonic() - started < 0.5


@pytest.mark.integration
def test_a_broker_outage_is_logged_never_raised(
    task: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="legacy_wrappers.dead_task"):
        started = time.monotonic()
        close_dead_task(task, "old-task@host:1", "lost: outcome unknown")
    assert time.monotonic() - started < 20
    assert "could not send the terminal event of dead task old-task" in caplog.text
