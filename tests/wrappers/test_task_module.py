"""Importing the task module builds no Celery app; the app's factory registers the task."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bridge.celery_app import make_app
from bridge.core.config import Settings
from legacy_wrappers.tasks import TASK_NAME

PROBE = """
import json, sys, time
from celery import _state
t0 = time.perf_counter()
import legacy_wrappers.tasks
seconds = time.perf_counter() - t0
print(json.dumps({"apps": len(list(_state._apps)), "seconds": seconds,
                  "face_imported": "bridge.celery_app" in sys.modules}))
"""


def probe(code: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.integration  # a fresh interpreter in a subprocess
def test_importing_the_tasks_builds_no_celery_app() -> None:
    found = probe(PROBE)
    assert found["apps"] == 0, found
    assert found["face_imported"] is False, found


def test_an_app_from_the_factory_runs_the_task() -> None:
    app = make_app(Settings(redis_url="redis://127.0.0.1:1/0", database_url="sqlite://"))
    try:
        assert TASK_NAME in app.tasks
        task = app.tasks[TASK_NAME]
        assert task.acks_late and task.reject_on_worker_lost and task.ignore_result
    finally:
        app.close()


@pytest.mark.integration  # a fresh interpreter in a subprocess
def test_celery_minus_a_legacy_wrappers_tasks_finds_the_bridge_app() -> None:
    found = probe(
        "import json\n"
        "from celery.app.utils import find_app\n"
        "app = find_app('legacy_wrappers.tasks')\n"
        f"print(json.dumps({{'main': app.main, 'task': {TASK_NAME!r} in app.tasks}}))\n"
    )
    assert found == {"main": "bridge", "task": True}
