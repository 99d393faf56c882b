"""`bridge legacy rewrite`: only inserted lines, original bytes intact, transparent to import."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from crontab_import.crontab import parse_crontab
from legacy_wrappers.rewrite import DEFAULT_SHIM, check, rewrite, strip_inserted

ROOT = Path(__file__).resolve().parents[2]
ALICE = (ROOT / "examples" / "crontab" / "alice").read_text()
FILE = "/var/spool/cron/crontabs/alice"


def ids_of(text: str) -> list[str]:
    r = parse_crontab(text, file=FILE, timezone="UTC")
    return [i.id for i in r.items if i.job is not None and i.status.value == "ok"]  # type: ignore[misc]


def test_rewrite_only_inserts_lines_and_keeps_every_original_byte() -> None:
    managed = ids_of(ALICE)
    result = rewrite(ALICE, file=FILE, managed_ids=managed)
    new_lines = result.text.split("\n")
    original = ALICE.split("\n")
    it = iter(new_lines)
    assert all(any(line == candidate for candidate in it) for line in original)
    inserted = [
        line
        for line in new_lines
        if line.startswith(("BRIDGE_", "SHELL=")) and line not in original
    ]
    assert f"SHELL={DEFAULT_SHIM}" in inserted
    assert strip_inserted(result.text) == ALICE
    assert sorted(result.managed) == sorted(managed)


def test_rewritten_file_parses_to_the_same_jobs() -> None:
    before = parse_crontab(ALICE, file=FILE, timezone="UTC")
    after = parse_crontab(
        rewrite(ALICE, file=FILE, managed_ids=ids_of(ALICE)).text, file=FILE, timezone="UTC"
    )
    assert [(i.id, i.status, i.job) for i in after.items] != []
    assert [(i.id, i.status, i.job.handler if i.job else None) for i in after.items] == [
        (i.id, i.status, i.job.handler if i.job else None) for i in before.items
    ]
    assert after.errors == before.errors


def test_rewrite_is_idempotent() -> None:
    once = rewrite(ALICE, file=FILE, managed_ids=ids_of(ALICE)).text
    assert rewrite(once, file=FILE, managed_ids=ids_of(ALICE)).text == once


def test_shell_set_midway_is_captured_and_rerouted() -> None:
    text = "0 1 * * * echo a\nSHELL=/bin/bash\n0 2 * * * echo b\n@reboot echo c\n"
    out = rewrite(text, file=FILE, managed_ids=["alice-crontab-1", "alice-crontab-2"]).text
    assert out.split("\n") == [
        "BRIDGE_SHELL=/bin/sh",
        f"SHELL={DEFAULT_SHIM}",
        "BRIDGE_JOB=alice-crontab-1",
        "0 1 * * * echo a",
        "SHELL=/bin/bash",
        "BRIDGE_SHELL=/bin/bash",
        f"SHELL={DEFAULT_SHIM}",
        "BRIDGE_JOB=alice-crontab-2",
        "0 2 * * * echo b",
        'BRIDGE_JOB=""',
        "@reboot echo c",
        "",
    ]
    job = parse_crontab(out, file=FILE, timezone="UTC").items[1].job
    assert job is not None and job.handler.shell == "/bin/bash"  # type: ignore[union-attr]
    assert "BRIDGE_JOB" not in dict(job.handler.env)  # type: ignore[union-attr]


def test_check_reports_edited_commands_schedules_and_unrouted_jobs() -> None:
    text = "0 1 * * * echo a\n0 2 * * * echo b\n0 3 * * * echo c\n"
    registry = {i.id: i.job for i in parse_crontab(text, file=FILE, timezone="UTC").items}
    installed = rewrite(text, file=FILE, managed_ids=["alice-crontab-1", "alice-crontab-2"]).text
    assert check(
        installed, file=FILE, registry={k: v for k, v in registry.items() if k != "alice-crontab-3"}
    ).ok  # type: ignore[misc]
    edited = installed.replace("echo a", "echo A").replace("0 2 * * *", "5 2 * * *")
    drift = check(edited, file=FILE, registry=registry)  # type: ignore[arg-type]
    assert {(d.job_id, d.what) for d in drift.drift} == {
        ("alice-crontab-1", "command"),
        ("alice-crontab-2", "schedule"),
        ("alice-crontab-3", "not-routed"),
    }
    gone = installed.replace("0 2 * * * echo b\n", "")
    assert ("alice-crontab-2", "missing") in {
        (d.job_id, d.what) for d in check(gone, file=FILE, registry=registry).drift
    }  # type: ignore[arg-type]


@pytest.mark.integration
def test_debian_crontab_accepts_the_rewritten_file(tmp_path: Path) -> None:
    crontab = shutil.which("crontab")
    if crontab is None:
        pytest.skip("Debian's cron package is not installed")
    path = tmp_path / "rewritten"
    path.write_text(rewrite(ALICE, file=FILE, managed_ids=ids_of(ALICE)).text)
    try:
        r = subprocess.run(
            [crontab, "-u", "nobody", str(path)], capture_output=True, text=True, timeout=30
        )
        assert r.returncode == 0, r.stderr
    finally:
        subprocess.run([crontab, "-u", "nobody", "-r"], capture_output=True, timeout=30)
