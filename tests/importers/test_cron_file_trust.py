"""Cron's file-trust rules on import (issue 15.2), and their fidelity to the real daemon.

The fidelity test runs Debian's cron daemon (root, a private mount namespace: see
``cron_trust_harness.py``) over files with the owners, modes and links below, reads which it
refused and with which words (its syslog), waits for the minute to see which ran, and checks
that :func:`crontab_import.filetrust.read_source` refuses exactly those files with the same
words."""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

import pytest

from bridge.core.spec import SourceKind
from crontab_import.crontab import parse_file
from crontab_import.filetrust import read_source
from tests.importers import cron_trust_harness as harness

pytestmark = pytest.mark.integration  # the real cron daemon is the oracle

NEEDS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


def _make(path: Path, text: str, owner: str, mode: int) -> Path:
    path.write_text(text)
    pw = pwd.getpwnam(owner)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, mode)
    return path


def env_for(redis_url: str, db_url: str) -> dict[str, str]:
    return {"BRIDGE_REDIS_URL": redis_url, "BRIDGE_DATABASE_URL": db_url, "BRIDGE_TIMEZONE": "UTC"}


@NEEDS_ROOT
def test_a_root_crontab_owned_by_nobody_is_inactive_with_crons_reason_and_not_imported(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path
) -> None:
    env = env_for(redis_url, db_url)
    spool = tmp_path / "spool"
    spool.mkdir()
    root_tab = _make(spool / "root", "0 3 * * * /tmp/evil.sh\n", "nobody", 0o666)
    for extra in ([], ["--include-inactive"]):
        r = cli("import", "crontab", str(root_tab), "--check-owner", "--json", *extra, env=env)
        assert r.code == 0, r.err
        doc = r.json()
        [job] = doc["jobs"]
        assert job["status"] == "inactive"
        assert job["reason"] == (
            "cron refuses this file: WRONG FILE OWNER (owned by nobody; a user crontab must "
            "be owned by root)"
        )
        assert doc["trust"] == [
            {
                "file": str(root_tab),
                "checked": True,
                "refused": "WRONG FILE OWNER",
                "detail": "owned by nobody; a user crontab must be owned by root",
            }
        ]
        assert doc["applied"] == {"created": 0, "updated": 0, "deleted": 0}
    assert cli("jobs", "list", "--json", env=env).json() == {"jobs": []}


@NEEDS_ROOT
def test_a_group_writable_cron_d_file_is_refused_as_cron_refuses_it(tmp_path: Path) -> None:
    crond = tmp_path / "cron.d"
    crond.mkdir()
    f = _make(crond / "backup", "0 3 * * * root /bin/true\n", "root", 0o664)
    result = parse_file(f, timezone="UTC", check_owner=True)
    [item] = result.items
    assert item.status.value == "inactive"
    assert item.reason == (
        "cron refuses this file: INSECURE MODE (mode 0664 is group/other writable)"
    )
    assert item.details["refused_by_cron"] == "INSECURE MODE"


def test_a_copy_is_imported_with_a_warning_that_ownership_was_not_verified(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path
) -> None:
    env = env_for(redis_url, db_url)
    copy = tmp_path / "alice"
    copy.write_text("0 3 * * * /bin/true\n")
    os.chmod(copy, 0o666)
    r = cli("import", "crontab", str(copy), "--json", env=env)
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["jobs"][0]["status"] == "create"
    assert doc["trust"] == [
        {
            "file": str(copy),
            "checked": False,
            "refused": None,
            "detail": "ownership and mode not verified: a copy outside /etc/crontab, "
            "/etc/cron.d and /var/spool/cron/crontabs (pass --check-owner if it kept its "
            "owner and mode)",
        }
    ]
    r = cli("import", "crontab", str(copy), "--dry-run", env=env)
    assert f"warning: {copy}: ownership and mode not verified" in r.err.replace("\n", " ")


# --- fidelity to the real daemon -------------------------------------------------------------


def _case(
    name: str, where: str, owner: str, mode: int, file: str | None = None, link: str | None = None
) -> dict[str, Any]:
    return {"name": name, "where": where, "owner": owner, "mode": mode, "file": file, "link": link}


