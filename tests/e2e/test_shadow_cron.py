"""Shadow mode under the real Debian cron daemon, against a real beat + worker.

One cron.d file with three every-minute root jobs is imported (``bridge import crontab
--system``), rewritten through the shim (``bridge legacy rewrite``) and installed in
/etc/cron.d; the registry settings reach the shim only through the file's environment lines.
The Celery side is a real ``celery beat -S bridge.scheduler:BridgeScheduler`` and a worker
consuming the ``bridge`` queue and this host's (the imported jobs are bound to this host).
Specs set after the import (through the registry API):

* ``healthy``: shadow mode ``execute``, the same command -> ``match`` on every compared slot;
* ``broken``: shadow mode ``dry-run`` with ``dry_run_command = "exit 3"`` while the real command
  exits 0 -> ``outcome_mismatch`` on every slot;
* ``stopped``: routed to a queue no worker consumes -> ``missing_celery`` on every slot (its
  timeout and tolerance are small so the slots leave the grace window within seconds).

After two cron minutes ``bridge shadow report --json`` (the real CLI) must say exactly that
and exit 1. The cron.d file is always removed.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from bridge.core.placement import host_queue
from bridge.core.spec import CommandHandler, ComparePolicy, ShadowMode
from bridge.store.repos import JobRepo
from legacy_wrappers import launcher
from tests.e2e.harness import World, iso
from tests.support import wait_for
from tests.wrappers.test_shim_cron import Daemon, not_near_the_tick
from tests.wrappers.test_shim_cron import cron_files as cron_files  # shared fixture, not copied

pytestmark = [pytest.mark.integration, pytest.mark.slow(seconds=220), pytest.mark.timeout(330)]

SLOTS = 2  # cron minutes compared
NOBODY = "e2e-nobody"  # a queue no worker consumes


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    if os.geteuid() != 0:
        pytest.skip("needs root to write /etc/cron.d")
    d = Daemon()
    if d.binary is None:
        pytest.skip("Debian's cron is not installed (apt-get install cron)")
    d.ensure()
    yield d
    d.stop()


@pytest.fixture
def world(redis_url: str) -> Iterator[World]:
    tmp = Path("/tmp") / f"bridge-e2e-shadow-{secrets.token_hex(4)}"  # readable by cron's jobs
    for sub in ("cron.d", "out"):
        (tmp / sub).mkdir(parents=True)
    w = World(tmp, redis_url)
    yield w
    w.close()
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)


def crontab(w: World, ids: dict[str, str]) -> str:
    lines = [f"BRIDGE_DATABASE_URL={w.db_url}", f"BRIDGE_SPOOL_DIR={w.tmp}/spool",
             f"BRIDGE_AUTHORITY_DIR={w.tmp}/authority", f"XDG_CONFIG_HOME={w.tmp}/xdg-config",
             f"OUT={w.tmp}/out"]
    for kind, job_id in ids.items():
        lines += [f"# bridge: id={job_id}", f'* * * * * root echo {kind} >> "$OUT/{kind}.txt"']
    return "\n".join([*lines, ""])


def configure(w: World, ids: dict[str, str]) -> None:
    """The shadow behaviour of each job, set on the imported specs (registry API)."""
    reg = w.registry()
    with reg.session() as s:
        repo = JobRepo(s)
        for kind, job_id in ids.items():
            spec = repo.require(job_id).spec
            policies = replace(spec.policies, timeout_seconds=20)
            handler = spec.handler
            assert isinstance(handler, CommandHandler)
            if kind == "healthy":
                policies = replace(policies, shadow_mode=ShadowMode.EXECUTE)
            elif kind == "broken":
                policies = replace(policies, shadow_mode=ShadowMode.DRY_RUN)
                handler = replace(handler, dry_run_command="exit 3")
            else:
                policies = replace(policies, queue=NOBODY, timeout_seconds=5)
            compare = replace(spec.compare, tolerance_seconds=10) if kind == "stopped" \
                else spec.compare
            assert isinstance(compare, ComparePolicy)
            repo.upsert(replace(spec, policies=policies, handler=handler, compare=compare))
    reg.dispose()


def legacy_slots(w: World, job_id: str) -> list[datetime]:
    return sorted({r.slot for r in w.runs(job_id)
                   if r.path == "legacy" and r.role == "authoritative"})


def test_shadow_verdicts_under_real_cron(
    daemon: Daemon, cron_files: Callable[[str, str], Path], world: World,
) -> None:
    tag = secrets.token_hex(3)
    ids = {kind: f"e2e-{kind}-{tag}" for kind in ("healthy", "broken", "stopped")}
    source = world.tmp / "cron.d" / f"e2eshadow{tag}"
    source.write_text(crontab(world, ids))
    imported = world.cli("import", "crontab", "--system", "--timezone", "UTC", str(source),
                         "--json")
    assert imported.code == 0, imported.out + imported.err
    assert {j["id"] for j in imported.json()["jobs"]} == set(ids.values())
    rewritten = world.tmp / "rewritten"
    result = world.cli("legacy", "rewrite", str(source), "--out", str(rewritten), "--json")
    assert result.code == 0, result.err
    assert sorted(result.json()["managed"]) == sorted(ids.values())
    # the shim's fast launcher, written by the rewrite where pip never rewrites it
    assert f"SHELL={launcher.default_target()}\n" in rewritten.read_text()
    configure(world, ids)
    synced = world.cli("sync", "--json")
    assert synced.code == 0, synced.err
    world.worker(queues=f"bridge,{host_queue('bridge', socket.gethostname())}")  # bound jobs
    world.beat()

    not_near_the_tick()
    installed = cron_files(f"bridge-e2e-shadow-{tag}", rewritten.read_text())

    def cron_fired_every_job() -> bool:
        daemon.ensure()  # restarts our cron if it vanished meanwhile
        return all(len(legacy_slots(world, j)) >= SLOTS for j in ids.values())

    wait_for(f"cron to fire {SLOTS} slots of every job", cron_fired_every_job,
             60 * (SLOTS + 1) + 15, interval=1,
             logs=lambda: f"cron ran {[len(legacy_slots(world, j)) for j in ids.values()]} "
                          f"slots\n{world.tail_logs()}")
    installed.unlink()  # no more legacy firings; the compared slots are the first SLOTS
    slots = legacy_slots(world, ids["healthy"])[:SLOTS]
    assert all(legacy_slots(world, j)[:SLOTS] == slots for j in ids.values())
    assert all(b - a == timedelta(minutes=1) for a, b in pairwise(slots))
    since, until = slots[0] - timedelta(seconds=1), slots[-1]

    def celery_done() -> bool:  # the two consumed jobs' Celery side of every slot is in
        return all({r.slot for r in world.runs(ids[k]) if r.path == "celery"
                    and r.status != "running"} >= set(slots) for k in ("healthy", "broken"))

    wait_for("the Celery shadow runs", celery_done, 60, logs=world.tail_logs)
    # the stopped job's slots must leave its grace window (tolerance 10 + timeout 5 s)
    wait_for("the grace window", lambda: datetime.now(UTC) > until + timedelta(seconds=17), 30)

    report = world.cli("shadow", "report", "--json", "--since", iso(since), "--until", iso(until))
    assert report.code == 1, report.out[-3000:] + report.err
    doc = report.json()
    assert doc["ok"] is False
    jobs = {j["job_id"]: j for j in doc["jobs"]}
    assert set(jobs) == set(ids.values())
    assert doc["totals"]["jobs_with_unresolved"] == 2, doc["totals"]
    for kind, job_id in ids.items():
        job = jobs[job_id]
        assert job["expected_slots"] == SLOTS and job["compared"] == SLOTS, (kind, job)
        assert job["owner"] == "legacy"
    healthy, broken, stopped = (jobs[ids[k]] for k in ("healthy", "broken", "stopped"))

    assert healthy["shadow_mode"] == "execute"
    assert healthy["counts"]["match"] == SLOTS and healthy["unresolved"] == 0, healthy["counts"]
    assert healthy["mismatches"] == []

    assert broken["shadow_mode"] == "dry-run"
    assert broken["counts"]["outcome_mismatch"] == SLOTS, broken["counts"]
    assert broken["unresolved"] == SLOTS
    assert len(broken["mismatches"]) == SLOTS, broken["mismatches"]
    for m in broken["mismatches"]:
        assert m["verdict"] == "outcome_mismatch" and "exit_status" in m["mismatched"], m
        assert (m["legacy"]["role"], m["legacy"]["exit_status"]) == ("authoritative", 0), m
        assert (m["celery"]["role"], m["celery"]["exit_status"]) == ("shadow", 3), m
        assert m["basis"] == "outcome"

    assert stopped["counts"]["missing_celery"] == SLOTS, stopped["counts"]
    assert stopped["unresolved"] == SLOTS
    for m in stopped["mismatches"]:
        assert m["verdict"] == "missing_celery" and m["celery"] is None, m
        assert m["legacy"]["role"] == "authoritative" and m["legacy"]["exit_status"] == 0, m
    nobody = host_queue(NOBODY, socket.gethostname())  # the job is bound to this host
    assert world.queue_length(nobody) >= SLOTS  # Celery published them; nobody consumed

    # side effects: the dry run never touched broken.txt; execute mode doubles healthy's
    world.close()  # waits for beat and workers to exit: no more Celery runs in flight
    out = world.tmp / "out"
    broken_runs = legacy_slots(world, ids["broken"])
    assert len((out / "broken.txt").read_text().splitlines()) == len(broken_runs)
    healthy_rows = world.runs(ids["healthy"])
    executed = [r for r in healthy_rows if r.role in ("authoritative", "shadow")
                and r.exit_status is not None]
    assert len((out / "healthy.txt").read_text().splitlines()) == len(executed)
