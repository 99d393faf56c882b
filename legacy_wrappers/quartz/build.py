"""Build ``cron-bridge-quartz.jar``, the Quartz listener plugin, with the local JDK.

Usage (operators)::

    python -m legacy_wrappers.quartz.build /opt/quartz-app/lib
    # -> /opt/quartz-app/lib/cron-bridge-quartz.jar; put it on the Quartz application's
    #    classpath and configure org.quartz.plugin.bridge.* (examples/quartz/quartz.properties)

``build(out_dir)`` compiles every ``src/**/*.java`` with ``javac --release 8`` (the jar then
runs on any JRE the Quartz 2.3 application uses) against the Quartz 2.3.x and SLF4J API jars
(``--quartz-jar``/``--slf4j-jar``, default Debian's ``/usr/share/java/quartz2.jar`` and
``slf4j-api.jar``; ``BRIDGE_JAVA_DIR`` moves the default directory) and packs the classes with
``jar``. The plugin needs nothing at run time beyond what Quartz itself needs. Tests call
:func:`build` into a temporary directory; :func:`unavailable_reason` says why it cannot run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = Path(__file__).with_name("src")
JAR_NAME = "cron-bridge-quartz.jar"
PLUGIN_CLASS = "cronbridge.quartz.BridgePlugin"
JAVA_DIR = Path(os.environ.get("BRIDGE_JAVA_DIR", "/usr/share/java"))


class BuildError(RuntimeError):
    """javac or jar failed (the message holds their output)."""


def default_jars() -> tuple[Path, Path]:
    return JAVA_DIR / "quartz2.jar", JAVA_DIR / "slf4j-api.jar"


def unavailable_reason(quartz_jar: Path | None = None, slf4j_jar: Path | None = None) -> str | None:
    """Why the plugin cannot be built here, or None."""
    for tool in ("javac", "jar"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install default-jdk-headless)"
    dq, ds = default_jars()
    for jar in (quartz_jar or dq, slf4j_jar or ds):
        if not jar.exists():
            return f"{jar} is missing (apt-get install libquartz2-java libslf4j-java)"
    return None


def sources() -> list[Path]:
    return sorted(SRC.rglob("*.java"))


def build(out_dir: str | os.PathLike[str], *, quartz_jar: Path | None = None,
          slf4j_jar: Path | None = None) -> Path:
    """Compile the plugin into ``out_dir/cron-bridge-quartz.jar`` and return its path."""
    dq, ds = default_jars()
    classpath = os.pathsep.join(str(p) for p in (quartz_jar or dq, slf4j_jar or ds))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jar_path = out / JAR_NAME
    with tempfile.TemporaryDirectory(prefix="cron-bridge-quartz-") as tmp:
        classes = Path(tmp) / "classes"
        classes.mkdir()
        _run(["javac", "--release", "8", "-nowarn", "-encoding", "UTF-8", "-d", str(classes),
              "-cp", classpath, *map(str, sources())], "javac")
        partial = Path(tmp) / JAR_NAME
        _run(["jar", "--create", "--file", str(partial), "-C", str(classes), "."], "jar")
        shutil.copyfile(partial, jar_path.with_suffix(".tmp"))
        os.replace(jar_path.with_suffix(".tmp"), jar_path)
    return jar_path


def _run(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BuildError(f"{what}: {e}") from e
    if proc.returncode != 0:
        raise BuildError(f"{what} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build cron-bridge-quartz.jar (Quartz plugin).")
    parser.add_argument("out_dir", help="directory to write cron-bridge-quartz.jar into")
    parser.add_argument("--quartz-jar", type=Path, help="Quartz 2.3.x jar to compile against")
    parser.add_argument("--slf4j-jar", type=Path, help="slf4j-api jar to compile against")
    args = parser.parse_args(argv)
    reason = unavailable_reason(args.quartz_jar, args.slf4j_jar)
    if reason:
        print(f"cannot build: {reason}", file=sys.stderr)
        return 2
    try:
        path = build(args.out_dir, quartz_jar=args.quartz_jar, slf4j_jar=args.slf4j_jar)
    except BuildError as e:
        print(str(e), file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
