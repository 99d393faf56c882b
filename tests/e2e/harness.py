"""End-to-end worlds shared by tests/e2e and bench/boundary.py: real processes only.

* :class:`World`: a SQLite registry file, a Redis URL, and real ``celery -A bridge.celery_app``
  beat (``-S bridge.scheduler:BridgeScheduler``) and worker subprocesses, plus the real ``bridge``
  CLI as a subprocess (settings only through the environment).
* :class:`LegacyLoop`: the legacy side of a per-second job, fired the way cron fires a
  per-minute one: ``bridge-cron-shell -c CMD`` with ``BRIDGE_JOB`` / ``BRIDGE_SHELL`` and the
  registry settings in a cron-like environment, once per second just after each second starts.
* :func:`analyse_boundary`: joins the ``runs`` table with the side-effect file and says, per
  slot of a window, who executed it how many times and who stood down.

A command handler is not told its slot (neither the shim nor the runner exports one), so the
job's command appends ``<side> <fire-slot> <epoch.ns>``: ``side`` is ``$SIDE`` (only the loop sets
it: ``legacy``; the Celery runner builds the command's environment from pam_env + the handler's
own variables, so there it is ``celery``), ``fire-slot`` is ``$FIRE_SLOT`` (the second the loop
fired for; ``-`` on Celery) and the timestamp is matched against the authoritative ``runs`` row
whose ``[started_at, finished_at]`` contains it: every side-effect line must belong to exactly
one authoritative run and every authoritative run must have exactly one line.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support import sleep_until, wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CELERY = str(BIN / "celery")
BRIDGE = str(BIN / "bridge")
SHIM = str(BIN / "bridge-cron-shell")
APP = "bridge.celery_app"

SIDE_EFFECT = 'echo "${SIDE:-celery} ${FIRE_SLOT:--} $(date +%s.%N)" >> '


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class CliRun:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class World:
    """Registry + Redis + beat/worker subprocesses + the CLI, in one temporary directory."""

    def __init__(self, tmp: Path, redis_url: str, *, db_url: str | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.redis_url = redis_url
        self.db_url = db_url or f"sqlite:///{tmp / 'registry.db'}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        env.update(
            BRIDGE_REDIS_URL=redis_url, BRIDGE_DATABASE_URL=self.db_url,
            BRIDGE_AUTHORITY_DIR=str(tmp / "authority"), BRIDGE_SPOOL_DIR=str(tmp / "spool"),
            BRIDGE_REDBEAT_LOCK_TIMEOUT="5", BRIDGE_HEALTH_INTERVAL="3600",
            BRIDGE_AUTHORITY_SAFETY_MARGIN="5", BRIDGE_WORKER_SHUTDOWN_GRACE="2",
            XDG_DATA_HOME=str(tmp / "xdg-data"), XDG_CONFIG_HOME=str(tmp / "xdg-config"),
            PYTHONPATH=str(ROOT),
        )
        env.update(extra_env or {})
        self.env = env

    # --- registry -------------------------------------------------------------------------------

    def registry(self) -> Any:
        from bridge.store.db import Registry

        return Registry(self.db_url)

    def add_jobs(self, *specs: Any) -> None:
        from bridge.store.repos import JobRepo

        reg = self.registry()
        with reg.session() as s:
            for spec in specs:
                JobRepo(s).upsert(spec)
        reg.dispose()

    def runs(self, job_id: str, since: datetime | None = None,
             until: datetime | None = None) -> list[Any]:
        from bridge.store.runs import RunRepo

        reg = self.registry()
        with reg.session() as s:
            rows = RunRepo(s).for_job(job_id, since=since, until=until)
            s.expunge_all()
        reg.dispose()
        return rows

    # --- the CLI --------------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 120) -> CliRun:
        done = subprocess.run([BRIDGE, *args], env=self.env, cwd=self.tmp, capture_output=True,
                              text=True, timeout=timeout)
        return CliRun(done.returncode, done.stdout, done.stderr)

    # --- processes ------------------------------------------------------------------------------

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = self.tmp / f"{name}-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            proc = subprocess.Popen([CELERY, "-A", APP, *args], env=self.env, cwd=self.tmp,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def beat(self) -> subprocess.Popen[bytes]:
        return self._spawn("beat", "beat", "-S", "bridge.scheduler:BridgeScheduler", "-l", "INFO",
                           "-s", str(self.tmp / "beat-schedule"))

    def worker(self, queues: str = "bridge", concurrency: int = 2) -> subprocess.Popen[bytes]:
        proc = self._spawn("worker", "worker", "-Q", queues, "-P", "prefork", "-c",
                           str(concurrency), "-n", f"e2e{len(self.logs)}-{os.getpid()}@%h",
                           "--without-gossip", "--without-mingle", "--without-heartbeat",
                           "-l", "INFO")
        log = self.logs[-1]
        wait_for("the worker to be ready", lambda: "ready." in log.read_text(errors="replace"),
                 90, logs=self.tail_logs)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.stop(proc)

    def tail_logs(self, n: int = 30) -> str:
        parts = []
        for log in self.logs:
            text = log.read_text(errors="replace") if log.exists() else ""
            parts.append(f"--- {log.name}\n" + "\n".join(text.splitlines()[-n:]))
        return "\n".join(parts)

    def queue_length(self, queue: str = "bridge") -> int:
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            return int(client.llen(queue))
        finally:
            client.close()


# --- the legacy side, once per second ------------------------------------------------------------


class LegacyLoop(threading.Thread):
    """Fires ``bridge-cron-shell -c CMD`` at ``offset`` s after every second, as cron fires a
    line each minute (a cron-like environment: PATH, HOME, LOGNAME, SHELL = the shim,
    BRIDGE_SHELL, BRIDGE_JOB and the registry settings). Never waits for a firing to end."""

    def __init__(self, world: World, job_id: str, command: str, *, offset: float = 0.05) -> None:
        super().__init__(daemon=True, name=f"legacy-{job_id}")
        self.world = world
        self.job_id = job_id
        self.command = command
        self.offset = offset
        self.halt = threading.Event()
        self.fired: dict[int, float] = {}  # second -> when the shim was started
        self.late: list[tuple[int, float]] = []  # firings started more than 0.5 s late
        self.statuses: list[tuple[int, int]] = []  # (second, shim exit status)
        self.running: list[tuple[int, subprocess.Popen[bytes]]] = []
        keep = {k: world.env[k] for k in ("BRIDGE_DATABASE_URL", "BRIDGE_AUTHORITY_DIR",
                                          "BRIDGE_SPOOL_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME")}
        self.base_env = {"PATH": "/usr/bin:/bin", "HOME": str(world.tmp), "LOGNAME": "root",
                         "SHELL": SHIM, "BRIDGE_SHELL": "/bin/sh", "BRIDGE_JOB": job_id,
                         "SIDE": "legacy", **keep}

    def run(self) -> None:
        second = math.floor(time.time()) + 1
        while not self.halt.is_set():
            sleep_until(second + self.offset)
            if self.halt.is_set():
                break
            started = time.time()
            if started - second > 0.5:
                self.late.append((second, started - second))
            env = {**self.base_env, "FIRE_SLOT": str(second)}
            proc = subprocess.Popen([SHIM, "-c", self.command], env=env, cwd=self.world.tmp,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            self.fired[second] = started
            self.running.append((second, proc))
            self._reap()
            second += 1
            if time.time() > second + self.offset + 0.5:  # fell behind: do not burst, skip ahead
                second = math.floor(time.time()) + 1

    def _reap(self, wait: bool = False) -> None:
        still = []
        for sec, proc in self.running:
            code = proc.wait(timeout=60) if wait else proc.poll()
            if code is None:
                still.append((sec, proc))
            else:
                self.statuses.append((sec, code))
        self.running = still

    def finish(self) -> None:
        self.halt.set()
        self.join(timeout=10)
        self._reap(wait=True)


# --- analysis -------------------------------------------------------------------------------------


@dataclass
class Boundary:
    """Per-slot facts of a flip window: the answer of :func:`analyse_boundary`."""

    slots: list[datetime]
    owner: dict[datetime, str]
    authoritative: dict[datetime, list[Any]]
    side_effects: dict[datetime, int]  # executions per slot, from the side-effect file
    legacy_stand_downs: set[datetime]
    celery_stand_downs: set[datetime]
    celery_observed: set[datetime]
    unmatched_lines: list[str]
    problems: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[datetime]:
        return [s for s in self.slots
                if not self.authoritative.get(s) and not self.side_effects.get(s)]

    @property
    def doubles(self) -> list[datetime]:
        return [s for s in self.slots
                if len(self.authoritative.get(s, [])) > 1 or self.side_effects.get(s, 0) > 1]

    @property
    def executed_once(self) -> int:
        return sum(1 for s in self.slots
                   if len(self.authoritative.get(s, [])) == 1 and self.side_effects.get(s) == 1)

    def summary(self) -> dict[str, Any]:
        owned = Counter(self.owner[s] for s in self.slots)
        return {
            "slots": len(self.slots),
            "owned": dict(owned),
            "executed_once": self.executed_once,
            "missing": [iso(s) for s in self.missing],
            "doubles": [iso(s) for s in self.doubles],
            "stand_downs": {"legacy": len(self.legacy_stand_downs & set(self.slots)),
                            "celery": len(self.celery_stand_downs & set(self.slots))},
            "celery_observed": len(self.celery_observed & set(self.slots)),
            "unmatched_side_effect_lines": self.unmatched_lines[:20],
            "problems": self.problems[:50],
        }


def parse_side_effects(path: Path) -> list[tuple[str, str, float, str]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.append((parts[0], parts[1], float(parts[2]), line))
    return out


def owner_of(slot: datetime, to_celery: datetime, back_to_legacy: datetime) -> str:
    return "celery" if to_celery <= slot < back_to_legacy else "legacy"


def analyse_boundary(world: World, job_id: str, side_file: Path, first: datetime,
                     last: datetime, to_celery: datetime, back: datetime) -> Boundary:
    """Every slot in ``[first, last]``: authoritative rows, side effects, stand-downs."""
    slots = [first + timedelta(seconds=i) for i in range(int((last - first).total_seconds()) + 1)]
    owner = {s: owner_of(s, to_celery, back) for s in slots}
    rows = world.runs(job_id)  # all of them: executions outside the window count too
    auth: dict[datetime, list[Any]] = defaultdict(list)
    legacy_sd: set[datetime] = set()
    celery_sd: set[datetime] = set()
    observed: set[datetime] = set()
    problems: list[str] = []
    for r in rows:
        if r.role == "authoritative" and r.status not in ("skipped", "missed"):
            auth[r.slot].append(r)
        elif r.role == "stand-down":
            (legacy_sd if r.path == "legacy" else celery_sd).add(r.slot)
        elif r.role == "observe" and r.path == "celery":
            observed.add(r.slot)
    windows = [(r.started_at.timestamp() - 0.5, r.finished_at.timestamp() + 0.5, r)
               for rs in auth.values() for r in rs if r.started_at and r.finished_at]
    effects: dict[datetime, int] = Counter()
    unmatched: list[str] = []
    for side, fire_slot, at, line in parse_side_effects(side_file):
        hits = [r for lo, hi, r in windows if lo <= at <= hi and r.path == side]
        if side == "legacy":
            slot = utc(int(fire_slot))
            if not any(r.slot == slot for r in hits):
                problems.append(f"legacy side effect {line!r}: no authoritative legacy run of "
                                f"{iso(slot)} around it")
        elif len(hits) == 1:
            slot = hits[0].slot
        else:
            unmatched.append(line)
            continue
        effects[slot] += 1
    for s in slots:
        for r in auth.get(s, []):
            if r.path != owner[s]:
                problems.append(f"{iso(s)}: executed by {r.path}, owner is {owner[s]}")
            if r.status != "succeeded":
                problems.append(f"{iso(s)}: {r.path} run {r.status}: {r.error}")
    for s, rs in auth.items():  # a non-owner execution outside the window is also wrong
        if (s < first or s > last) and any(r.path == "celery" for r in rs):
            problems.append(f"{iso(s)}: celery executed a slot outside the celery window")
    return Boundary(slots, owner, dict(auth), dict(effects), legacy_sd, celery_sd, observed,
                    unmatched, problems)


def flip(world: World, job_id: str, to: str, at: datetime) -> CliRun:
    args = ["authority", "flip", job_id, "--to", to, "--at", iso(at), "--json"]
    if to == "celery":
        args += ["--force", "--reason", "e2e flip-boundary test"]
    return world.cli(*args)


def shadow_verdicts(world: World, job_id: str, since: datetime, until: datetime) -> list[Any]:
    """Per-slot verdicts, from the same service ``bridge shadow report`` uses."""
    from bridge.store.repos import AuthorityRepo, JobRepo
    from shadow.report import compare_stored

    reg = world.registry()
    with reg.session() as s:
        spec = JobRepo(s).require(job_id).spec
        history = AuthorityRepo(s).history(job_id)
        verdicts = compare_stored(s, spec, since, until, datetime.now(UTC), history=history)
    reg.dispose()
    return verdicts
