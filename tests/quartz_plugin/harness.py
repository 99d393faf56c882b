"""Build and run a real Quartz 2.3.2 scheduler with the cron-bridge plugin (test helper).

``compile_all(workdir)`` builds ``cron-bridge-quartz.jar`` with :mod:`legacy_wrappers.quartz.
build` and compiles the test-only classes in ``java/`` (``QuartzRunner``: a main that loads a
properties file, starts the scheduler and stops it when a stop file appears; ``cronbridge.test.
AppendSlotJob`` / ``FailingJob``). :class:`QuartzProcess` runs it in its own JVM with the
properties written by :func:`properties` (RAMJobStore, the job XML loaded by Quartz's own
``XMLSchedulingDataProcessorPlugin``, the bridge plugin enabled), logging through slf4j-simple
to a file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from legacy_wrappers.quartz import build

JAVA_DIR = build.JAVA_DIR
RUNTIME_JARS = ("quartz2.jar", "slf4j-api.jar", "slf4j-simple.jar", "jaxb-api.jar")
HERE = Path(__file__).parent
JAVA_SRC = HERE / "java"


def unavailable_reason() -> str | None:
    if shutil.which("java") is None:
        return "java is not installed (apt-get install default-jdk-headless)"
    reason = build.unavailable_reason()
    if reason:
        return reason
    missing = [j for j in RUNTIME_JARS if not (JAVA_DIR / j).exists()]
    if missing:
        return f"missing {', '.join(missing)} in {JAVA_DIR} (libquartz2-java, libslf4j-java)"
    return None


@dataclass(frozen=True)
class Built:
    plugin_jar: Path
    classes: Path

    def classpath(self) -> str:
        return os.pathsep.join([str(self.plugin_jar), str(self.classes),
                                *(str(JAVA_DIR / j) for j in RUNTIME_JARS)])


def compile_all(workdir: Path) -> Built:
    jar = build.build(workdir / "lib")
    classes = workdir / "classes"
    classes.mkdir(parents=True, exist_ok=True)
    sources = sorted(str(p) for p in JAVA_SRC.rglob("*.java"))
    cp = os.pathsep.join([str(jar), *(str(JAVA_DIR / j) for j in RUNTIME_JARS)])
    proc = subprocess.run(["javac", "-nowarn", "-d", str(classes), "-cp", cp, *sources],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"javac failed:\n{proc.stderr}")
    return Built(jar, classes)


def properties(xml_files: list[Path], spool: Path, authority: Path | None, *,
               host: str = "quartz-test", extra: dict[str, str] | None = None) -> str:
    props = {
        "org.quartz.scheduler.instanceName": "BridgeTest",
        "org.quartz.scheduler.skipUpdateCheck": "true",
        "org.quartz.threadPool.class": "org.quartz.simpl.SimpleThreadPool",
        "org.quartz.threadPool.threadCount": "6",
        "org.quartz.jobStore.class": "org.quartz.simpl.RAMJobStore",
        "org.quartz.jobStore.misfireThreshold": "60000",
        "test.jobFiles": ",".join(str(p) for p in xml_files),
        "org.quartz.plugin.bridge.class": build.PLUGIN_CLASS,
        "org.quartz.plugin.bridge.spoolDir": str(spool),
        "org.quartz.plugin.bridge.hostName": host,
    }
    if authority is not None:
        props["org.quartz.plugin.bridge.authorityDir"] = str(authority)
    props.update(extra or {})
    return "".join(f"{k} = {v}\n" for k, v in props.items())


@dataclass
class QuartzProcess:
    built: Built
    workdir: Path
    props: str
    limit_seconds: int = 60
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)
    stop_file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.workdir / "quartz.log"
        self.stop_file = self.workdir / "quartz.stop"

    def start(self) -> None:
        props_file = self.workdir / "quartz.properties"
        props_file.write_text(self.props)
        self.stop_file.unlink(missing_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["java", "-Duser.timezone=UTC", "-Xshare:auto",
                 "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
                 "-cp", self.built.classpath(), "QuartzRunner", str(props_file),
                 str(self.stop_file), str(self.limit_seconds)],
                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while "started" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Quartz did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> int:
        assert self.proc is not None
        self.stop_file.write_text("stop")
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def job_xml(jobs: list[dict[str, object]]) -> str:
    """A job_scheduling_data 2.0 document. Each job: name, group, cls, data (dict), and
    triggers: list of (trigger name, cron expression)."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n'
             '<job-scheduling-data xmlns="http://www.quartz-scheduler.org/xml/JobSchedulingData"'
             ' version="2.0">\n<schedule>\n']
    for job in jobs:
        data = "".join(f"<entry><key>{k}</key><value>{v}</value></entry>"
                       for k, v in dict(job.get("data", {})).items())  # type: ignore[call-overload]
        parts.append(
            f"<job><name>{job['name']}</name><group>{job['group']}</group>"
            f"<job-class>{job['cls']}</job-class><durability>false</durability>"
            f"<recover>false</recover><job-data-map>{data}</job-data-map></job>\n")
        for trigger, cron in job["triggers"]:  # type: ignore[attr-defined]
            parts.append(
                f"<trigger><cron><name>{trigger}</name><group>{job['group']}</group>"
                f"<job-name>{job['name']}</job-name><job-group>{job['group']}</job-group>"
                f"<misfire-instruction>MISFIRE_INSTRUCTION_DO_NOTHING</misfire-instruction>"
                f"<cron-expression>{cron}</cron-expression><time-zone>UTC</time-zone>"
                f"</cron></trigger>\n")
    parts.append("</schedule>\n</job-scheduling-data>\n")
    return "".join(parts)
