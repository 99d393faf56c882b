"""The fleet plan against a real registry: a host imported before fleets keeps its job ids."""

from __future__ import annotations

from pathlib import Path

from bridge.services.importer import apply_plan, plan_import
from bridge.store.db import Registry
from crontab_import import inventory as inv
from crontab_import.crontab import parse_crontab
from crontab_import.inventory_fs import read_inventory
from tests.importers.fleet_tree import host

BACKUP = "0 3 * * * root /usr/local/bin/backup\n"


def test_a_host_imported_before_fleets_keeps_its_bare_ids(db_url: str, tmp_path: Path) -> None:

    registry = Registry(db_url)
    # what `bridge import crontab --from-host` on web-01 left before fleets
    local = parse_crontab(BACKUP, file="/etc/cron.d/backup", timezone="UTC")
    plan = plan_import(registry, [local], prune=True, include_inactive=False, host="web-01")
    with registry.session() as s:
        apply_plan(plan, s, actor="t")
    [entry] = plan.entries
    assert (entry.id, entry.host) == ("etc-cron.d-backup-1", "web-01")
    for name in ("web-01", "web-02"):
        host(tmp_path, name, zone="UTC", files={"etc/cron.d/backup": BACKUP})
    inventory = read_inventory(str(tmp_path), check_owner=False, max_bytes=1 << 20,
                               max_lines=1000, default_zone=None)
    results = [r for h in inventory.hosts for r in inv.host_results(h)]
    fleet = plan_import(registry, results, prune=True, include_inactive=False,
                        host="importer", fleet_hosts=inventory.readable_hosts)
    assert sorted((e.id, e.host, e.status.value) for e in fleet.entries) == [
        ("etc-cron.d-backup-1", "web-01", "unchanged"),  # not deleted and re-created
        ("web-02.etc-cron.d-backup-1", "web-02", "create"),
    ]
    assert not fleet.errors
    registry.dispose()
