"""The Quartz plugin end to end: a real Quartz 2.3.2 scheduler, a real beat and worker.

A JVM runs ``QuartzRunner`` (RAMJobStore, the job XML loaded by Quartz's own
``XMLSchedulingDataProcessor``, ``cronbridge.quartz.BridgePlugin`` enabled) with per-second
cron triggers whose jobs append ``<slot>`` lines to a file; ``bridge import quartz`` imports
the same XML (the handler map runs a command appending to another file); ``bridge legacy
ingest --quartz-spool`` uploads the plugin's spool. Needs java/javac/jar and Debian's
libquartz2-java / libslf4j-java (skipped, with the reason, without them).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.store.db import Registry
from bridge.store.runs import RunRepo
from tests.quartz_plugin import harness
from tests.support import wait_for
from tests.support.services import broker_idle

REASON = harness.unavailable_reason()
pytestmark = [
    pytest.mark.java,
    pytest.mark.integration,
    pytest.mark.timeout(150),
    pytest.mark.skipif(REASON is not None, reason=f"Quartz plugin tests need Java: {REASON}"),
]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CELERY = str(BIN / "celery")
BRIDGE = str(BIN / "bridge")


def parse_slot(text: str) -> datetime:
    return datetime.strptime(text.strip(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


class World:
    """Registry, Redis, authority dir, spool dir; beat, worker and the Quartz JVM."""

    def __init__(self, tmp: Path, redis_url: str, built: harness.Built) -> None:
        self.tmp = tmp
        self.built = built
        self.db_url = f"sqlite:///{tmp / 'registry.db'}"
        self.spool = tmp / "spool"
        self.authority = tmp / "authority"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.quartz: harness.QuartzProcess | None = None
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        env.update(
            BRIDGE_REDIS_URL=redis_url, BRIDGE_DATABASE_URL=self.db_url,
            BRIDGE_AUTHORITY_DIR=str(self.authority), BRIDGE_AUTHORITY_SAFETY_MARGIN="2",
            BRIDGE_TIMEZONE="UTC", BRIDGE_REDBEAT_LOCK_TIMEOUT="5",
            XDG_DATA_HOME=str(tmp / "xdg-data"), XDG_CONFIG_HOME=str(tmp / "xdg-config"),
            PYTHONPATH=str(ROOT),
        )
        self.env = env

    def bridge(self, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([BRIDGE, *args], env=self.env, cwd=self.tmp, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode in ok, f"bridge {' '.join(args)}: {proc.returncode}\n" \
                                      f"{proc.stdout}\n{proc.stderr}"
        return proc

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = self.tmp / f"{name}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            proc = subprocess.Popen([CELERY, "-A", "legacy_wrappers.tasks", *args], env=self.env,
                                    cwd=self.tmp, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def start_celery(self) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
        worker = self.spawn("worker", "worker", "-Q", "bridge", "-P", "threads", "-c", "4",
                            "--without-gossip", "--without-mingle", "--without-heartbeat",
                            "-l", "WARNING")
        beat = self.spawn("beat", "beat", "-S", "bridge.scheduler:BridgeScheduler", "-l", "INFO",
                          "-s", str(self.tmp / "beat-schedule"))
        return worker, beat

    def start_quartz(self, xml: list[Path], **extra: str) -> harness.QuartzProcess:
        props = harness.properties(xml, self.spool, self.authority,
                                   extra={f"org.quartz.plugin.bridge.{k}": v
                                          for k, v in extra.items()})
        self.quartz = harness.QuartzProcess(self.built, self.tmp, props)
        self.quartz.start()
        return self.quartz

    def runs(self, job_id: str) -> list[Any]:
        registry = Registry(self.db_url)
        try:
            with registry.session() as s:
                return list(RunRepo(s).for_job(job_id))
        finally:
            registry.dispose()

    def tail(self) -> str:
        parts = []
        for log in [*self.logs, *([self.quartz.log] if self.quartz else [])]:
            text = log.read_text(errors="replace") if log.exists() else ""
            parts.append(f"--- {log.name}\n" + "\n".join(text.splitlines()[-30:]))
        return "\n".join(parts)

    @staticmethod
    def stop(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def close(self) -> None:
        if self.quartz is not None:
            self.quartz.kill()
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def world(tmp_path: Path, redis_url: str, built: harness.Built) -> Iterator[World]:
    w = World(tmp_path, redis_url, built)
    yield w
    w.close()


APPEND = "cronbridge.test.AppendSlotJob"
FAILS = "cronbridge.test.FailingJob"
HANDLERS = f'''
[[handler]]
job_class = "{APPEND}"
command = "echo run >> {{celery_file}}"

[[handler]]
job_class = "{FAILS}"
command = "echo failing >&2; exit 1"
'''


def job(tmp: Path, group: str, name: str, triggers: list[tuple[str, str]],
        cls: str = APPEND) -> dict[str, object]:
    return {"group": group, "name": name, "cls": cls, "triggers": triggers,
            "data": {"file": tmp / f"legacy-{group}.{name}.txt",
                     "celery_file": tmp / f"celery-{group}.{name}.txt"}}


@pytest.mark.slow(seconds=60)
def test_quartz_firings_are_ingested_compared_and_flipped_slot_exactly(world: World) -> None:
    tmp = world.tmp
    shadowed = tmp / "shadowed.xml"  # imported with --shadow-mode execute
    flipping = tmp / "flipping.xml"  # imported with --shadow-mode observe, then flipped
    shadowed.write_text(harness.job_xml([
        job(tmp, "shadow", "tick", [("tick", "* * * * * ?")]),
        job(tmp, "shadow", "multi", [("even", "0/2 * * * * ?"), ("odd", "1/2 * * * * ?")]),
        job(tmp, "shadow", "fails", [("fails", "* * * * * ?")], FAILS),
    ]))
    flipping.write_text(harness.job_xml([job(tmp, "flip", "tick", [("every", "* * * * * ?")])]))
    (tmp / "handlers.toml").write_text(HANDLERS)

    world.bridge("db", "upgrade")
    for xml, mode in ((shadowed, "execute"), (flipping, "observe")):
        world.bridge("import", "quartz", str(xml), "--handlers", str(tmp / "handlers.toml"),
                     "--timezone", "UTC", "--shadow-mode", mode)
    ids = ["flip.tick", "shadow.fails", "shadow.multi.even", "shadow.multi.odd", "shadow.tick"]
    listed = json.loads(world.bridge("jobs", "list", "--json").stdout)
    assert sorted(j["id"] for j in (listed["jobs"] if isinstance(listed, dict) else listed)) == ids

    worker, beat = world.start_celery()
    quartz = world.start_quartz([shadowed, flipping], maxSpoolBytes="4096")  # rotates often
    legacy_flip, celery_flip = tmp / "legacy-flip.tick.txt", tmp / "celery-flip.tick.txt"
    wait_for("both paths firing flip.tick",
             lambda: len(lines(legacy_flip)) >= 3
             and sum(r.path == "celery" and r.role == "observe" for r in world.runs("flip.tick"))
             >= 3, 40, logs=world.tail)

    boundary = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    world.bridge("authority", "flip", "flip.tick", "--to", "celery", "--force", "--reason",
                 "test", "--at", iso(boundary))
    assert (world.authority / "flip.tick.authority").exists()
    # an ingest while Quartz keeps writing: the flusher and the plugin share the file lock
    world.bridge("legacy", "ingest", "--quartz-spool", str(world.spool), "--json")
    wait_for("Celery running flip.tick after the boundary",
             lambda: len(lines(celery_flip)) >= 3, 30, logs=world.tail)

    assert quartz.stop() == 0, quartz.output()
    world.stop(beat)
    wait_for("every delivered run to finish",
             lambda: broker_idle(world.env["BRIDGE_REDIS_URL"]), 20, logs=world.tail)
    world.stop(worker)
    output = quartz.output()
    assert "0 dropped" in output, output

    # a writer that died mid-line: its torn tail stays in the spool for the next ingest
    spooled = sorted(world.spool.glob("*.jsonl"))
    assert len(spooled) >= 2 and all(p.stat().st_size <= 4096 for p in spooled), output
    with spooled[0].open("ab") as f:
        f.write(b'{"v":1,"source":"quartz","record_key":"quartz:torn')
    first = json.loads(world.bridge("legacy", "ingest", "--quartz-spool", str(world.spool),
                                    "--json").stdout)
    assert first["uploaded"] > 0 and first["rejected"] == 0 and first["dropped"] == 0, first
    assert first["kept_partial"] == [str(spooled[0])]
    archived = {p.name for p in (world.spool / "archive").glob("*.jsonl")}
    assert {p.name for p in spooled[1:]} <= archived and spooled[0].name not in archived
    again = json.loads(world.bridge("legacy", "ingest", "--quartz-spool", str(world.spool),
                                    "--json").stdout)
    assert again["uploaded"] == 0 and again["duplicates"] > 0, again  # re-ingesting adds nothing

    # one legacy observation per fired slot, with the exact scheduledFireTime
    for job_id in ("shadow.tick", "flip.tick"):
        runs = world.runs(job_id)
        executed = sorted(r.slot for r in runs if r.path == "legacy" and r.role == "authoritative")
        assert executed == sorted(map(parse_slot, lines(tmp / f"legacy-{job_id}.txt")))
        assert all(r.status == "succeeded" and r.host == "quartz-test" for r in runs
                   if r.path == "legacy" and r.role == "authoritative")
    multi = sorted(map(parse_slot, lines(tmp / "legacy-shadow.multi.txt")))
    even = [r.slot for r in world.runs("shadow.multi.even") if r.path == "legacy"]
    odd = [r.slot for r in world.runs("shadow.multi.odd") if r.path == "legacy"]
    assert sorted(even + odd) == multi
    assert all(s.second % 2 == 0 for s in even) and all(s.second % 2 == 1 for s in odd)
    failed = [r for r in world.runs("shadow.fails") if r.path == "legacy"]
    assert failed and {(r.status, r.error) for r in failed} == {
        ("failed", 'java.lang.IllegalStateException: boom "quoted" \\ back\nline \u00e9')}

    # the flip: from the boundary on Quartz stands down and Celery runs, once per slot
    runs = world.runs("flip.tick")
    legacy_slots = Counter(map(parse_slot, lines(legacy_flip)))
    stood_down = sorted(r.slot for r in runs if r.path == "legacy" and r.role == "stand-down")
    celery_runs = Counter(r.slot for r in runs if r.path == "celery"
                          and r.role == "authoritative" and r.status == "succeeded")
    assert max(legacy_slots) < boundary <= min(stood_down), (legacy_slots, stood_down)
    assert stood_down[0] == boundary and {r.status for r in runs if r.role == "stand-down"} == \
        {"stood-down"}
    assert celery_runs and min(celery_runs) == boundary
    assert sum(celery_runs.values()) == len(lines(celery_flip))
    both_running = [boundary + timedelta(seconds=i) for i in range(-3, 3)]
    for slot in both_running:
        assert legacy_slots[slot] + celery_runs[slot] == 1, (slot, legacy_slots, celery_runs)

    # the shadow report: match on every compared slot, before and after the flip
    window = _common_window(world, ids)
    report = json.loads(world.bridge("shadow", "report", "--json", "--since", iso(window[0]),
                                     "--until", iso(window[1]), ok=(0, 1)).stdout)
    for entry in report["jobs"]:
        assert entry["compared"] >= 3, entry
        counts = {k: n for k, n in entry["counts"].items() if n}
        assert counts == {"match": entry["compared"]}, json.dumps(entry, indent=1)
    assert report["ok"], report
    assert next(j for j in report["jobs"] if j["job_id"] == "flip.tick")["compared"] >= 6


def _common_window(world: World, ids: list[str]) -> tuple[datetime, datetime]:
    """(since, until]: the slots where both paths were running, for every job."""
    firsts, lasts = [], []
    for job_id in ids:
        runs = [r for r in world.runs(job_id) if r.role != "scheduler"]
        for path in ("legacy", "celery"):
            slots = [r.slot for r in runs if r.path == path]
            assert slots, (job_id, path)
            firsts.append(min(slots))
            lasts.append(max(slots))
    return max(firsts) - timedelta(seconds=1), min(lasts)


def test_an_unwritable_spool_never_fails_or_delays_the_job_and_ingest_reports_the_loss(
    world: World,
) -> None:
    from legacy_wrappers.quartz_ingest import ensure_counter

    tmp = world.tmp
    xml = tmp / "jobs.xml"
    xml.write_text(harness.job_xml([job(tmp, "ro", "tick", [("tick", "* * * * * ?")])]))
    world.spool.mkdir()
    assert ensure_counter(str(world.spool))
    lock = _make_read_only(world.spool)
    try:
        started = datetime.now(UTC)
        quartz = world.start_quartz([xml])
        legacy = tmp / "legacy-ro.tick.txt"
        wait_for("4 firings", lambda: len(lines(legacy)) >= 4, 20, logs=world.tail)
        assert quartz.stop() == 0
    finally:
        lock()
    fired = sorted(parse_slot(s) for s in lines(legacy))
    assert fired == [fired[0] + timedelta(seconds=i) for i in range(len(fired))]  # no gap
    assert fired[0] <= started.replace(microsecond=0) + timedelta(seconds=3)
    output = quartz.output()
    assert "dropped the spool record of job ro.tick slot" in output, output
    assert f"0 record(s) spooled, {len(fired)} dropped" in output, output
    assert not list(world.spool.glob("*.jsonl"))

    world.bridge("db", "upgrade")
    proc = world.bridge("legacy", "ingest", "--quartz-spool", str(world.spool), "--json", ok=(1,))
    report = json.loads(proc.stdout)
    assert report["dropped"] == len(fired) and report["uploaded"] == 0, report
    text = world.bridge("legacy", "ingest", "--quartz-spool", str(world.spool)).stdout
    assert "dropped by the plugin since the last ingest: 0" in text  # reported once, then reset


def _make_read_only(directory: Path) -> Callable[[], None]:
    """Make ``directory`` refuse new files, even to root; returns the undo."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        return lambda: directory.chmod(0o755)
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(directory)]).returncode != 0:
        pytest.skip("running as root without chattr +i: cannot make a directory read-only")

    def undo() -> None:
        subprocess.run([chattr, "-i", str(directory)], check=True)

    return undo
