"""The shim runs the command exactly as cron would (guarantees: :mod:`legacy_wrappers.shim`).

:func:`run_as_cron` starts ``shell -c command`` in its own session with cron's descriptors and
signal dispositions, passes output through (direct on Debian cron's read-write mail file,
teed over pipes otherwise) while keeping the sha256 of the merged output and a bounded
sample, forwards signals, and calls ``tick`` about every :data:`RENEW_SECONDS` (the lease).

Hot path: the command starts with ``os.fork`` and ``os.execve`` (no ``subprocess``, whose
import costs more than the whole spawn), the shim waits on a pidfd and the pipes with
``select.poll``; this module imports only ``os``, ``time``, ``_signal``, ``select``,
``_sha256`` and ``_datetime`` (no ``dataclasses``/``typing``: their imports cost milliseconds
per cron job).
"""

from __future__ import annotations

import os
import select
import time

from bridge.core.samples import SAMPLE_LIMIT, TRUNCATION_MARK, bound_sample
from bridge.store.bare import RENEW_SECONDS, UTC, datetime
from legacy_wrappers.shim_os import ERROR_EXIT, sha256, signals, syslog

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the hot path
if TYPE_CHECKING:
    from collections.abc import Callable

signal = signals()
FORWARDED = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
INTERRUPTING = frozenset(getattr(signal, n) for n in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT"))
RESET_IN_CHILD = ("SIGPIPE", "SIGXFSZ")  # CPython ignores these; cron's children get defaults
child_started = False  # set once the command runs: from then on it must never run twice


# --- output ---------------------------------------------------------------------------------------


class Capture:
    """sha256 of the whole merged output, its head and its tail (for the bounded sample)."""

    HEAD = 64 * 1024
    TAIL = SAMPLE_LIMIT

    def __init__(self) -> None:
        self.digest = sha256()
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


class Child:
    """The outcome of the command: exit code (negative: killed by that signal) and output."""

    __slots__ = ("capture", "code", "exec_error", "finished", "interrupted", "started")

    def __init__(self, code: int, started: datetime, finished: datetime, capture: Capture,
                 interrupted: bool = False, exec_error: str | None = None) -> None:
        self.code, self.started, self.finished = code, started, finished
        self.capture, self.interrupted, self.exec_error = capture, interrupted, exec_error


class _Forwarder:
    """Signal handlers that pass signals on to the shell (installed before it starts, only for
    signals not ignored: an ignored one stays ignored and is inherited ignored)."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.pending: list[int] = []
        self.interrupted = False
        self.reaped = False  # the shell is gone: its pid may be reused, signal nobody

    def install(self) -> None:
        for name in FORWARDED:
            sig = getattr(signal, name)
            if signal.getsignal(sig) != signal.SIG_IGN:
                signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.reaped:
            return
        self.interrupted |= signum in INTERRUPTING
        if self.pid is None:
            self.pending.append(signum)
            return
        try:  # noqa: SIM105 (contextlib is not imported on the hot path)
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

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


# --- running the command --------------------------------------------------------------------------


def run_as_cron(shell: str, command: str, env: dict[str, str],
                tick: Callable[[], None] | None = None) -> Child:
    """Run ``shell -c command`` as cron would; ``tick`` is called about every RENEW_SECONDS."""
    forwarder = _Forwarder()
    forwarder.install()
    mode = _output_mode()
    capture = Capture()
    start_offset = os.lseek(1, 0, os.SEEK_CUR) if mode == "direct" else 0
    pipes = _make_pipes(mode)
    started = datetime.now(UTC)
    try:
        pid = _spawn(shell, command, env, pipes)
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
    forwarder.started(pid)
    for _, w in pipes:
        os.close(w)
    exited = _Exit(pid)
    try:
        if pipes:
            try:
                _pump(pipes, capture, tick)
            except Exception as e:  # never abandon a running command: wait for it all the same
                syslog("err", f"output passthrough failed: {e!r}")
        code = exited.wait(tick)
    finally:
        exited.close()
    forwarder.reaped = True
    if mode == "direct":
        _read_back(start_offset, capture)
    return Child(code, started, datetime.now(UTC), capture, forwarder.interrupted)


def _spawn(shell: str, command: str, env: dict[str, str], pipes: list[tuple[int, int]]) -> int:
    """``execle(shell, shell, "-c", command, env)`` in a new session, with cron's descriptors
    (the pipes' write ends on 1 and 2 when teeing) and CPython's ignored signals back to their
    defaults, as ``subprocess`` with ``start_new_session`` and ``restore_signals`` does. (Not
    ``posix_spawn``: glibc's leaves its internal signals 32 and 33 ignored in the command.)
    Raises OSError when the shell cannot be executed."""
    path = shell if "/" in shell else f"./{shell}"
    reset = [getattr(signal, name) for name in RESET_IN_CHILD if hasattr(signal, name)]
    report_r, report_w = os.pipe()  # close-on-exec: EOF at once when the exec succeeds
    pid = os.fork()
    if pid == 0:  # the child: only system calls until execve, then the shell
        code = -1  # not an errno: something other than the exec failed
        try:
            os.setsid()
            for sig in reset:
                signal.signal(sig, signal.SIG_DFL)
            if pipes:
                os.dup2(pipes[0][1], 1)
                os.dup2(pipes[-1][1], 2)
            os.execve(path, [shell, "-c", command], env)
        except OSError as e:
            code = e.errno or 0
        finally:
            os.write(report_w, str(code).encode())
            os._exit(ERROR_EXIT)
    os.close(report_w)
    try:
        failure = os.read(report_r, 32)
    finally:
        os.close(report_r)
    if failure:
        os.waitpid(pid, 0)
        errno = int(failure)
        raise OSError(errno, os.strerror(errno))
    return pid


def _make_pipes(mode: str) -> list[tuple[int, int]]:
    if mode == "direct":
        return []
    return [os.pipe()] if mode == "merged" else [os.pipe(), os.pipe()]


class _Exit:
    """Waiting for the shell's exit with a lease tick: on a pidfd (Linux 5.3+), else polling."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self.fd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.fd = None

    def wait(self, tick: Callable[[], None] | None) -> int:
        """The exit code (negative: the signal that killed it), reaping the shell."""
        poller = None
        if self.fd is not None:
            poller = select.poll()
            poller.register(self.fd, select.POLLIN)
        delay = 0.0005
        next_tick = time.monotonic() + RENEW_SECONDS
        while True:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            left = next_tick - time.monotonic()
            if left <= 0:
                next_tick = time.monotonic() + RENEW_SECONDS
                if tick is not None:
                    tick()
                continue
            if poller is not None:
                poller.poll(left * 1000)
            else:  # no pidfd: poll the exit as subprocess does (backing off to 50 ms)
                time.sleep(min(delay, left))
                delay = min(delay * 2, 0.05)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _pump(pipes: list[tuple[int, int]], capture: Capture,
          tick: Callable[[], None] | None) -> None:
    """Copy each pipe to fd 1 (or 2 for the second) as data comes, until every pipe is at EOF."""
    poller = select.poll()
    targets = {r: (1 if i == 0 else 2) for i, (r, _) in enumerate(pipes)}
    dead: set[int] = set()
    for r in targets:
        poller.register(r, select.POLLIN)
    open_fds = set(targets)
    next_tick = time.monotonic() + RENEW_SECONDS
    while open_fds:
        for fd, _ in poller.poll(max(0.0, next_tick - time.monotonic()) * 1000):
            chunk = os.read(fd, 65536)
            if not chunk:
                poller.unregister(fd)
                open_fds.discard(fd)
                os.close(fd)
                continue
            capture.feed(chunk)
            if targets[fd] not in dead and not _write_all(targets[fd], chunk):
                dead.add(targets[fd])  # nobody reads it any more: keep draining the command
        if time.monotonic() >= next_tick:
            next_tick = time.monotonic() + RENEW_SECONDS
            if tick is not None:
                tick()


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
