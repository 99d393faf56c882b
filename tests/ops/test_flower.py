"""``bridge flower``: Flower on the bridge's broker shows a job's run, findable by its job id;
a non-loopback address without authentication is refused (exit 2)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.cli.flower_cmd import flower_argv, is_loopback
from tests.conftest import free_port
from tests.ops.harness import OpsHarness, lines, wait_for

SLOT = "2026-03-08T07:00:00Z"


def test_a_public_address_needs_authentication(cli: Any) -> None:
    result = cli("flower", "--address", "0.0.0.0", "--port", "5599")
    assert result.code == 2
    assert "without authentication" in result.err
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("10.0.0.5") and not is_loopback("")
    argv = flower_argv(5555, "0.0.0.0", "ops:pw", None, None, 100)
    assert "--basic_auth=ops:pw" in argv and "--address=0.0.0.0" in argv
    with pytest.raises(ValueError, match="user:password"):
        flower_argv(5555, "127.0.0.1", "nopassword", None, None, 100)


@pytest.fixture
def ops(tmp_path: Path, redis_url: str) -> Iterator[OpsHarness]:
    h = OpsHarness(tmp_path, redis_url)
    yield h
    h.close()


AUTH = "ops:s3cret"


def api_tasks(port: int, search: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/api/tasks?search={search}"
    token = base64.b64encode(AUTH.encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


@pytest.mark.integration
def test_flower_shows_a_run_findable_by_its_job_id(ops: OpsHarness) -> None:
    out = ops.tmp / "out.txt"
    ops.add_job("billing-nightly", f"echo ran >> {out}")
    ops.add_job("other-job", "true")
    port = free_port()
    log = (ops.tmp / "flower.log").open("wb")
    flower = subprocess.Popen(flower_argv(port, "127.0.0.1", AUTH, None, None, 1000),
                              env={**os.environ, **ops.env}, stdout=log,
                              stderr=subprocess.STDOUT, cwd=ops.tmp, start_new_session=True)
    try:
        wait_for("Flower to answer", lambda: _answers(port), 60)
        ops.start_worker()
        ops.client.send_task("bridge.run_job", args=["billing-nightly", SLOT], queue="bridge")
        ops.client.send_task("bridge.run_job", args=["other-job", SLOT], queue="bridge")
        wait_for("the run", lambda: lines(out) == ["ran"])

        def found() -> list[dict[str, Any]]:
            tasks = api_tasks(port, "args:billing-nightly")
            return [t for t in tasks.values() if t.get("state") == "SUCCESS"]

        [task] = wait_for("Flower to list the finished task", found, 30)
        assert task["name"] == "bridge.run_job"
        assert "billing-nightly" in task["args"] and SLOT in task["args"]
        assert all("other-job" not in t["args"] for t in api_tasks(port, "billing").values())
        assert _status(port, "/api/tasks") == 401  # the API is behind the basic auth
    finally:
        os.killpg(flower.pid, signal.SIGTERM)
        flower.wait(timeout=20)
        log.close()


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False
