"""Reading a fleet inventory: families, zones, which files each host's cron reads, cronie's
dialect, and errors that name host/file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.core.errors import InputError
from bridge.core.spec import Dialect
from crontab_import import inventory as inv
from crontab_import.crontab import parse_crontab
from crontab_import.inventory_fs import read_inventory
from crontab_import.model import ItemStatus
from tests.importers.fleet_tree import ALPINE, DEBIAN, ROCKY, UBUNTU, host

BACKUP = "0 3 * * * root /usr/local/bin/backup\n"


def read(root: Path, **kw: object) -> inv.Inventory:
    opts: dict[str, object] = {"check_owner": False, "max_bytes": 1 << 20, "max_lines": 10_000,
                               "default_zone": None}
    opts.update(kw)
    return read_inventory(str(root), **opts)  # type: ignore[arg-type]


def only_host(inventory: inv.Inventory) -> inv.HostReading:
    [reading] = inventory.hosts
    return reading


# --- families -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "family"),
    [(DEBIAN, inv.Family.DEBIAN), (UBUNTU, inv.Family.DEBIAN), (ROCKY, inv.Family.RHEL),
     ('ID="almalinux"\nID_LIKE="rhel centos fedora"\n', inv.Family.RHEL),
     ("ID=linuxmint\nID_LIKE='ubuntu debian'\n", inv.Family.DEBIAN), (ALPINE, None),
     ('ID="opensuse-leap"\nID_LIKE="suse opensuse"\n', None)],
)
def test_the_family_comes_from_os_release_id_and_id_like(text: str, family: object) -> None:
    assert inv.family_of(inv.parse_os_release(text)) == family


def test_a_host_of_another_family_is_refused_naming_its_os_release(tmp_path: Path) -> None:
    host(tmp_path, "edge-1", os_release=ALPINE, files={"etc/crontabs/root": "* * * * * x\n"})
    reading = only_host(read(tmp_path))
    assert reading.facts is None
    [error] = reading.errors
    assert str(error).startswith("edge-1/etc/os-release: ID 'alpine'")
    assert "Debian cron" in error.message and "cronie" in error.message


def test_a_host_without_os_release_is_an_error(tmp_path: Path) -> None:
    host(tmp_path, "web-01", os_release=None, files={"etc/cron.d/backup": BACKUP})
    [error] = only_host(read(tmp_path)).errors
    assert str(error) == (
        "web-01/etc/os-release: missing: the host's family (and so its cron) is unknown"
    )


# --- zones ----------------------------------------------------------------------------------


def test_the_zone_is_the_localtime_link_target(tmp_path: Path) -> None:
    host(tmp_path, "web-01", zone="America/New_York", zone_as="link")
    facts = only_host(read(tmp_path)).facts
    assert facts is not None and facts.zone == inv.Zone("America/New_York", "etc/localtime")


def test_the_zone_is_etc_timezone_when_there_is_no_link(tmp_path: Path) -> None:
    host(tmp_path, "web-01", zone="Asia/Tokyo", zone_as="file")
    facts = only_host(read(tmp_path)).facts
    assert facts is not None and facts.zone == inv.Zone("Asia/Tokyo", "etc/timezone")


def test_a_disagreeing_etc_timezone_loses_to_the_link_and_the_plan_says_so() -> None:
    zone, notes, problem = inv.host_zone("Europe/Berlin\n", "../usr/share/zoneinfo/UTC", None)
    assert problem is None and zone == inv.Zone("UTC", "etc/localtime")
    assert notes == ("etc/timezone says 'Europe/Berlin' but etc/localtime links to 'UTC': cron "
                     "follows etc/localtime, so jobs run in UTC",)


def test_posix_zones_are_the_zone_and_right_zones_are_refused() -> None:
    zone, _, _ = inv.host_zone(None, "/usr/share/zoneinfo/posix/Europe/Paris", None)
    assert zone == inv.Zone("Europe/Paris", "etc/localtime")
    zone, _, problem = inv.host_zone(None, "/usr/share/zoneinfo/right/Europe/Paris", None)
    assert zone is None and problem is not None and "leap-second" in problem


def test_an_unknown_zone_is_an_error_naming_the_host_and_file(tmp_path: Path) -> None:
    host(tmp_path, "web-01", zone="Mars/Base", zone_as="file")
    [error] = only_host(read(tmp_path)).errors
    assert str(error) == "web-01/etc/timezone: etc/timezone names an unknown zone 'Mars/Base'"


def test_a_host_without_zone_needs_timezone_and_then_says_it_was_assumed(tmp_path: Path) -> None:
    host(tmp_path, "web-01", zone=None)
    [error] = only_host(read(tmp_path)).errors
    assert "zone is unknown" in error.message and error.host == "web-01"
    reading = only_host(read(tmp_path, default_zone="UTC"))
    assert reading.facts is not None and reading.facts.zone == inv.Zone("UTC", "--timezone")
    assert any("--timezone UTC assumed" in n for n in reading.notes)


# --- which files ----------------------------------------------------------------------------


def test_a_debian_host_reads_crontab_cron_d_and_the_crontabs_spool(tmp_path: Path) -> None:
    host(tmp_path, "web-01", files={
        "etc/crontab": "17 * * * * root cd / && run-parts --report /etc/cron.hourly\n",
        "etc/cron.d/backup": BACKUP,
        "var/spool/cron/crontabs/alice": "5 4 * * * /home/alice/report\n",
        "var/spool/cron/crontabs/.hidden": "5 4 * * * x\n",
        "var/spool/cron/bob": "5 4 * * * /home/bob/x\n",
        "etc/anacrontab": "1 5 cron.daily run-parts /etc/cron.daily\n",
    })
    reading = only_host(read(tmp_path))
    assert [f.path for f in reading.files] == [
        "/etc/crontab", "/etc/cron.d/backup", "/var/spool/cron/crontabs/alice"]
    notes = "\n".join(reading.notes)
    assert "web-01/var/spool/cron/bob: not read by Debian cron" in notes
    assert "web-01/var/spool/cron/crontabs/.hidden: a dot file" in notes
    assert "web-01/etc/anacrontab: not a crontab" in notes


def test_a_rhel_host_reads_the_cronie_spool_and_skips_what_cronie_skips(tmp_path: Path) -> None:
    host(tmp_path, "db-01", os_release=ROCKY, files={
        "etc/cron.d/0hourly": "01 * * * * root run-parts /etc/cron.hourly\n",
        "etc/cron.d/backup.sh": BACKUP,
        "etc/cron.d/backup.rpmnew": BACKUP,
        "etc/cron.d/old~": BACKUP,
        "var/spool/cron/alice": "5 4 * * * /home/alice/report\n",
    })
    reading = only_host(read(tmp_path))
    assert reading.facts is not None and reading.facts.family.dialect is Dialect.CRONIE
    assert [f.path for f in reading.files] == [
        "/etc/cron.d/0hourly", "/etc/cron.d/backup.sh", "/var/spool/cron/alice"]
    assert sum("cronie skips names" in n for n in reading.notes) == 2
    results = inv.host_results(reading)
    statuses = {i.source.file: i.status for r in results for i in r.items}
    # backup.sh: Debian would never read it, cronie does
    assert statuses["/etc/cron.d/backup.sh"] is ItemStatus.OK
    assert {i.job.schedule.dialect for r in results for i in r.items if i.job} == {Dialect.CRONIE}


def test_a_symlink_in_a_host_folder_stays_inside_the_folder(tmp_path: Path) -> None:
    folder = host(tmp_path, "web-01", files={"opt/app/cron": BACKUP})
    (folder / "etc" / "cron.d").mkdir()
    (folder / "etc" / "cron.d" / "app").symlink_to("/opt/app/cron")  # host-absolute
    # on the host this is /etc/passwd: never this machine's, and not in the folder
    (folder / "etc" / "cron.d" / "other").symlink_to("../../../../etc/passwd")
    reading = only_host(read(tmp_path))
    assert [f.path for f in reading.files] == ["/etc/cron.d/app"]
    assert reading.files[0].data == BACKUP.encode()
    assert ("web-01/etc/cron.d/other: a link to ../../../../etc/passwd, which this host's "
            "folder does not hold: not read") in reading.notes


def test_inventory_limits_count_every_file_of_every_host(tmp_path: Path) -> None:
    for name in ("web-01", "web-02", "web-03"):
        host(tmp_path, name, files={"etc/cron.d/backup": BACKUP * 4})
    read(tmp_path, max_lines=12)  # 3 hosts x 4 lines: within the total
    with pytest.raises(InputError, match="more than --max-lines 11") as caught:
        read(tmp_path, max_lines=11)
    assert caught.value.file == "web-03/etc/cron.d/backup"
    with pytest.raises(InputError, match="larger than --max-bytes"):
        read(tmp_path, max_bytes=len(BACKUP) * 8)


def test_a_bad_folder_name_is_an_error_and_only_named_hosts_are_read(tmp_path: Path) -> None:
    host(tmp_path, "web 01")
    host(tmp_path, "web-02")
    inventory = read(tmp_path)
    assert inventory.readable_hosts == ("web-02",)
    assert "folder name is not a host name" in str(inventory.errors[0])
    assert read(tmp_path, only=frozenset({"web-02"})).readable_hosts == ("web-02",)
    with pytest.raises(InputError, match="no folder for host"):
        read(tmp_path, only=frozenset({"web-09"}))


# --- ids and locations ----------------------------------------------------------------------


def test_jobs_get_host_ids_and_errors_name_host_file_and_line(tmp_path: Path) -> None:
    host(tmp_path, "web-01", files={"etc/cron.d/backup": BACKUP + "61 * * * * root x\n"})
    [result] = inv.host_results(only_host(read(tmp_path)))
    [qualified] = inv.qualify_results([result])
    first, bad = qualified.items
    assert first.id == "web-01.etc-cron.d-backup-1"
    assert first.job is not None and first.job.host == "web-01"
    assert first.job.source.file == "/etc/cron.d/backup"
    assert bad.id == "web-01.etc-cron.d-backup-2"
    assert [str(e) for e in qualified.errors] == [
        "web-01/etc/cron.d/backup:2: minute 61 out of range 0-59 in '61'"]


def test_a_file_the_registry_holds_under_bare_ids_keeps_them() -> None:
    bare = inv.bare_sources({("web-01", "/etc/cron.d/backup"): {"etc-cron.d-backup-1"},
                             ("web-02", "/etc/cron.d/backup"): {"web-02.etc-cron.d-backup-1"}})
    assert bare == frozenset({("web-01", "/etc/cron.d/backup")})


# --- cronie ---------------------------------------------------------------------------------


def cronie(text: str, file: str = "/etc/cron.d/app") -> list[tuple[int | None, str, str | None]]:
    result = parse_crontab(text, file=file, timezone="UTC", dialect="cronie")
    return [(i.source.line, i.status.value, i.reason) for i in result.items]


def test_cronie_random_delay_refuses_the_lines_below_it_only_while_it_is_set() -> None:
    rows = cronie("0 1 * * * root a\nRANDOM_DELAY=30\n0 2 * * * root b\nRANDOM_DELAY=0\n"
                  "0 3 * * * root c\n")
    assert rows[0][1] == "ok" and rows[2][1] == "ok"
    assert rows[1][:2] == (3, "unsupported")
    assert rows[1][2] is not None and rows[1][2].startswith("RANDOM_DELAY=30 (line 2)")


def test_cronie_bad_random_delay_values_mean_no_delay_as_in_cronie() -> None:
    for value in ("abc", "-5", "2000", "0"):
        assert cronie(f"RANDOM_DELAY={value}\n0 2 * * * root b\n")[0][1] == "ok", value


def test_cronie_random_ranges_are_refused_with_their_line() -> None:
    rows = cronie("0~30 2 * * * root b\n15 3 * * * root c\n")
    assert rows[0][:2] == (1, "unsupported") and "random value" in (rows[0][2] or "")
    assert rows[1][1] == "ok"


def test_cronie_dash_lines_are_exact_in_system_files_and_refused_for_other_users() -> None:
    [(_, status, _)] = cronie("-*/5 * * * * root /usr/bin/quiet\n")
    assert status == "ok"
    result = parse_crontab("-*/5 * * * * /bin/x\n", file="/var/spool/cron/alice",
                           timezone="UTC", dialect="cronie")
    assert [str(e) for e in result.errors] == [
        "/var/spool/cron/alice:1: bad option: only system crontabs and root's crontab may "
        "start a line with '-' (cronie rejects this line)"]
    root = parse_crontab("-*/5 * * * * /bin/x\n", file="/var/spool/cron/root", timezone="UTC",
                         dialect="cronie")
    assert root.items[0].status is ItemStatus.OK
    assert root.items[0].job is not None and root.items[0].job.schedule.expression == "*/5 * * * *"


def test_cronie_skips_only_the_bad_line_where_debian_ignores_the_whole_file() -> None:
    text = "0 1 * * * root a\n61 * * * * root b\n0 3 * * * root c\n"
    assert [r[1] for r in cronie(text)] == ["ok", "error", "ok"]
    debian = parse_crontab(text, file="/etc/cron.d/app", timezone="UTC", dialect="vixie")
    assert [i.status.value for i in debian.items] == ["inactive", "error", "inactive"]


def test_cronie_skips_a_last_line_without_newline() -> None:
    assert [r[1] for r in cronie("0 1 * * * root a\n0 2 * * * root b")] == ["ok", "error"]


def test_cronie_reads_cron_d_names_debian_ignores_and_ignores_its_own_skips() -> None:
    assert cronie(BACKUP, "/etc/cron.d/backup.sh")[0][1] == "ok"
    [(_, status, reason)] = cronie(BACKUP, "/etc/cron.d/backup.rpmsave")
    assert status == "inactive" and reason is not None and "ignored by cronie" in reason


def test_check_owner_applies_each_familys_own_trust_rules(tmp_path: Path) -> None:
    import os

    spool = "30 6 * * * /bin/report\n"
    deb = host(tmp_path, "web-01", files={"var/spool/cron/crontabs/root": spool})
    rhel = host(tmp_path, "db-01", os_release=ROCKY, files={"var/spool/cron/root": spool,
                                                             "etc/cron.d/app": BACKUP})
    os.chmod(deb / "var/spool/cron/crontabs/root", 0o644)
    os.chmod(rhel / "var/spool/cron/root", 0o644)  # cronie reads it; Debian wants 0600
    os.chmod(rhel / "etc/cron.d/app", 0o664)
    readings = {h.host: h for h in read(tmp_path, check_owner=True).hosts}
    [debian_spool] = readings["web-01"].files
    assert (debian_spool.trust.refused, debian_spool.trust.checked) == ("INSECURE MODE", True)
    trust = {f.path: f.trust for f in readings["db-01"].files}
    assert trust["/var/spool/cron/root"].refused is None
    assert trust["/var/spool/cron/root"].checked
    assert trust["/etc/cron.d/app"].refused == "BAD FILE MODE"
    statuses = {i.source.file: i.status for r in inv.host_results(readings["db-01"])
                for i in r.items}
    assert statuses == {"/etc/cron.d/app": ItemStatus.INACTIVE,
                        "/var/spool/cron/root": ItemStatus.OK}
