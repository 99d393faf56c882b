"""Run ``QuartzJdbcHarness.java``: a real Quartz 2.3.2 scheduler on a JDBC JobStore.

``run(store, sched_name, use_properties)`` compiles the harness once per machine (into a temp
dir named after its source's hash, like tests/oracle/quartz_oracle.py), runs it in one JVM
against ``store`` and returns what the running scheduler reported for each trigger: its state
and its next fire times (``Quartz.next_ms``, epoch milliseconds, up to six).

Needs java/javac and Debian's libquartz2-java, libpostgresql-jdbc-java and libmariadb-java
(``unavailable_reason()`` says what is missing).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

JAVA_DIR = Path(os.environ.get("BRIDGE_JAVA_DIR", "/usr/share/java"))
JARS = (
    "quartz2.jar",
    "slf4j-api.jar",
    "slf4j-nop.jar",
    "postgresql.jar",
    "mariadb-java-client.jar",
)
HERE = Path(__file__).resolve().parent
SOURCE = HERE / "QuartzJdbcHarness.java"


@dataclass(frozen=True)
class JdbcStore:
    """A private database with the Quartz tables, as JDBC and as SQLAlchemy see it."""

    backend: str  # postgresql | mariadb
    jdbc_url: str
    user: str
    password: str
    sqlalchemy_url: str

    @property
    def driver(self) -> str:
        return (
            "org.postgresql.Driver" if self.backend == "postgresql" else "org.mariadb.jdbc.Driver"
        )

    @property
    def delegate(self) -> str:
        name = "PostgreSQLDelegate" if self.backend == "postgresql" else "StdJDBCDelegate"
        return f"org.quartz.impl.jdbcjobstore.{name}"


@dataclass(frozen=True)
class QuartzTrigger:
    state: str
    next_ms: tuple[int, ...]


def unavailable_reason() -> str | None:
    for tool in ("java", "javac"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install default-jdk-headless)"
    missing = [j for j in JARS if not (JAVA_DIR / j).exists()]
    if missing:
        return (
            f"missing {', '.join(missing)} in {JAVA_DIR} (apt-get install libquartz2-java "
            "libpostgresql-jdbc-java libmariadb-java)"
        )
    return None


def classpath(*extra: Path) -> str:
    return os.pathsep.join([*(str(p) for p in extra), *(str(JAVA_DIR / j) for j in JARS)])


@lru_cache(maxsize=1)
def _classes() -> Path:
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    out = Path(tempfile.gettempdir()) / f"quartz-jdbc-harness-{digest}"
    if not (out / "QuartzJdbcHarness.class").exists():
        partial = Path(tempfile.mkdtemp(prefix="quartz-jdbc-harness-"))
        proc = subprocess.run(
            ["javac", "-nowarn", "-encoding", "UTF-8", "-d", str(partial), "-cp", classpath(),
             str(SOURCE)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"javac failed:\n{proc.stderr}")
        try:
            partial.rename(out)
        except OSError:  # another worker compiled it first
            shutil.rmtree(partial, ignore_errors=True)
    return out


def run(
    store: JdbcStore, *, sched_name: str, use_properties: bool, prefix: str = "QRTZ_",
    jvm_zone: str = "America/New_York", plugin: tuple[Path, Path, Path] | None = None,
) -> dict[str, QuartzTrigger]:  # fmt: skip
    """Schedule the harness's jobs in ``sched_name`` and report each trigger (group.name).
    ``plugin`` = (cron-bridge-quartz.jar, spool dir, export file): run the bridge's plugin."""
    extra = [] if plugin is None else [str(plugin[1]), str(plugin[2])]
    cp = classpath(_classes(), *([plugin[0]] if plugin else []))
    proc = subprocess.run(
        ["java", f"-Duser.timezone={jvm_zone}", "-cp", cp, "QuartzJdbcHarness",
         store.driver, store.jdbc_url, store.user, store.password, store.delegate, prefix,
         sched_name, "true" if use_properties else "false", *extra],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"Quartz harness failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = {}
    for line in proc.stdout.splitlines():
        if not line.startswith("T\t"):
            continue
        _, key, state, times = line.split("\t")
        out[key] = QuartzTrigger(state, tuple(int(t) for t in times.split(",") if t))
    return out


@lru_cache(maxsize=1)
def plugin_jar() -> Path:
    """cron-bridge-quartz.jar, built once per machine and plugin source."""
    from legacy_wrappers.quartz import build

    digest = hashlib.sha256(b"".join(p.read_bytes() for p in build.sources())).hexdigest()[:12]
    out = Path(tempfile.gettempdir()) / f"cron-bridge-quartz-{digest}"
    jar = out / build.JAR_NAME
    if not jar.exists():
        build.build(out)
    return jar
