"""Run a job's handler exactly as Debian cron (3.0pl1) would, and say what happened.

Command handlers (facts verified against the real daemon: tests/wrappers/test_runner_vs_cron.py):

* argv is ``[$SHELL, "-c", command]`` (``$SHELL``: the crontab's SHELL, default /bin/sh), in a
  new session (cron jobs are session and process-group leaders: ``pid == pgid == sid``).
* stdin is always a pipe: it carries ``handler.stdin`` (the text after the first ``%``, already
  turned into lines by the importer) or is closed at once (an empty pipe, *not* /dev/null).
* Environment: pam_env's files (/etc/environment, /etc/default/locale: Debian's
  /etc/pam.d/cron), overlaid by the crontab's variables, then cron's defaults where the crontab
  set none: ``SHELL=/bin/sh``, ``HOME=<passwd home>``, ``PATH=/usr/bin:/bin``; ``LOGNAME`` is
  always the job's user (a crontab ``LOGNAME=`` line is overridden). No ``USER``.
* Working directory: ``$HOME`` of that environment (a crontab ``HOME=/tmp`` moves it); when that
  directory does not exist cron stays in its own directory, /var/spool/cron.
* User: as root, the job's user with its groups (``initgroups``); not as root, only the current
  user: any other user is refused (never silently run as the wrong user).
* stdout and stderr are merged (as cron mails them): the runner keeps the SHA-256 of the full
  stream and its first 64 KiB as text (NUL made U+FFFD so PostgreSQL accepts it). No output
  digests as ``sha256(b"")``.
* A timeout or :meth:`CommandRun.terminate` sends SIGTERM to the whole process group, then
  SIGKILL after ``grace`` seconds; the outcome is ``timed_out`` / ``interrupted``.
* ``exit_status`` is the shell's exit code, negative (``-N``) when it died from signal N.
* Unlike cron, a command does not outlive its runner: if the runner's process is SIGKILLed, a
  watchdog (one ``sh`` per process) kills the job's process group, so a crashed run cannot overlap
  the run that takes its slot over.
* **Gated start** (``gated=True``, what ``bridge.run_job`` uses): the process is forked as a tiny
  ``/bin/sh`` that first reads one line (``go``) from its stdin pipe, then execs the job's shell
  with the rest of the pipe as the job's stdin (same pid, so
  ``pid == pgid == sid`` still holds and argv is exactly cron's). The caller records "started,
  pid N" durably (``on_start``) and only then releases the gate; if the caller dies first, the
  gate reads EOF and exits 127 without running anything. So a recorded start with a pid means
  the command may have run, and no recorded pid means it certainly did not.

Not replicated: pam_limits / pam_loginuid / /etc/security/pam_env.conf (only the two plain
files are read), MAILTO mail, the worker's umask (inherited, 022 under systemd like cron's).

Callable handlers run in-process (same :class:`RunOutcome`): exit status 0 or 1, output is what
the callable wrote to ``sys.stdout``/``sys.stderr``, an exception becomes ``failed`` with its
class and message. Timeouts use SIGALRM and so apply only on the main thread; an in-process call
cannot be interrupted by a warm shutdown (it is left to finish).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib
import io
import os
import pwd
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from bridge.core.spec import CallableHandler, CommandHandler

SAMPLE_BYTES = 64 * 1024
DEFAULT_PATH = "/usr/bin:/bin"
DEFAULT_SHELL = "/bin/sh"
CRON_SPOOL_DIR = "/var/spool/cron"
PAM_ENV_FILES = ("/etc/environment", "/etc/default/locale")
DEFAULT_GRACE = 10.0
POLL_SECONDS = 0.1
GATE_SHELL = "/bin/sh"
# reads one line from stdin (EOF: the runner died before releasing it -> never run; shells read
# a pipe byte by byte, so nothing after that line is consumed), then becomes the job's shell in
# place (same pid / process group / session) with the rest of the pipe as its stdin
GATE_SCRIPT = 'IFS= read -r _ || exit 127; exec "$@"'
GATE_LINE = b"go\n"


class OutcomeStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    INTERRUPTED = "interrupted"
    ERROR = "error"  # never started: unknown user, refused user, missing shell


@dataclass(frozen=True)
class RunOutcome:
    status: OutcomeStatus
    exit_status: int | None
    started_at: datetime
    finished_at: datetime
    output_digest: str | None
    output_sample: str | None
    error: str | None
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is OutcomeStatus.SUCCEEDED


class RunnerError(Exception):
    """A command that cannot be started as asked (the message is the recorded reason)."""


# --- pure core --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class ExecPlan:
    """Everything needed to start the command, decided before any process exists."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    home: str
    stdin: bytes
    account: Account
    switch_user: bool


