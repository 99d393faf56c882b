"""A fleet of three hosts, for real: per-host cron daemons, per-host workers, one beat, one
PostgreSQL registry (see ``harness.py``: each host is a private mount + UTS namespace).

Each host has ``/etc/cron.d/fleet`` with two every-minute lines: ``local-<host>`` (its own
text on each host: host-bound) and ``global`` (the same line on all three: a consolidation
group). Every run appends ``<hostname> <job> <minute>`` to one shared file. The flow:

1. ``bridge import crontab --inventory`` of the three hosts' trees; ``bridge legacy rewrite
   --inventory`` writes each host's tree, whose cron.d file goes to that host's private
   ``/etc/cron.d``;
2. ``bridge fleet consolidate`` of the ``global`` group (one job placed anywhere);
3. minute M1, shadow: every line runs under its host's cron; Celery observes (each host-bound
   job on its host's worker, the group once);
4. minute M2: ``web-02``'s local job and the group are flipped to Celery (one command): web-02's
   worker runs its local job, one worker anywhere runs the group, every host's shim stands down;
5. minute M3: both rolled back to legacy: all N lines run again under cron (both flips are
   planned before M1, each effective from its own slot).

Counted: every ``(host, job, minute)`` side effect of M1..M3 exactly once, on the right host
(the group's once in all at M2), and the registry's authoritative runs agree (path and host).
Then one host is stopped: ``bridge status`` names its queue as having no live consumer.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.harness import SHIM, World, iso, shadow_verdicts
from tests.fleet.harness import Host, effects, namespaces_available, start_hosts
from tests.support import sleep_until, wait_for
from tests.support.services import empty_registry

pytestmark = [pytest.mark.integration, pytest.mark.slow(seconds=220), pytest.mark.timeout(360)]

HOSTS = ("web-01", "web-02", "web-03")
FILE = "/etc/cron.d/fleet"
LOCAL_ID = "etc-cron.d-fleet-1"
GLOBAL_ID = "etc-cron.d-fleet-2"
GROUP = f"fleet.{GLOBAL_ID}"


@pytest.fixture
def world(redis_url: str, pg_url: str) -> Iterator[World]:
    why = namespaces_available()
    if why is not None:
        pytest.skip(why)
    tmp = Path("/tmp") / f"bridge-fleet-e2e-{secrets.token_hex(4)}"  # shared by every host
    (tmp / "out").mkdir(parents=True)
    empty_registry(pg_url)
    w = World(tmp, redis_url, db_url=pg_url)
    yield w
    w.close()
    shutil.rmtree(tmp, ignore_errors=True)


def cron_file(w: World, host: str) -> str:
    minute = r'$(date -u +\%H:\%M)'
    return "\n".join([
        f"BRIDGE_DATABASE_URL={w.db_url}", f"BRIDGE_SPOOL_DIR={w.tmp}/spool",
        f"BRIDGE_AUTHORITY_DIR={w.tmp}/authority", f"XDG_CONFIG_HOME={w.tmp}/xdg-config",
        f"OUT={w.tmp}/out",
        f'* * * * * root echo "$(hostname) local-{host} {minute}" >> "$OUT/effects"',
        f'* * * * * root echo "$(hostname) global {minute}" >> "$OUT/effects"',
        "",
    ])


def inventory(w: World) -> Path:
    root = w.tmp / "inventory"
    for host in HOSTS:
        etc = root / host / "etc"
        (etc / "cron.d").mkdir(parents=True)
        (etc / "os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12"\nID=debian\n')
        (etc / "timezone").write_text("UTC\n")
        (etc / "cron.d" / "fleet").write_text(cron_file(w, host))
    return root


def install_rewritten(w: World, root: Path) -> list[Host]:
    """``bridge legacy rewrite --inventory``: one output tree per host, whose cron.d files each
    host's cron then reads."""
    out = w.tmp / "outgoing"
    done = w.cli("legacy", "rewrite", "--inventory", str(root), "--out", str(out),
                 "--shim", SHIM, "--authority-dir", str(w.tmp / "authority"), "--json")
    assert done.code == 0, done.out + done.err
    hosts = []
    for host in HOSTS:
        cron_d = out / host / "etc" / "cron.d"
        text = (cron_d / "fleet").read_text()
        assert f"SHELL={SHIM}\n" in text and f"BRIDGE_JOB={host}.{LOCAL_ID}\n" in text
        hosts.append(Host(host, w, cron_d))
    return hosts


def minute_text(t: datetime) -> str:
    return t.strftime("%H:%M")


def flip(w: World, to: str, at: datetime) -> dict:
    r = w.cli("authority", "flip", f"web-02.{LOCAL_ID}", GROUP, "--to", to, "--at", iso(at),
              "--force", "--reason", "fleet e2e", "--json")
    assert r.code == 0, r.out + r.err
    return r.json()


