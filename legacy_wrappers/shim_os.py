"""What the legacy shim does exactly as cron would: the command's environment, ``execve`` of the
shell, and the shim's own errors to syslog (never to the job's output); and the two cheapest
primitives its hot path shares (:data:`signals`, :func:`sha256`). Imports only ``os``
(``_signal`` and ``syslog`` when used): the unmanaged path of :mod:`legacy_wrappers.shim`.

``_signal`` is the C module under ``signal`` (same functions, plain ints instead of the
``IntEnum`` wrappers whose ``enum`` import costs the hot path more than the rest of its
signal handling); :func:`sha256` takes the interpreter's built-in SHA-256 before OpenSSL's
(same digests; loading libcrypto through ``hashlib`` costs milliseconds per cron job)."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the fast path ~5 ms
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

STRIPPED = ("BRIDGE_JOB", "BRIDGE_SHELL")
ERROR_EXIT = 1  # cron's exit status when it cannot exec the shell


def child_environment(env: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The shell to run and the command's environment: cron's, SHELL restored, ours removed."""
    shell = env.get("BRIDGE_SHELL") or "/bin/sh"
    out = {k: v for k, v in env.items() if k not in STRIPPED}
    out["SHELL"] = shell
    return shell, out


def original_environment() -> dict[str, str]:
    """The environment cron passed to ``execve``, before CPython touched it.

    CPython's start-up may coerce a C locale by setting ``LC_CTYPE=C.UTF-8`` in its own
    environment (PEP 538), which ``os.environ`` then shows; the command must not inherit that.
    ``/proc/self/environ`` still holds the block execve received. First occurrence of a name
    wins (as in ``os.environ``); undecodable bytes round-trip through ``surrogateescape``."""
    try:
        with open("/proc/self/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return dict(os.environ)
    env: dict[str, str] = {}
    for entry in raw.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep and name:
            env.setdefault(os.fsdecode(name), os.fsdecode(value))
    return env


def quiet_warnings() -> None:
    """``warnings.simplefilter("ignore")`` without importing ``warnings``: a library warning on
    stderr would be mailed as the job's output. The filter list is the C module's (the one
    ``warnings`` adopts if it is imported later)."""
    import _warnings

    _warnings.filters.insert(0, ("ignore", None, Warning, None, 0))
    _warnings._filters_mutated()  # type: ignore[attr-defined]


def signals() -> Any:
    """The ``signal`` functions and constants (``signal``, ``getsignal``, ``SIG_DFL`` ...)."""
    import _signal

    return _signal


def sha256(data: bytes = b"") -> Any:
    """A ``hashlib``-compatible SHA-256 object (``update``, ``hexdigest``)."""
    try:
        from _sha256 import sha256 as builtin  # CPython 3.11
    except ImportError:
        try:
            from _sha2 import sha256 as builtin  # CPython 3.12+
        except ImportError:
            from hashlib import sha256 as builtin
    return builtin(data)


def _restore_python_signals() -> None:
    """Undo what CPython changed at start-up, so exec'd programs inherit cron's dispositions."""
    signal = signals()
    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)


def exec_shell(shell: str, args: list[str], env: dict[str, str]) -> None:
    """Replace this process by ``shell args...`` exactly as cron's ``execle`` would."""
    _restore_python_signals()
    try:
        os.execve(shell, [shell, *args], env)
    except OSError as e:
        os.write(2, f"{shell}: execle: {os.strerror(e.errno or 0)}\n".encode(errors="replace"))
        os._exit(ERROR_EXIT)


def exit_now(code: int) -> None:
    """``sys.exit(code)`` without the interpreter's teardown (module and object finalization:
    about 1.5 ms of every managed cron job). What a normal exit does that matters still
    happens: ``atexit`` functions run and ``sys.stdout``/``sys.stderr`` are flushed (a failing
    flush is not reported: stderr is the job's own output); with threads about (never on the
    hot path), a normal exit, which waits for them."""
    import sys

    if "threading" in sys.modules:
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass
    os._exit(code)


def syslog(level: str, message: str) -> None:
    """Errors of the shim itself go to syslog (facility cron), never to the job's output."""
    try:
        import syslog as _syslog

        priorities = {"err": _syslog.LOG_ERR, "warning": _syslog.LOG_WARNING}
        _syslog.openlog("bridge-cron-shell", _syslog.LOG_PID, _syslog.LOG_CRON)
        _syslog.syslog(priorities.get(level, _syslog.LOG_NOTICE), message.replace("\n", " ")[:8000])
    except Exception:
        pass
