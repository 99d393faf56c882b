"""The shim runs the command exactly as cron would (guarantees: :mod:`legacy_wrappers.shim`).

:func:`run_command` starts ``shell -c command`` in its own session with cron's descriptors and
signal dispositions, passes output through (direct on Debian cron's read-write mail file,
teed over pipes otherwise) while keeping the sha256 of the merged output and a bounded
sample, forwards signals, and calls ``tick`` about every :data:`RENEW_SECONDS` (the lease).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.core.runs import SAMPLE_LIMIT, TRUNCATION_MARK, bound_sample
from bridge.store.bare import RENEW_SECONDS
from legacy_wrappers.shim_os import ERROR_EXIT, syslog

FORWARDED = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
INTERRUPTING = frozenset({"SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT"})
child_started = False  # set once the command runs: from then on it must never run twice


# --- running the command --------------------------------------------------------------------------


class Capture:
    """sha256 of the whole merged output, its head and its tail (for the bounded sample)."""

    HEAD = 64 * 1024
    TAIL = SAMPLE_LIMIT

    def __init__(self) -> None:
        import hashlib

        self.digest = hashlib.sha256()
        self.head = bytearray()
        self.tail = b""
        self.size = 0

    def feed(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.size += len(chunk)
        if len(self.head) < self.HEAD:
            self.head += chunk[: self.HEAD - len(self.head)]
        self.tail = (self.tail + chunk)[-self.TAIL:]

    def sample(self) -> str:
        if self.size <= self.HEAD:
            data = bytes(self.head)
        else:
            data = bytes(self.head[: self.TAIL]) + TRUNCATION_MARK.encode() + self.tail
        return bound_sample(data.decode("utf-8", "replace").replace("\x00", "\ufffd"))


@dataclass
class Child:
    """The outcome of the command: exit code (negative: killed by that signal) and output."""

    code: int
    started: datetime
    finished: datetime
    capture: Capture
    interrupted: bool = False
    exec_error: str | None = None


@dataclass
class _Forwarder:
    """Signal handlers that pass signals on to the shell (installed before it starts, only for
    signals not ignored: an ignored one stays ignored and is inherited ignored)."""

    pid: int | None = None
    pending: list[int] = field(default_factory=list)
    interrupted: bool = False
    reaped: bool = False  # the shell is gone: its pid may be reused, signal nobody

    def install(self) -> None:
        import signal

        for name in FORWARDED:
            sig = getattr(signal, name)
            if signal.getsignal(sig) != signal.SIG_IGN:
                signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        import signal

        if self.reaped:
            return
        self.interrupted |= signal.Signals(signum).name in INTERRUPTING
        if self.pid is None:
            self.pending.append(signum)
            return
        with suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def started(self, pid: int) -> None:
        self.pid = pid
        for signum in self.pending:
            self._handle(signum, None)


def _output_mode() -> str:
    """``direct`` when stdout and stderr are one regular file we can read back, else ``merged``
    (one file, e.g. cronie's pipe) or ``split``."""
    import stat

    try:
        out, err = os.fstat(1), os.fstat(2)
    except OSError:
        return "split"
    if (out.st_dev, out.st_ino) != (err.st_dev, err.st_ino):
        return "split"
    if stat.S_ISREG(out.st_mode) and _readable(1):
        return "direct"
    return "merged"


def _readable(fd: int) -> bool:
    import fcntl

    try:
        return fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDWR
    except OSError:
        return False


def run_command(shell: str, command: str, env: dict[str, str],
                tick: Callable[[], None] | None = None) -> Child:
    """Run ``shell -c command`` as cron would; ``tick`` is called about every RENEW_SECONDS."""
    import subprocess

    forwarder = _Forwarder()
    forwarder.install()
    mode = _output_mode()
    capture = Capture()
    start_offset = os.lseek(1, 0, os.SEEK_CUR) if mode == "direct" else 0
    pipes = _make_pipes(mode)
    started = datetime.now(UTC)
    try:
        proc = subprocess.Popen(
            [shell, "-c", command], executable=shell if "/" in shell else f"./{shell}",
            env=env, stdout=pipes[0][1] if pipes else None,
            stderr=pipes[-1][1] if pipes else None, close_fds=False,
            start_new_session=True, restore_signals=True)
    except OSError as e:
        for r, w in pipes:
            os.close(r)
            os.close(w)
        message = f"{shell}: execle: {os.strerror(e.errno or 0)}\n"
        os.write(2, message.encode(errors="replace"))
        capture.feed(message.encode(errors="replace"))
        return Child(ERROR_EXIT, started, datetime.now(UTC), capture, exec_error=message.strip())
    global child_started
    child_started = True
    forwarder.started(proc.pid)
    for _, w in pipes:
        os.close(w)
    if pipes:
        try:
            _pump(pipes, capture, proc, tick)
        except Exception as e:  # never abandon a running command: wait for it all the same
            syslog("err", f"output passthrough failed: {e!r}")
    code = _wait(proc, tick)
    forwarder.reaped = True
    if mode == "direct":
        _read_back(start_offset, capture)
    return Child(code, started, datetime.now(UTC), capture, forwarder.interrupted)


def _make_pipes(mode: str) -> list[tuple[int, int]]:
    if mode == "direct":
        return []
    return [os.pipe()] if mode == "merged" else [os.pipe(), os.pipe()]


def _wait(proc: Any, tick: Callable[[], None] | None) -> int:
    import subprocess

    while True:
        try:
            return int(proc.wait(timeout=RENEW_SECONDS))
        except subprocess.TimeoutExpired:
            if tick is not None:
                tick()


def _pump(pipes: list[tuple[int, int]], capture: Capture, proc: Any,
          tick: Callable[[], None] | None) -> None:
    """Copy each pipe to fd 1 (or 2 for the second) as data comes, until every pipe is at EOF."""
    import selectors

    sel = selectors.DefaultSelector()
    targets = {r: (1 if i == 0 else 2) for i, (r, _) in enumerate(pipes)}
    dead: set[int] = set()
    for r in targets:
        sel.register(r, selectors.EVENT_READ)
    next_tick = time.monotonic() + RENEW_SECONDS
    while sel.get_map():
        for key, _ in sel.select(max(0.0, next_tick - time.monotonic())):
            fd = int(key.fd)
            chunk = os.read(fd, 65536)
            if not chunk:
                sel.unregister(fd)
                os.close(fd)
                continue
            capture.feed(chunk)
            if targets[fd] not in dead and not _write_all(targets[fd], chunk):
                dead.add(targets[fd])  # nobody reads it any more: keep draining the command
        if time.monotonic() >= next_tick:
            next_tick = time.monotonic() + RENEW_SECONDS
            if tick is not None:
                tick()
    sel.close()


def _write_all(fd: int, data: bytes) -> bool:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        return False
    return True


def _read_back(offset: int, capture: Capture) -> None:
    while chunk := os.pread(1, 1 << 20, offset):
        capture.feed(chunk)
        offset += len(chunk)


def outcome_status(child: Child) -> str:
    """The runs/claims status of a finished command."""
    if child.code == 0:
        return "succeeded"
    return "interrupted" if child.interrupted else "failed"
