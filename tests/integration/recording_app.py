"""A test-only Celery app: the bridge's app plus a ``bridge.run_job`` that records its arguments.

Beat and worker subprocesses in the integration tests (and ``bench/dispatch.py``) run
``celery -A tests.integration.recording_app ...`` with ``PYTHONPATH`` at the repository root.
The task appends ``job_id slot`` (one line per run) to the file named by ``RECORDING_FILE``.
``RECORDING_REHYDRATE`` sets ``bridge_rehydrate_interval`` (seconds) for the beat.
"""

from __future__ import annotations

import os

from bridge.celery_app import make_app

app = make_app()
app.conf.imports = ()  # not the real task module: this app's bridge.run_job only records
if os.environ.get("RECORDING_REHYDRATE"):
    app.conf.bridge_rehydrate_interval = float(os.environ["RECORDING_REHYDRATE"])


@app.task(name="bridge.run_job")
def run_job(job_id: str, slot: str) -> None:
    path = os.environ["RECORDING_FILE"]
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{job_id} {slot}\n")
        f.flush()
