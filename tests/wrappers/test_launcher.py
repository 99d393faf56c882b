"""The shim's fast launcher is what a rewritten crontab gets: written (or found current) at a
path pip never rewrites, refreshed when it is stale, and named by ``bridge legacy rewrite``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from legacy_wrappers import launcher


def test_the_default_launcher_lives_under_the_prefix_outside_pips_directories() -> None:
    target = launcher.default_target()
    assert target == os.path.join(sys.prefix, "libexec", "cron-bridge", "bridge-cron-shell")
    assert os.path.dirname(target) not in {os.path.dirname(sys.executable),
                                            *launcher.search_path()}


def test_ensure_writes_a_missing_launcher_keeps_a_current_one_and_refreshes_a_stale_one(
    tmp_path: Path,
) -> None:
    target = tmp_path / "libexec" / "cron-bridge" / "bridge-cron-shell"
    assert launcher.ensure(str(target)) == str(target)  # the directory is created too
    want = launcher.launcher_text(sys.executable, launcher.search_path())
    assert target.read_text() == want and os.access(target, os.X_OK)
    inode = target.stat().st_ino
    assert launcher.ensure(str(target)) == str(target)
    assert target.stat().st_ino == inode  # current: not rewritten
    target.write_text(want.replace(sys.executable, "/old/venv/bin/python"))  # a moved install
    launcher.ensure(str(target))
    assert target.read_text() == want and target.stat().st_ino != inode
    os.chmod(target, 0o644)  # not executable: rewritten
    launcher.ensure(str(target))
    assert os.access(target, os.X_OK)


def test_the_module_writes_the_default_launcher_without_a_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "libexec" / "bridge-cron-shell"
    monkeypatch.setattr(launcher, "default_target", lambda: str(target))
    assert launcher.main([]) == 0
    assert capsys.readouterr().out == f"{target}\n" and target.exists()


def test_rewrite_without_shim_points_shell_at_the_launcher_it_wrote(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path, monkeypatch
) -> None:
    from tests.cli.test_cli_import import env_for

    target = tmp_path / "prefix" / "libexec" / "cron-bridge" / "bridge-cron-shell"
    monkeypatch.setattr(launcher, "default_target", lambda: str(target))
    env = env_for(redis_url, db_url)
    src = tmp_path / "ops"
    src.write_text("0 5 * * * /bin/echo one\n")
    assert cli("import", "crontab", str(src), "--user", "ops", env=env).code == 0
    installed = tmp_path / "installed"
    r = cli("legacy", "rewrite", str(src), "--out", str(installed), "--json", env=env)
    assert r.code == 0, r.err
    assert r.json()["shim"] == str(target)
    assert f"SHELL={target}\nBRIDGE_JOB=ops-crontab-1\n" in installed.read_text()
    assert target.read_text() == launcher.launcher_text(sys.executable, launcher.search_path())


def test_rewrite_falls_back_to_the_console_script_when_the_launcher_cannot_be_written(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path, monkeypatch
) -> None:
    from tests.cli.test_cli_import import env_for

    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(launcher, "default_target", lambda: str(blocker / "bridge-cron-shell"))
    env = env_for(redis_url, db_url)
    src = tmp_path / "ops"
    src.write_text("0 5 * * * /bin/echo one\n")
    assert cli("import", "crontab", str(src), "--user", "ops", env=env).code == 0
    r = cli("legacy", "rewrite", str(src), "--out", str(tmp_path / "installed"), "--json",
            env=env)
    assert r.code == 0, r.err
    assert "cannot write the shim's fast launcher" in r.err
    assert os.path.basename(r.json()["shim"]) == "bridge-cron-shell"
    assert "libexec" not in r.json()["shim"]
