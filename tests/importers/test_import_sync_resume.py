"""An import is all-or-nothing across SQL and RedBeat by being resumable (issue 15.4): a RedBeat
sync that fails half way leaves a mark that `bridge sync --check` reports, and `bridge sync`
completes. A private, real redis-server is made to refuse writes in the
middle of the sync: an ACL lets it write only the entries of the first batch."""

from __future__ import annotations

import redis


def test_a_sync_that_fails_half_way_is_reported_by_check_and_completed_by_sync(  # type: ignore[no-untyped-def]
    cli, redis_factory, db_url, tmp_path
) -> None:
    server = redis_factory.start()
    env = {"BRIDGE_REDIS_URL": server.url, "BRIDGE_DATABASE_URL": db_url, "BRIDGE_TIMEZONE": "UTC"}
    crond = tmp_path / "cron.d"
    crond.mkdir()
    big = crond / "many"
    big.write_text(
        "".join(f"{i % 60} * * * * root /bin/echo job {i} {'x' * 200}\n" for i in range(3000))
    )
    client = redis.Redis.from_url(server.url)
    # entries are written in id order, 1000 per batch: the first batch (ids 1, 10, 100, 1000,
    # 1001, ...) may be written, the second (which reaches 'etc-cron.d-many-2') is refused.
    # (Read-write grants: a batch is written by one script, whose keys are read and written.)
    client.acl_setuser(
        "default",
        enabled=True,
        nopass=True,
        reset_keys=True,
        keys=["%R~*", "~{bridge}::*", "~{bridge}:etc-cron.d-many-1*"],
        commands=["+@all"],
    )
    try:
        r = cli("import", "crontab", str(big), "--json", env=env)
        assert r.code == 3, r.err
        doc = r.json()
        assert doc["applied"]["created"] == 3000
        assert "NOPERM" in doc["sync_error"] or "no permissions" in doc["sync_error"]
        r = cli("sync", "--check", "--json", env=env)
        assert r.code == 1
        check = r.json()
        assert check["drift"] is True
        assert len(check["created"]) == 2000  # partly synced: the first batch made it
        assert check["pending_import"]["files"] == [str(big)]
        assert check["pending_import"]["changes"] == 3000
        r = cli("sync", "--check", env=env)
        assert f"import of {big} at " in r.out and "not fully synced to RedBeat" in r.out
    finally:
        client.acl_setuser("default", enabled=True, nopass=True, keys=["~*"], commands=["+@all"])
    r = cli("sync", "--json", env=env)
    assert r.code == 0, r.err
    assert r.json()["pending_import"] is None
    r = cli("sync", "--check", "--json", env=env)
    assert r.code == 0 and r.json()["pending_import"] is None and r.json()["drift"] is False
    server.stop()


def test_a_completed_import_leaves_nothing_pending(cli, redis_url, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"BRIDGE_REDIS_URL": redis_url, "BRIDGE_DATABASE_URL": db_url, "BRIDGE_TIMEZONE": "UTC"}
    tab = tmp_path / "ops"
    tab.write_text("0 5 * * * /bin/echo one\n")
    assert cli("import", "crontab", str(tab), env=env).code == 0
    r = cli("sync", "--check", "--json", env=env)
    assert r.code == 0 and r.json()["pending_import"] is None
