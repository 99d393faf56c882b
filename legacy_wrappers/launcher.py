"""The shim's fast launcher: ``bridge-cron-shell`` started by ``python -I -S``.

Cron starts the shim once per legacy job, so its interpreter start is paid on every run. The
console script pip generates starts a full interpreter: ``site`` processes every ``.pth`` file
of the environment (an editable install's import finder alone costs tens of milliseconds)
before the shim's first line. The launcher this module writes is a four-line script whose
``#!`` line runs the same interpreter with ``-I -S`` (isolated: no ``PYTHON*`` variables from a
crontab, no user site; no ``site``) and that puts on ``sys.path`` exactly the directory holding
the bridge's packages and the environment's ``site-packages`` (for the rare paths: a contested
claim, a spool upload, PostgreSQL through psycopg), after the standard library.

Where: :func:`default_target`, ``<sys.prefix>/libexec/cron-bridge/bridge-cron-shell`` -- a path
no package manager owns, so a ``pip install --force-reinstall`` or an upgrade (which rewrite
the console script ``bin/bridge-cron-shell``) leaves it in place. ``bridge legacy rewrite``
writes it there (or finds it current, :func:`ensure`) and points ``SHELL`` at it, so the fast
start is what a rewritten crontab gets; the image (``docker/Dockerfile``) writes it at build
time.

    python -m legacy_wrappers.launcher [TARGET]

writes it atomically to ``TARGET`` (mode 0755; default :func:`default_target`), e.g. over the
console script ``bin/bridge-cron-shell`` for crontabs that already name that path (a reinstall
puts pip's slower script back there; it works all the same).
"""

from __future__ import annotations

import os
import sys
import sysconfig

SHEBANG_LIMIT = 255  # bytes the kernel reads of a "#!" line (BINPRM_BUF_SIZE - 1)


def search_path() -> list[str]:
    """The directories the launcher adds after the standard library: the one holding the
    ``legacy_wrappers`` and ``bridge`` packages, then the environment's site-packages."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = [root]
    for key in ("purelib", "platlib"):
        path = sysconfig.get_paths()[key]
        if path not in out:
            out.append(path)
    return out


def launcher_text(python: str, path: list[str]) -> str:
    shebang = f"#!{python} -IS"
    if len(shebang.encode()) > SHEBANG_LIMIT or any(c.isspace() for c in python):
        raise ValueError(f"interpreter path unusable in a #! line: {python!r}")
    return (f"{shebang}\n"
            "# cron-bridge: the shim's fast launcher (python -m legacy_wrappers.launcher)\n"
            "import sys\n"
            f"sys.path += {path!r}\n"
            "from legacy_wrappers.shim import launch\n"
            "launch()\n")


def default_target() -> str:
    """Where ``bridge legacy rewrite`` keeps the launcher: under this environment's prefix,
    outside every directory pip writes to."""
    return os.path.join(sys.prefix, "libexec", "cron-bridge", "bridge-cron-shell")


def ensure(target: str | None = None) -> str:
    """The launcher at ``target`` (default :func:`default_target`), written only when missing
    or different (another interpreter, a moved install); returns the absolute path. Raises
    OSError when it cannot be written there."""
    target = os.path.abspath(target or default_target())
    text = launcher_text(sys.executable, search_path())
    try:
        with open(target, encoding="utf-8") as f:
            current = f.read() == text
        if current and os.access(target, os.X_OK):
            return target
    except (OSError, UnicodeDecodeError):
        pass
    return install(target)


def install(target: str, python: str | None = None) -> str:
    """Write the launcher to ``target`` atomically (0755), creating its directory (0755) when
    missing; returns the absolute path."""
    target = os.path.abspath(target)
    text = launcher_text(python or sys.executable, search_path())
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    tmp = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755)
    try:
        os.write(fd, text.encode())
        os.fchmod(fd, 0o755)  # whatever the umask
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    return target


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1 or (args and args[0].startswith("-")):
        print("usage: python -m legacy_wrappers.launcher [TARGET]", file=sys.stderr)
        return 2
    target = args[0] if args else default_target()
    try:
        written = install(target)
    except (OSError, ValueError) as e:
        print(f"{target}: {e}", file=sys.stderr)
        return 1
    print(written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
