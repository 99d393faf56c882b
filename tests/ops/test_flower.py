"""``bridge flower``: Flower on the bridge's broker shows a job's run, findable by its job id;
a non-loopback address without authentication is refused (exit 2); the credentials are never
on Flower's command line; /metrics needs them, /healthcheck answers "OK" to anyone."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.cli.flower_cmd import PUBLIC_METRICS_FLAG, flower_command, is_loopback
from tests.ops.harness import FLOWER_AUTH, OpsHarness, flower_answers, flower_tasks, lines
from tests.support import free_port, wait_for

SLOT = "2026-03-08T07:00:00Z"


def test_a_public_address_needs_authentication(cli: Any) -> None:
    result = cli("flower", "--address", "0.0.0.0", "--port", "5599")
    assert result.code == 2
    assert "without authentication" in result.err
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("10.0.0.5") and not is_loopback("")
    argv, env = flower_command(5555, "0.0.0.0", "ops:pw", None, None, 100)
    assert env == {"FLOWER_BASIC_AUTH": "ops:pw"} and "--address=0.0.0.0" in argv
    assert not any("ops:pw" in a for a in argv) and PUBLIC_METRICS_FLAG not in argv
    argv, _ = flower_command(5555, "0.0.0.0", "ops:pw", None, None, 100, public_metrics=True)
    assert PUBLIC_METRICS_FLAG in argv
    with pytest.raises(ValueError, match="user:password"):
        flower_command(5555, "127.0.0.1", "nopassword", None, None, 100)


@pytest.fixture
def ops(tmp_path: Path, redis_url: str) -> Iterator[OpsHarness]:
    h = OpsHarness(tmp_path, redis_url)
    yield h
    h.close()


AUTH = FLOWER_AUTH




@pytest.mark.integration
def test_flower_shows_a_run_findable_by_its_job_id(ops: OpsHarness) -> None:
    out = ops.tmp / "out.txt"
    ops.add_job("billing-nightly", f"echo ran >> {out}")
    ops.add_job("other-job", "true")
    port = free_port()
    log = (ops.tmp / "flower.log").open("wb")
    argv, extra = flower_command(port, "127.0.0.1", AUTH, None, None, 1000)
    flower = subprocess.Popen(argv, env={**os.environ, **ops.env, **extra}, stdout=log,
                              stderr=subprocess.STDOUT, cwd=ops.tmp, start_new_session=True)
    try:
        wait_for("Flower to answer", lambda: flower_answers(port), 60)
        ops.start_worker().wait_task_events()  # off by default: Flower switches them on
        ops.client.send_task("bridge.run_job", args=["billing-nightly", SLOT], queue="bridge")
        ops.client.send_task("bridge.run_job", args=["other-job", SLOT], queue="bridge")
        wait_for("the run", lambda: lines(out) == ["ran"])

        def found() -> list[dict[str, Any]]:
            tasks = flower_tasks(port, "search=args:billing-nightly")
            return [t for t in tasks.values() if t.get("state") == "SUCCESS"]

        [task] = wait_for("Flower to list the finished task", found, 30)
        assert task["name"] == "bridge.run_job"
        assert "billing-nightly" in task["args"] and SLOT in task["args"]
        found = flower_tasks(port, "search=billing").values()
        assert all("other-job" not in t["args"] for t in found)
        assert _status(port, "/api/tasks") == 401  # the API is behind the basic auth
        # issue 15.3: the password is not on the real Flower process's command line ...
        cmdline = Path(f"/proc/{flower.pid}/cmdline").read_bytes().split(b"\0")
        assert b"flower" in cmdline and not any(b"s3cret" in a for a in cmdline), cmdline
        # ... /metrics needs it (it names workers and tasks), /healthcheck says only OK
        assert _status(port, "/metrics") == 401
        assert _status(port, "/metrics", AUTH) == 200
        assert _status(port, "/metrics", "ops:wrong") == 401
        assert _body(port, "/healthcheck") == b"OK"
    finally:
        os.killpg(flower.pid, signal.SIGTERM)
        flower.wait(timeout=20)
        log.close()


def _status(port: int, path: str, auth: str | None = None) -> int:
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth \
        else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def _body(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return bytes(r.read())




@pytest.mark.integration
def test_bridge_flower_keeps_the_password_off_every_command_line(ops: OpsHarness) -> None:
    """The issue's reproduction: `FLOWER_BASIC_AUTH=... bridge flower` (the console script,
    exec'ing Flower) showed `--basic_auth=admin:...` in `ps`."""
    import shutil
    import sys

    bridge = shutil.which("bridge", path=os.path.dirname(sys.executable))
    assert bridge is not None
    port = free_port()
    log = (ops.tmp / "flower.log").open("wb")
    proc = subprocess.Popen([bridge, "flower", "--port", str(port)],
                            env={**os.environ, **ops.env, "FLOWER_BASIC_AUTH": AUTH},
                            stdout=log, stderr=subprocess.STDOUT, cwd=ops.tmp,
                            start_new_session=True)
    try:
        wait_for("Flower to answer", lambda: flower_answers(port), 60)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert b"flower" in cmdline and b"s3cret" not in cmdline, cmdline
        assert _status(port, "/metrics") == 401 and _status(port, "/metrics", AUTH) == 200
        assert _status(port, "/api/workers", AUTH) == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()
