"""Authority files: the on-disk answer to "who owns slot S of job J?"."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.authority import AuthorityEvent, Owner, owner_at
from bridge.services import authority_files as af

T0 = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def event(slot: datetime | None, owner: str) -> AuthorityEvent:
    return AuthorityEvent("job-1", slot, Owner(owner), "t", None, False, T0)


def test_round_trip_keeps_timeline_and_schedule(tmp_path: Path) -> None:
    schedule = {"dialect": "vixie", "expression": "0 */12 * * *", "timezone": "UTC"}
    authority = af.resolve("etc-cron.d-certbot-1", [(None, "legacy"), (T0, "celery")], schedule)
    assert af.write(tmp_path, authority) is True
    back = af.read(tmp_path, "etc-cron.d-certbot-1")
    assert back == authority and back is not None and back.schedule == schedule
    assert back.owner_at(T0 - timedelta(seconds=1)) == "legacy"
    assert back.owner_at(T0) == "celery"


def test_file_text_is_line_based_with_a_version_header(tmp_path: Path) -> None:
    authority = af.resolve("job-1", [(None, "legacy"), (T0, "celery")])
    af.write(tmp_path, authority)
    text = (tmp_path / "job-1.authority").read_text()
    assert text == (
        f"cron-bridge-authority 1\njob job-1\ninitial legacy\n{int(T0.timestamp())} celery\n"
    )
    assert oct((tmp_path / "job-1.authority").stat().st_mode & 0o777) == "0o644"


def test_unchanged_content_is_not_rewritten(tmp_path: Path) -> None:
    authority = af.resolve("job-1", [(None, "legacy")])
    assert af.write(tmp_path, authority) is True
    inode = (tmp_path / "job-1.authority").stat().st_ino
    assert af.write(tmp_path, authority) is False
    assert (tmp_path / "job-1.authority").stat().st_ino == inode


def test_unknown_version_is_refused() -> None:
    with pytest.raises(af.AuthorityFileError, match="not a version 1"):
        af.parse("cron-bridge-authority 2\njob job-1\ninitial legacy\n", where="f")
    with pytest.raises(af.AuthorityFileError, match="not a version 1"):
        af.parse("job job-1\ninitial legacy\n", where="f")


def test_bad_owner_malformed_time_and_unsorted_lines_are_refused() -> None:
    head = "cron-bridge-authority 1\njob job-1\n"
    for body, reason in [("initial nobody\n", "unknown owner"),
                         ("12x celery\n", "malformed"),
                         ("200 celery\n100 legacy\n", "increasing")]:
        with pytest.raises(af.AuthorityFileError, match=reason):
            af.parse(head + body, where="f")


def test_unknown_keyword_lines_and_comments_are_ignored() -> None:
    text = "cron-bridge-authority 1\n# c\njob job-1\nwritten-by quartz\n\ninitial celery\n"
    assert af.parse(text).initial == "celery"


def test_file_naming_another_job_is_refused(tmp_path: Path) -> None:
    af.write(tmp_path, af.resolve("job-2", []))
    os.rename(tmp_path / "job-2.authority", tmp_path / "job-1.authority")
    with pytest.raises(af.AuthorityFileError, match="names job"):
        af.read(tmp_path, "job-1")
    assert af.read(tmp_path, "job-3") is None


def test_write_is_atomic_for_a_concurrent_reader(tmp_path: Path) -> None:
    """A reader polling while the file flips back and forth never sees a partial file."""
    a = af.resolve("job-1", [(None, "legacy")], {"pad": "x" * 20000})
    b = af.resolve("job-1", [(None, "legacy"), (T0, "celery")], {"pad": "y" * 20000})
    af.write(tmp_path, a)
    stop = threading.Event()
    seen: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            got = af.read(tmp_path, "job-1")
            assert got is not None
            seen.append(got.initial + str(len(got.flips)))

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(200):
        af.write(tmp_path, b if i % 2 == 0 else a)
    stop.set()
    thread.join(timeout=10)
    assert seen and set(seen) <= {"legacy0", "legacy1"}
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temp file left


slots = st.integers(min_value=0, max_value=20).map(lambda m: T0 + timedelta(minutes=m))
histories = st.lists(st.tuples(st.one_of(st.none(), slots), st.sampled_from(["legacy", "celery"])),
                     max_size=8)


@settings(max_examples=300, deadline=None)
@given(histories)
def test_resolved_file_answers_like_the_registry_for_every_slot(
    history: list[tuple[datetime | None, str]],
) -> None:
    events = [event(slot, owner) for slot, owner in history]
    back = af.parse(af.render(af.resolve("job-1", history)))
    for minute in range(-1, 22):
        slot = T0 + timedelta(minutes=minute)
        assert back.owner_at(slot) == owner_at(events, slot).value


def test_export_writes_one_file_per_registry_job(tmp_path: Path, sqlite_registry_url: str) -> None:
    from bridge.core.spec import CommandHandler, Dialect, JobSpec, ScheduleSpec, SourceLocation
    from bridge.store.db import Registry
    from bridge.store.repos import AuthorityRepo, JobRepo
    registry = Registry(sqlite_registry_url)
    with registry.session() as s:
        for i in (1, 2):
            JobRepo(s).upsert(JobSpec(
                id=f"job-{i}", schedule=ScheduleSpec(dialect=Dialect.VIXIE, expression="* * * * *"),
                handler=CommandHandler(command="true"), source=SourceLocation("/etc/crontab", i)))
            AuthorityRepo(s).append(f"job-{i}", Owner.LEGACY, effective_slot=None, actor="t",
                                    reason=None)
        AuthorityRepo(s).append("job-2", Owner.CELERY, effective_slot=T0, actor="t", reason=None)
    report = af.export(registry, tmp_path)
    assert sorted(report.written) == ["job-1", "job-2"]
    assert af.export(registry, tmp_path).unchanged == ("job-1", "job-2")
    job2 = af.read(tmp_path, "job-2")
    assert job2 is not None and job2.owner_at(T0) == "celery"
    assert job2.schedule is not None and job2.schedule["expression"] == "* * * * *"
    registry.dispose()


def test_cli_export_json(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`bridge authority export --dir DIR --json` (mounted as in bridge.cli.main)."""
    import json

    import typer
    from typer.testing import CliRunner

    from bridge.cli import authority_cmd, context

    test_export_writes_one_file_per_registry_job(tmp_path / "first", sqlite_url)
    monkeypatch.setenv("BRIDGE_DATABASE_URL", sqlite_url)
    context.STATE.__init__()  # type: ignore[misc]
    root = typer.Typer()
    root.add_typer(authority_cmd.app, name="authority")
    result = CliRunner().invoke(root, ["authority", "export", "--dir", str(tmp_path / "x"),
                                       "--json"])
    context.STATE.close()
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["jobs"] == 2
    assert sorted(os.listdir(tmp_path / "x")) == ["job-1.authority", "job-2.authority"]
