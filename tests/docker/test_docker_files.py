"""No Docker engine here: check what can be checked — the files parse, every COPY source exists,
and every command the services run exists and accepts its arguments."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def test_compose_has_the_stack_with_healthchecks() -> None:
    services = compose()["services"]
    assert {"redis", "postgres", "migrate", "worker", "beat", "flower"} <= set(services)
    for name in ("redis", "postgres", "worker", "beat", "flower"):
        assert "healthcheck" in services[name], name
    for name in ("worker", "beat", "flower", "migrate"):
        env = services[name]["environment"]
        assert env["BRIDGE_REDIS_URL"] == "redis://redis:6379/0"
        assert env["BRIDGE_DATABASE_URL"].startswith("postgresql://")


def test_flower_requires_basic_auth_given_through_its_environment() -> None:
    flower = compose()["services"]["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].endswith(":?set FLOWER_PASSWORD}")
    assert not any("PASSWORD" in arg or "auth" in arg for arg in _argv(flower))  # not in argv


def test_dockerfile_copies_existing_paths_and_runs_the_console_script() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for line in lines:
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src
    assert 'ENTRYPOINT ["bridge"]' in lines
    assert 'bridge = "bridge.cli.main:run"' in (ROOT / "pyproject.toml").read_text()


def _argv(service: dict) -> list[str]:  # type: ignore[type-arg]
    return list(service.get("entrypoint") or ["bridge"]) + list(service.get("command") or [])


@pytest.mark.integration
@pytest.mark.parametrize("name", ["migrate", "worker", "beat", "flower"])
def test_service_commands_exist_and_accept_their_arguments(name: str) -> None:
    argv = _argv(compose()["services"][name])
    argv = [a for a in argv if not a.startswith("--basic-auth")]
    exe = shutil.which(argv[0], path=str(Path(sys.executable).parent))
    assert exe, f"{argv[0]} is not installed next to {sys.executable}"
    if argv[0] == "celery":
        # celery parses -A and the sub-command's options before --help
        r = subprocess.run([exe, *argv[1:], "--help"], capture_output=True, text=True, timeout=120)
    else:
        r = subprocess.run([exe, *argv[1:], "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