CASES: list[dict[str, Any]] = [
    # cron.d: owner root, not group/other writable, one link; symlinks followed
    _case("cd_ok", "cron.d", "root", 0o644),
    _case("cd_ok_0600", "cron.d", "root", 0o600),
    _case("cd_nobody", "cron.d", "nobody", 0o644),
    _case("cd_0664", "cron.d", "root", 0o664),
    _case("cd_0646", "cron.d", "root", 0o646),
    _case("cd_hard", "cron.d", "root", 0o644, link="hard"),
    _case("cd_sym_nobody", "cron.d", "nobody", 0o644, link="symlink"),
    _case("cd_sym_ok", "cron.d", "root", 0o644, link="symlink"),
    # spool: named user or root, exactly 0600, one link, no symlink, a passwd user
    _case("sp_ok", "spool", "daemon", 0o600, "daemon"),
    _case("sp_root", "spool", "root", 0o600, "bin"),
    _case("sp_nobody", "spool", "nobody", 0o600, "sys"),
    _case("sp_0644", "spool", "games", 0o644, "games"),
    _case("sp_0400", "spool", "man", 0o400, "man"),
    _case("sp_hard", "spool", "mail", 0o600, "mail", link="hard"),
    _case("sp_sym", "spool", "news", 0o600, "news", link="symlink"),
    _case("sp_orphan", "spool", "root", 0o600, "nosuchuser"),
]


def _cron_word(log: list[str], case: dict[str, Any]) -> str | None:
    """The refusal cron logged for this case's file (None: it did not refuse it)."""
    file = case.get("file") or case["name"]
    tag = {"cron.d": f"(*system*{file})", "crontab": "(*system*)"}.get(case["where"], f"({file})")
    for line in log:
        if tag in line and "CMD" not in line and "END" not in line and "INFO" not in line:
            message = line.split(f"{tag} ", 1)[1]
            for word in (
                "WRONG FILE OWNER",
                "INSECURE MODE",
                "NUMBER OF HARD LINKS > 1",
                "CAN'T OPEN",
                "ORPHAN",
            ):
                if message.startswith(word):
                    return word
            return message
    return None


def _bridge_word(case: dict[str, Any], where: Path) -> str | None:
    """Build the same file outside the namespace and ask the importer."""
    file = case.get("file") or case["name"]
    pw = pwd.getpwnam(case["owner"])
    real = where / (f".target-{file}" if case.get("link") == "symlink" else file)
    real.write_text(harness._job_line(case, where))
    os.chown(real, pw.pw_uid, pw.pw_gid)
    os.chmod(real, case["mode"])
    path = where / file
    if case.get("link") == "hard":
        os.link(real, where / f".hardlink-{file}")
    if case.get("link") == "symlink":
        os.symlink(real, path)
    kind = {"cron.d": SourceKind.CRON_D, "crontab": SourceKind.SYSTEM_CRONTAB}.get(
        case["where"], SourceKind.USER_CRONTAB
    )
    user = file if kind is SourceKind.USER_CRONTAB else None
    _, trust = read_source(str(path), kind=kind, user=user, check_owner=True, max_bytes=1 << 20)
    return trust.refused


@pytest.mark.slow(seconds=50)
@pytest.mark.skipif(harness.available() is not None, reason=str(harness.available()))
def test_importer_refuses_exactly_the_files_the_real_cron_daemon_refuses(tmp_path: Path) -> None:
    result = harness.run_cron(CASES, tmp_path / "cron", wait_minute=True, control="cd_ok")
    ran = set(result["ran"])
    mine = {"cron.d": tmp_path / "mine-cron.d", "spool": tmp_path / "mine-spool"}
    for d in mine.values():
        d.mkdir()
    seen = []
    for case in CASES:
        cron_word = _cron_word(result["log"], case)
        bridge_word = _bridge_word(case, mine[case["where"]])
        seen.append((case["name"], cron_word, bridge_word, case["name"] in ran))
    wrong = [s for s in seen if s[1] != s[2] or s[3] != (s[1] is None)]
    assert wrong == [], (wrong, result["ran"])
    refused = {w for _, w, _, _ in seen}
    assert {
        "WRONG FILE OWNER",
        "INSECURE MODE",
        "NUMBER OF HARD LINKS > 1",
        "CAN'T OPEN",
        "ORPHAN",
        None,
    } <= refused


@pytest.mark.skipif(harness.available() is not None, reason=str(harness.available()))
@pytest.mark.parametrize(
    "case",
    [
        _case("ec_nobody", "crontab", "nobody", 0o644),
        _case("ec_0666", "crontab", "root", 0o666),
        _case("ec_hard", "crontab", "root", 0o644, link="hard"),
        _case("ec_ok", "crontab", "root", 0o600),
    ],
    ids=lambda c: c["name"],
)
def test_etc_crontab_refusals_match_the_real_daemon(case: dict[str, Any], tmp_path: Path) -> None:
    """cron logs its refusals when it loads the files: no minute to wait for here."""
    result = harness.run_cron([case], tmp_path / "cron", wait_minute=False)
    mine = tmp_path / "mine"
    mine.mkdir()
    assert _bridge_word(case, mine) == _cron_word(result["log"], case), result["log"]
