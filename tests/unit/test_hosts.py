"""Host identity (bridge.core.hosts) and the host on the job spec."""

from __future__ import annotations

import pytest

from bridge.core.errors import SpecError
from bridge.core.hosts import check_host, host_problem, is_qualified, qualify
from bridge.core.spec import CommandHandler, JobSpec, ScheduleSpec, SourceLocation


def _spec(source: SourceLocation) -> JobSpec:
    return JobSpec(
        id="etc-cron.d-backup-1",
        schedule=ScheduleSpec(dialect="vixie", expression="0 3 * * *"),
        handler=CommandHandler(command="/usr/local/bin/backup", user="root"),
        source=source,
    )


@pytest.mark.parametrize("name", ["web-01", "db_2.eu.example.com", "H1", "a"])
def test_host_names_usable_in_ids_keys_files_and_queues_are_accepted(name: str) -> None:
    assert check_host(name) == name
    assert host_problem(name) is None


@pytest.mark.parametrize(
    "name", ["", "-web", "web-", "web..01", "web/01", "web 01", "web@01", "x" * 81, ".web"]
)
def test_host_names_that_break_an_id_or_a_path_are_refused(name: str) -> None:
    with pytest.raises(SpecError, match="bad host"):
        check_host(name)


def test_an_inventory_id_is_the_host_then_the_id_on_that_host() -> None:
    assert qualify("web-01", "etc-cron.d-backup-1") == "web-01.etc-cron.d-backup-1"
    # an id that already names its host (a rewritten file's BRIDGE_JOB) is kept
    assert qualify("web-01", "web-01.etc-cron.d-backup-1") == "web-01.etc-cron.d-backup-1"
    assert is_qualified("web-01", "web-01.x-1") and not is_qualified("web-01", "web-012.x-1")


def test_a_spec_without_host_keeps_its_json_and_hash() -> None:
    bare = _spec(SourceLocation(file="/etc/cron.d/backup", line=1))
    assert "host" not in bare.to_json()["source"]
    assert bare.host is None
    hosted = _spec(SourceLocation(file="/etc/cron.d/backup", line=1, host="web-01"))
    assert hosted.host == "web-01"
    assert hosted.to_json()["source"]["host"] == "web-01"
    assert hosted.spec_hash() != bare.spec_hash()
    assert JobSpec.from_json(hosted.to_json()) == hosted


def test_a_spec_with_a_bad_host_is_refused() -> None:
    with pytest.raises(SpecError, match="bad host 'a/b'"):
        _spec(SourceLocation(file="/etc/crontab", host="a/b"))