def parse_env_file(text: str) -> dict[str, str]:
    """pam_env's plain ``KEY=VALUE`` files (comments, ``export``, surrounding quotes)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, value = line.split("=", 1)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if key and key.replace("_", "a").isalnum():
            out[key] = value
    return out


def cron_environment(
    job_env: Sequence[tuple[str, str]], account: Account, shell: str,
    pam_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment Debian cron gives a job (pure)."""
    env = dict(pam_env or {})
    crontab = dict(job_env)
    env.update(crontab)
    if "SHELL" not in crontab:
        env["SHELL"] = shell
    if "HOME" not in crontab:
        env["HOME"] = account.home
    if "PATH" not in crontab:
        env["PATH"] = DEFAULT_PATH
    env["LOGNAME"] = account.name
    return env


def check_user(account: Account, current_uid: int) -> bool:
    """Whether we must switch to ``account``; raise RunnerError if we may not run as it."""
    if account.uid == current_uid:
        return False
    if current_uid == 0:
        return True
    try:
        me = pwd.getpwuid(current_uid).pw_name
    except KeyError:
        me = f"uid {current_uid}"
    raise RunnerError(
        f"job runs as '{account.name}' but this worker runs as '{me}' (not root): "
        "refusing to run it as another user"
    )


def plan_command(
    handler: CommandHandler, account: Account, current_uid: int,
    pam_env: Mapping[str, str] | None = None, *, extra_env: Mapping[str, str] | None = None,
    command: str | None = None,
) -> ExecPlan:
    """Decide argv, environment, stdin and identity for ``handler`` (pure)."""
    switch = check_user(account, current_uid)
    shell = dict(handler.env).get("SHELL") or handler.shell or DEFAULT_SHELL
    env = cron_environment(handler.env, account, shell, pam_env)
    env.update(extra_env or {})
    stdin = (handler.stdin or "").encode()
    argv = (shell, "-c", command if command is not None else handler.command)
    return ExecPlan(argv, env, env["HOME"], stdin, account, switch)


def sample_text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


# --- edges: accounts, files ------------------------------------------------------------------


def lookup_account(user: str | None) -> Account:
    """The passwd entry of ``user`` (None: the current user); RunnerError if unknown."""
    try:
        entry = pwd.getpwuid(os.geteuid()) if user is None else pwd.getpwnam(user)
    except KeyError as e:
        raise RunnerError(f"unknown user '{user}' (no passwd entry)") from e
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def read_pam_env(files: Sequence[str] = PAM_ENV_FILES) -> dict[str, str]:
    env: dict[str, str] = {}
    for name in files:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            env.update(parse_env_file(Path(name).read_text()))
    return env


def working_directory(home: str) -> str:
    if os.path.isdir(home):
        return home
    return CRON_SPOOL_DIR if os.path.isdir(CRON_SPOOL_DIR) else "/"


def _groups(account: Account) -> list[int]:
    try:
        return os.getgrouplist(account.name, account.gid)
    except OSError:
        return [account.gid]


# --- the process --------------------------------------------------------------------------------


