"""Run Quartz 2.3.2's own XMLSchedulingDataProcessor on a job XML file (a test oracle).

``load(path)`` compiles ``QuartzXmlOracle.java`` once per process (into a temp dir), generates
and compiles a one-line stub ``org.quartz.Job`` class for every ``job-class`` the file names
(Quartz refuses to load a job whose class is missing), runs the harness in a JVM whose default
zone is ``default_timezone`` and returns its JSON answer::

    {"ok": true, "load_millis": ..., "jobs": [...], "triggers": [...]}
    {"ok": false, "error": "...", "validation": [{"line": N, "message": "..."}]}

Needs ``java``/``javac`` and Debian's ``libquartz2-java`` jars in /usr/share/java;
``unavailable_reason()`` says what is missing (tests skip with that reason).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

JAVA_DIR = Path(os.environ.get("BRIDGE_JAVA_DIR", "/usr/share/java"))
JARS = ("quartz2.jar", "slf4j-api.jar", "slf4j-nop.jar", "jaxb-api.jar")
HARNESS = Path(__file__).with_name("QuartzXmlOracle.java")
SCHEMA_1_8 = "org/quartz/xml/job_scheduling_data_1_8.xsd"

_CLASS_RE = re.compile(rb"<(?:[\w.-]+:)?job-class\s*>\s*([^<]*?)\s*</")
_JAVA_NAME_RE = re.compile(r"^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$")


def unavailable_reason() -> str | None:
    """Why the oracle cannot run here, or None when it can."""
    for tool in ("java", "javac"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install default-jdk-headless)"
    missing = [jar for jar in JARS if not (JAVA_DIR / jar).exists()]
    if missing:
        return f"missing {', '.join(missing)} in {JAVA_DIR} (apt-get install libquartz2-java)"
    return None


def classpath(*extra: Path) -> str:
    return os.pathsep.join([*(str(p) for p in extra), *(str(JAVA_DIR / j) for j in JARS)])


@lru_cache(maxsize=1)
def _workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="quartz-xml-oracle-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@lru_cache(maxsize=1)
def _harness_dir() -> Path:
    source = HARNESS.read_bytes()
    out = _workdir() / ("harness-" + hashlib.sha256(source).hexdigest()[:12])
    if not (out / "QuartzXmlOracle.class").exists():
        out.mkdir(parents=True, exist_ok=True)
        _javac([HARNESS], out, classpath())
    return out


def _javac(sources: list[Path], out: Path, cp: str) -> None:
    proc = subprocess.run(
        ["javac", "-nowarn", "-d", str(out), "-cp", cp, *map(str, sources)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"javac failed:\n{proc.stderr}")


def job_classes(xml: bytes) -> list[str]:
    """The distinct, Java-legal job-class names an XML document mentions."""
    names = {m.group(1).decode("utf-8", "replace").strip() for m in _CLASS_RE.finditer(xml)}
    return sorted(n for n in names if _JAVA_NAME_RE.match(n) and not n.startswith("org.quartz."))


def _stub_dir(classes: list[str]) -> Path:
    key = hashlib.sha256("\n".join(classes).encode()).hexdigest()[:12]
    out = _workdir() / f"stubs-{key}"
    if out.exists():
        return out
    src = _workdir() / f"src-{key}"
    sources = []
    for name in classes:
        package, _, simple = name.rpartition(".")
        path = src / (name.replace(".", "/") + ".java")
        path.parent.mkdir(parents=True, exist_ok=True)
        header = f"package {package};\n" if package else ""
        path.write_text(
            header + f"public class {simple} implements org.quartz.Job {{"
            " public void execute(org.quartz.JobExecutionContext c) {} }\n"
        )
        sources.append(path)
    out.mkdir(parents=True)
    if sources:
        _javac(sources, out, classpath())
    return out


def load(
    path: Path | str, *, default_timezone: str = "UTC", schema: str | None = None
) -> dict[str, Any]:
    """What Quartz 2.3.2 schedules from ``path`` (see the module docstring)."""
    path = Path(path)
    stubs = _stub_dir(job_classes(path.read_bytes()))
    cmd = [
        "java",
        f"-Duser.timezone={default_timezone}",
        "-Xshare:auto",
        "-cp",
        classpath(_harness_dir(), stubs),
        "QuartzXmlOracle",
        str(path),
    ]
    if schema:
        cmd.append(schema)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"oracle failed ({proc.returncode}):\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result
