"""One RedBeat key prefix belongs to one registry: a second registry can't wipe the first's entries.

Reproduces the quickstart finding: the quickstart imported into the default registry and prefix;
the next import into another registry on the same Redis printed ``15 deleted`` and wiped them.
"""

from __future__ import annotations

from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]
ALICE = ROOT / "examples" / "crontab" / "alice"


def env_for(redis_url: str, db_url: str) -> dict[str, str]:
    return {
        "BRIDGE_REDIS_URL": redis_url,
        "BRIDGE_DATABASE_URL": db_url,
        "BRIDGE_TIMEZONE": "America/New_York",
    }


def entries(redis_url: str) -> set[str]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    return set(client.smembers("{bridge}::bridge:index"))  # type: ignore[arg-type]


def test_second_registry_is_refused_and_changes_nothing(cli, redis_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = env_for(redis_url, f"sqlite:///{tmp_path}/first.db")
    second = env_for(redis_url, f"sqlite:///{tmp_path}/second.db")
    assert cli("import", "crontab", str(ALICE), "--user", "alice", env=first).code == 0
    before = entries(redis_url)
    assert "billing-nightly" in before

    other = tmp_path / "ops"
    other.write_text("0 5 * * * /bin/echo one\n")
    r = cli("import", "crontab", str(other), "--user", "ops", env=second)

    assert r.code == 2, r.out + r.err
    assert "belongs to another registry" in r.err and "first.db" in r.err
    assert "--take-over" in r.err
    assert entries(redis_url) == before
    assert cli("jobs", "list", "--json", env=second).json() == {"jobs": []}  # nothing applied


def test_sync_check_from_another_registry_is_refused(cli, redis_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = env_for(redis_url, f"sqlite:///{tmp_path}/first.db")
    second = env_for(redis_url, f"sqlite:///{tmp_path}/second.db")
    assert cli("import", "crontab", str(ALICE), "--user", "alice", env=first).code == 0
    r = cli("sync", "--check", "--json", env=second)
    assert r.code == 2 and "belongs to another registry" in r.err
    assert cli("sync", "--check", env=first).code == 0


def test_take_over_hands_the_prefix_to_the_new_registry(cli, redis_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = env_for(redis_url, f"sqlite:///{tmp_path}/first.db")
    second = env_for(redis_url, f"sqlite:///{tmp_path}/second.db")
    assert cli("import", "crontab", str(ALICE), "--user", "alice", env=first).code == 0

    r = cli("sync", "--take-over", "--json", env=second)

    assert r.code == 0, r.err
    assert "billing-nightly" in r.json()["deleted"]  # type: ignore[index]
    assert entries(redis_url) == set()
    other = tmp_path / "ops"
    other.write_text("# bridge: id=ops-one\n0 5 * * * /bin/echo one\n")
    assert cli("import", "crontab", str(other), "--user", "ops", env=second).code == 0
    assert entries(redis_url) == {"ops-one"}
    refused = cli("sync", env=first)  # the old registry is now the stranger
    assert refused.code == 2 and "second.db" in refused.err


def test_the_same_registry_under_another_spelling_of_its_url_is_still_itself(
    cli, redis_url, tmp_path  # type: ignore[no-untyped-def]
) -> None:
    (tmp_path / "sub").mkdir()
    plain = env_for(redis_url, f"sqlite:///{tmp_path}/reg.db")
    dotted = env_for(redis_url, f"sqlite:///{tmp_path}/sub/../reg.db")
    assert cli("import", "crontab", str(ALICE), "--user", "alice", env=plain).code == 0
    assert cli("sync", env=dotted).code == 0