def test_three_hosts_import_shadow_flip_consolidate_and_roll_back(world: World) -> None:
    w = world
    root = inventory(w)
    imported = w.cli("import", "crontab", "--inventory", str(root), "--json")
    assert imported.code == 0, imported.out[-3000:] + imported.err
    ids = sorted(j["id"] for j in imported.json()["jobs"])
    offered = imported.json()["groups"]  # the plan offers the consolidation
    assert [(g["group"], g["host_count"]) for g in offered] == [(GROUP, 3)]
    assert ids == sorted(f"{h}.{j}" for h in HOSTS for j in (LOCAL_ID, GLOBAL_ID))
    jobs = {j["id"]: j for j in w.cli("jobs", "list", "--json").json()["jobs"]}
    assert jobs[f"web-01.{LOCAL_ID}"]["queue"] == "bridge.host.web-01"  # host-bound

    groups = w.cli("fleet", "groups", "--json").json()["groups"]
    assert [(g["group"], g["hosts"]) for g in groups] == [(GROUP, list(HOSTS))]
    done = w.cli("fleet", "consolidate", GROUP, "--reason", "the same line on every host",
                 "--json")
    assert done.code == 0, done.out + done.err
    hosts = install_rewritten(w, root)
    try:

        w.beat()
        start_hosts(hosts)
        now = time.time()
        m1 = datetime.fromtimestamp((now // 60 + (1 if 60 - now % 60 > 3 else 2)) * 60, UTC)
        m2, m3 = m1 + timedelta(minutes=1), m1 + timedelta(minutes=2)

        # both flips are planned at once (each from its own slot on): M1 shadow, M2 Celery,
        # M3 legacy again
        to_celery = flip(w, "celery", m2)
        assert sorted(f["job_id"] for f in to_celery["flips"]) == sorted(
            [f"web-02.{LOCAL_ID}", GROUP, *(f"{h}.{GLOBAL_ID}" for h in HOSTS)])
        assert len({f["boundary_utc"] for f in to_celery["flips"]}) == 1
        back = flip(w, "legacy", m3)
        assert len(back["flips"]) == 5

        minutes = [minute_text(m) for m in (m1, m2, m3)]
        expected: Counter[tuple[str, str, str]] = Counter()
        for m in minutes:
            for h in HOSTS:
                expected[(h, f"local-{h}", m)] = 1
                if m != minutes[1]:
                    expected[(h, "global", m)] = 1

        def seen_now() -> Counter[tuple[str, str, str]]:
            return Counter({k: n for k, n in effects(w.tmp / "out" / "effects").items()
                            if k[2] in minutes})

        sleep_until(m3.timestamp())
        wait_for("every host-bound side effect up to M3",
                 lambda: set(expected) <= set(seen_now()), 50, w.tail_logs)
        time.sleep(3)  # a late duplicate would show up now
        seen = seen_now()
        group_m2 = [k for k in seen if k[1] == "global" and k[2] == minutes[1]]
        assert len(group_m2) == 1 and seen[group_m2[0]] == 1, (group_m2, seen)  # once, anywhere
        expected[group_m2[0]] = 1
        assert seen == expected, (
            f"side effects differ: missing {sorted(expected - seen)}, "
            f"extra {sorted(seen - expected)}\n{w.tail_logs()}")

        def executions(job_id: str, slot: datetime) -> list[tuple[str, str | None]]:
            return [(r.path, r.host) for r in w.runs(job_id) if r.slot == slot
                    and r.role == "authoritative" and r.status in ("succeeded", "failed")]

        wait_for("the M3 runs recorded", lambda: all(
            executions(f"{h}.{LOCAL_ID}", m3) for h in HOSTS), 30, w.tail_logs)
        for h in HOSTS:
            for slot in (m1, m2, m3):
                path = "celery" if (h, slot) == ("web-02", m2) else "legacy"
                assert executions(f"{h}.{LOCAL_ID}", slot) == [(path, h)], (h, slot)
                member = executions(f"{h}.{GLOBAL_ID}", slot)
                assert member == ([] if slot == m2 else [("legacy", h)]), (h, slot, member)
        (group_run,) = executions(GROUP, m2)
        assert group_run[0] == "celery" and group_run[1] == group_m2[0][0]
        assert executions(GROUP, m1) == [] and executions(GROUP, m3) == []
        stood_down = {r.host for h in HOSTS for r in w.runs(f"{h}.{GLOBAL_ID}")
                      if r.slot == m2 and r.role == "stand-down"}
        assert stood_down == set(HOSTS)  # every host's shim stood down for the group's slot

        verdicts = {v.slot: v for v in shadow_verdicts(w, GROUP, m1 - timedelta(seconds=1), m3)}
        assert verdicts[m1].verdict.value == "match", verdicts[m1]
        assert verdicts[m1].detail.startswith(
            "legacy ran on 3 of 3 host(s): web-01, web-02, web-03")
        assert verdicts[m2].detail.startswith("legacy ran on 0 of 3 host(s)")

        hosts[2].stop()  # web-03 is gone: its queue has jobs and no consumer
        status = w.cli("status", "--json")
        workers = json.loads(status.out)["overview"]["workers"]
        assert workers["consumers"]["bridge.host.web-01"] == 1
        assert [u["host"] for u in workers["unconsumed"]] == ["web-03"], workers
        text = w.cli("status").out
        assert "ALERT     host web-03's queue bridge.host.web-03: no live consumer" in text
    finally:
        for h in hosts:
            h.stop()