@dataclass
class _Capture:
    digest: Any = field(default_factory=hashlib.sha256)
    sample: bytearray = field(default_factory=bytearray)
    size: int = 0

    def feed(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.size += len(chunk)
        room = SAMPLE_BYTES - len(self.sample)
        if room > 0:
            self.sample += chunk[:room]


class CommandRun:
    """One started command. :meth:`wait` pumps its pipes; :meth:`terminate` may come from any
    thread (warm shutdown) and makes the outcome ``interrupted``."""

    def __init__(
        self, plan: ExecPlan, *, grace: float = DEFAULT_GRACE, gated: bool = False
    ) -> None:
        self.plan = plan
        self.grace = grace
        self._interrupt = threading.Event()
        self.capture = _Capture()
        self._gated = gated
        self.proc = self._spawn(plan, gated)
        WATCHDOG.watch(self.proc.pid)

    @property
    def pid(self) -> int:
        """The command's pid, which is also its process group and session id."""
        return self.proc.pid

    def _spawn(self, plan: ExecPlan, gated: bool) -> subprocess.Popen[bytes]:
        ident: dict[str, Any] = {}
        if plan.switch_user:
            a = plan.account
            ident = {"user": a.uid, "group": a.gid, "extra_groups": _groups(a)}
        argv = list(plan.argv)
        if gated:
            argv = [GATE_SHELL, "-c", GATE_SCRIPT, "bridge-gate", *argv]
        try:
            return subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, cwd=working_directory(plan.home), env=dict(plan.env),
                start_new_session=True, close_fds=True, **ident,
            )
        except OSError as e:
            raise RunnerError(f"cannot start {plan.argv[0]}: {e.strerror or e}") from e

    def release(self) -> None:
        """Let a gated command exec (no-op when not gated or already released)."""
        if self._gated:
            self._gated = False
            assert self.proc.stdin is not None
            with contextlib.suppress(OSError):
                os.write(self.proc.stdin.fileno(), GATE_LINE)  # 3 bytes into an empty pipe

    def abandon(self) -> None:
        """Never release a gated command: close the gate, reap the gate shell (exit 127)."""
        self.close_gate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        WATCHDOG.release(self.proc.pid)

    def close_gate(self) -> None:
        """Close the gate unreleased: a gated command then exits 127 without running."""
        if self._gated:
            self._gated = False
            assert self.proc.stdin is not None
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def terminate(self) -> None:
        self._interrupt.set()

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def wait(
        self, timeout: float | None, interrupted: Callable[[], bool] | None = None
    ) -> tuple[OutcomeStatus | None, int | None]:
        """Pump stdin/stdout until EOF and exit; returns (stop reason or None, exit status)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        reason: OutcomeStatus | None = None
        kill_at = give_up_at = None
        with _Pipes(self.proc, self.plan.stdin, self.capture) as pipes:
            while pipes.open or self.proc.poll() is None:
                now = time.monotonic()
                if reason is None:
                    reason = self._stop_reason(now, deadline, interrupted)
                    if reason is not None:
                        self._signal_group(signal.SIGTERM)
                        kill_at = now + self.grace
                elif kill_at is not None and now >= kill_at:
                    self._signal_group(signal.SIGKILL)
                    kill_at, give_up_at = None, now + max(self.grace, 1.0)
                elif give_up_at is not None and now >= give_up_at:
                    break  # something outside the group still holds our pipe
                if pipes.open:
                    pipes.pump(POLL_SECONDS)
                else:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.proc.wait(POLL_SECONDS)
        code = self.proc.wait()
        WATCHDOG.release(self.proc.pid)
        return reason, code

    def _stop_reason(
        self, now: float, deadline: float | None, interrupted: Callable[[], bool] | None
    ) -> OutcomeStatus | None:
        if self._interrupt.is_set() or (interrupted is not None and interrupted()):
            return OutcomeStatus.INTERRUPTED
        if deadline is not None and now >= deadline:
            return OutcomeStatus.TIMED_OUT
        return None


class _Watchdog:
    """Kills the running jobs' process groups if this (worker) process dies.

    A SIGKILLed worker cannot stop its commands, and each command runs in its own session, so
    it would outlive the worker and overlap the run that takes the slot over once the lease
    expires. One small ``sh`` per process (started on first use, in its own session) reads
    ``start PGID`` / ``done PGID`` lines from a pipe only this process writes; at EOF without
    ``done`` (this process died) it sends SIGTERM to every still-running group, then SIGKILL
    after the grace. Builtins only: registering a run costs one pipe write, not a fork.
    """

    SCRIPT = (
        'active=" "; '
        'while read cmd pg; do case "$cmd" in '
        'start) active="$active$pg ";; '
        'done) left=" "; for p in $active; do [ "$p" = "$pg" ] || left="$left$p "; done; '
        'active="$left";; esac; done; '
        '[ -z "${active# }" ] && exit 0; '
        'for p in $active; do kill -TERM "-$p" 2>/dev/null; done; sleep "$1"; '
        'for p in $active; do kill -KILL "-$p" 2>/dev/null; done'
    )

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.lock = threading.Lock()
        self.pid = -1
        self.proc: subprocess.Popen[bytes] | None = None

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self.proc is None or self.pid != os.getpid() or self.proc.poll() is not None:
            self.pid = os.getpid()
            self.proc = subprocess.Popen(
                ["/bin/sh", "-c", self.SCRIPT, "bridge-watchdog", f"{self.grace:g}"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True, cwd="/",
            )
        return self.proc

    def _send(self, line: str) -> None:
        with self.lock:
            for _ in range(2):
                proc = self._ensure()
                assert proc.stdin is not None
                try:
                    proc.stdin.write(line.encode())
                    proc.stdin.flush()
                    return
                except (BrokenPipeError, ValueError):
                    self.proc = None  # it died: start another and say it again

    def watch(self, pgid: int) -> None:
        with contextlib.suppress(OSError):
            self._send(f"start {pgid}\n")

    def release(self, pgid: int) -> None:
        with contextlib.suppress(OSError):
            self._send(f"done {pgid}\n")


    def close(self) -> None:
        """At a clean exit: EOF with nothing running, so the watchdog just exits."""
        proc, self.proc = self.proc, None
        if proc is None or self.pid != os.getpid():
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1)


WATCHDOG = _Watchdog(DEFAULT_GRACE)
atexit.register(WATCHDOG.close)


class _Pipes:
    """Feed stdin and drain merged output without threads (selectors)."""

    def __init__(self, proc: subprocess.Popen[bytes], data: bytes, capture: _Capture) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.sel = selectors.DefaultSelector()
        self.capture = capture
        self.data = memoryview(data)
        self.out = proc.stdout
        self.sel.register(self.out, selectors.EVENT_READ)
        self.inp = proc.stdin
        if data:
            os.set_blocking(self.inp.fileno(), False)
            self.sel.register(self.inp, selectors.EVENT_WRITE)
        else:
            self.inp.close()  # cron: no % part -> an empty pipe

    @property
    def open(self) -> bool:
        return bool(self.sel.get_map())

    def pump(self, step: float) -> None:
        for key, _ in self.sel.select(step):
            if key.fileobj is self.out:
                chunk = os.read(self.out.fileno(), 65536)
                if chunk:
                    self.capture.feed(chunk)
                else:
                    self._drop(self.out)
            else:
                self._write()

    def _write(self) -> None:
        try:
            sent = os.write(self.inp.fileno(), self.data[:65536])
        except BlockingIOError:
            return
        except BrokenPipeError:
            sent = len(self.data)
        self.data = self.data[sent:]
        if not self.data:
            self._drop(self.inp)

    def _drop(self, stream: Any) -> None:
        self.sel.unregister(stream)
        stream.close()

    def __enter__(self) -> _Pipes:
        return self

    def __exit__(self, *exc: object) -> None:
        for key in list(self.sel.get_map().values()):
            self._drop(key.fileobj)
        self.sel.close()


# --- entry points -----------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _error_outcome(started: datetime, message: str) -> RunOutcome:
    return RunOutcome(OutcomeStatus.ERROR, None, started, _now(), None, None, message)


def _status(reason: OutcomeStatus | None, code: int | None) -> OutcomeStatus:
    if reason is not None:
        return reason
    return OutcomeStatus.SUCCEEDED if code == 0 else OutcomeStatus.FAILED


def start_command(
    handler: CommandHandler, *, extra_env: Mapping[str, str] | None = None,
    command: str | None = None, grace: float = DEFAULT_GRACE, gated: bool = False,
) -> CommandRun:
    """Plan and spawn (raises RunnerError with the reason when it may not or cannot start)."""
    account = lookup_account(handler.user)
    plan = plan_command(handler, account, os.geteuid(), read_pam_env(),
                        extra_env=extra_env, command=command)
    return CommandRun(plan, grace=grace, gated=gated)


def run_command(
    handler: CommandHandler, *, timeout: float | None = None, grace: float = DEFAULT_GRACE,
    extra_env: Mapping[str, str] | None = None, command: str | None = None,
    interrupted: Callable[[], bool] | None = None,
    on_start: Callable[[CommandRun], None] | None = None,
    gated: bool = False,
) -> RunOutcome:
    """Run ``handler`` as cron would. Never raises for the job's own failures.

    ``command`` replaces the command text (the shadow dry-run form); ``interrupted`` is polled
    every 0.1 s (warm shutdown); ``on_start`` receives the :class:`CommandRun` (to terminate it,
    or, with ``gated``, to record its pid durably before it is released to exec: an exception
    from ``on_start`` then closes the gate, the command never runs, and the exception propagates).
    """
    started, t0 = _now(), time.monotonic()
    try:
        run = start_command(handler, extra_env=extra_env, command=command, grace=grace,
                            gated=gated)
    except RunnerError as e:
        return _error_outcome(started, str(e))
    if on_start is not None:
        try:
            on_start(run)
        except BaseException:
            run.abandon()
            raise
    run.release()
    reason, code = run.wait(timeout, interrupted)
    status = _status(reason, code)
    error = None
    if status is OutcomeStatus.TIMED_OUT:
        error = f"timed out after {timeout:g} s: process group killed"
    elif status is OutcomeStatus.INTERRUPTED:
        error = "interrupted: process group terminated"
    return RunOutcome(
        status, code, started, _now(), run.capture.digest.hexdigest(),
        sample_text(bytes(run.capture.sample)), error, time.monotonic() - t0,
    )


def resolve_target(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is not callable")
    return obj


class _CappedStream(io.TextIOBase):
    def __init__(self, capture: _Capture) -> None:
        self.capture = capture

    def write(self, s: str) -> int:
        self.capture.feed(s.encode("utf-8", errors="replace"))
        return len(s)


class CallTimeout(Exception):
    pass


@contextlib.contextmanager
def _alarm(timeout: float | None) -> Iterator[None]:
    if timeout is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def fire(_signum: int, _frame: object) -> None:
        raise CallTimeout(f"timed out after {timeout:g} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_callable(
    handler: CallableHandler, *, timeout: float | None = None, target: str | None = None
) -> RunOutcome:
    """Call ``handler.target`` (or ``target``) in-process with its JSON args."""
    started, t0 = _now(), time.monotonic()
    capture = _Capture()
    stream = _CappedStream(capture)
    status, code, error = OutcomeStatus.SUCCEEDED, 0, None
    try:
        func = resolve_target(target or handler.target)
        with _alarm(timeout), contextlib.redirect_stdout(stream), \
                contextlib.redirect_stderr(stream):
            func(*handler.args, **dict(handler.kwargs))
    except CallTimeout as e:
        status, code, error = OutcomeStatus.TIMED_OUT, 1, str(e)
    except Exception as e:
        status, code, error = OutcomeStatus.FAILED, 1, f"{type(e).__name__}: {e}"
    return RunOutcome(
        status, code, started, _now(), capture.digest.hexdigest(),
        sample_text(bytes(capture.sample)), error, time.monotonic() - t0,
    )
