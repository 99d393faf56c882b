"""Ask Quartz 2.3.2's own ``CronExpression`` for fire times (a test oracle).

``run(cases)`` compiles ``QuartzOracle.java`` once per process (into a temp dir) and evaluates a
whole batch of :class:`Case` in ONE JVM (start-up costs about half a second; a case costs
microseconds), returning one :class:`Answer` per case, in order.

* mode ``"E"``: ``n`` fire times of ``CronExpression.getNextValidTimeAfter`` chained from
  ``start_ms`` in zone ``tz`` (``setTimeZone(TimeZone.getTimeZone(tz))``);
* mode ``"T"``: the same through a ``CronTriggerImpl`` with ``trigger_start``/``trigger_end``
  (``getFireTimeAfter``), to check start/end-time semantics;
* mode ``"V"``: parse only (``Answer.error`` is Quartz's ParseException message, or None).

Needs ``java``/``javac`` and Debian's ``libquartz2-java`` jars in /usr/share/java;
``unavailable_reason()`` says what is missing (tests skip with that reason).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

JAVA_DIR = Path(os.environ.get("BRIDGE_JAVA_DIR", "/usr/share/java"))
JARS = ("quartz2.jar", "slf4j-api.jar", "slf4j-nop.jar")
HARNESS = Path(__file__).with_name("QuartzOracle.java")


@dataclass(frozen=True)
class Case:
    expr: str
    tz: str = "UTC"
    start_ms: int = 0
    n: int = 12
    mode: str = "E"
    trigger_start_ms: int | None = None
    trigger_end_ms: int | None = None

    def line(self) -> str:
        expr = self.expr.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
        expr = expr.replace("\r", "\\r")
        fields = [self.mode, expr, self.tz, str(self.start_ms), str(self.n)]
        if self.mode == "T":
            fields += [_opt(self.trigger_start_ms), _opt(self.trigger_end_ms)]
        return "\t".join(fields)


@dataclass(frozen=True)
class Answer:
    kind: str  # OK | ERR | EXC | TIMEOUT
    millis: tuple[int, ...] = ()
    ended: bool = False  # Quartz returned null (no further fire time)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "OK"


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)


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
def _harness_dir() -> Path:
    source = HARNESS.read_bytes()
    out = Path(tempfile.gettempdir()) / ("quartz-oracle-" + hashlib.sha256(source).hexdigest()[:12])
    if not (out / "QuartzOracle.class").exists():
        out.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            ["javac", "-nowarn", "-d", str(out), "-cp", classpath(), str(HARNESS)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"javac failed:\n{proc.stderr}")
    return out


def _parse(line: str) -> Answer:
    kind, _, rest = line.partition("\t")
    if kind == "OK":
        parts = [p for p in rest.split(",") if p]
        ended = bool(parts) and parts[-1] == "END"
        return Answer("OK", tuple(int(p) for p in parts if p != "END"), ended)
    if kind in ("ERR", "EXC"):
        return Answer(kind, error=rest)
    return Answer(kind, error=kind)


def run(cases: Sequence[Case], *, timeout: float = 900) -> list[Answer]:
    """Evaluate every case with Quartz in one JVM; answers in the same order."""
    if not cases:
        return []
    payload = "".join(c.line() + "\n" for c in cases)
    proc = subprocess.run(
        ["java", "-Duser.timezone=UTC", "-Xss4m", "-cp", classpath(_harness_dir()), "QuartzOracle"],
        input=payload,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = proc.stdout.split("\n")[:-1]
    if proc.returncode != 0 or len(lines) != len(cases):
        raise RuntimeError(
            f"oracle failed ({proc.returncode}, {len(lines)}/{len(cases)} answers):\n"
            f"{proc.stderr[-2000:]}"
        )
    return [_parse(line) for line in lines]


def validate(expressions: Sequence[str]) -> list[str | None]:
    """Quartz's ParseException message per expression (None = Quartz accepts it)."""
    answers = run([Case(e, mode="V") for e in expressions])
    return [a.error for a in answers]
