"""Run a job's handler exactly as Debian cron (3.0pl1) would, and say what happened.

Command handlers (the plan, what cron gives a job, is :mod:`legacy_wrappers.exec_plan`):

* the process starts in a new session (cron jobs are session and process-group leaders:
  ``pid == pgid == sid``); stdin is always a pipe: it carries the job's stdin or is closed at
  once (an empty pipe, *not* /dev/null).
* stdout and stderr are merged (as cron mails them): the runner keeps the SHA-256 of the full
  stream and its first 64 KiB as text (:mod:`legacy_wrappers.capture`). No output digests as
  ``sha256(b"")``.
* A timeout or :meth:`CommandRun.terminate` sends SIGTERM to the whole process group, then
  SIGKILL after ``grace`` seconds; the outcome is ``timed_out`` / ``interrupted``.
* ``exit_status`` is the shell's exit code, negative (``-N``) when it died from signal N.
* Unlike cron, a command does not outlive its runner: if the runner's process is SIGKILLed, a
  watchdog (:mod:`legacy_wrappers.watchdog`) kills the job's process group, so a crashed run
  cannot overlap the run that takes its slot over.
* **Gated start** (``gated=True``, what ``bridge.run_job`` uses): the process is forked as a tiny
  ``/bin/sh`` that first reads one line (``go``) from its stdin pipe, then execs the job's shell
  with the rest of the pipe as the job's stdin (same pid, so
  ``pid == pgid == sid`` still holds and argv is exactly cron's). The caller records "started,
  pid N" durably (``on_start``) and only then releases the gate; if the caller dies first, the
  gate reads EOF and exits 127 without running anything. So a recorded start with a pid means
  the command may have run, and no recorded pid means it certainly did not.

Callable handlers run in-process (same :class:`RunOutcome`): exit status 0 or 1, output is what
the callable wrote to ``sys.stdout``/``sys.stderr``, an exception becomes ``failed`` with its
class and message. Timeouts use SIGALRM (:mod:`legacy_wrappers.alarm`) and so apply only on
the main thread; an in-process call cannot be interrupted by a warm shutdown (it is left to
finish).

Outcome statuses are run-row statuses (:class:`bridge.core.runs.Status`): ``succeeded``,
``failed``, ``timed_out``, ``interrupted``, ``error`` (never started: unknown user, refused
user, missing shell).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridge.core.runs import Status
from bridge.core.spec import CallableHandler, CommandHandler, JobSpec
from legacy_wrappers.alarm import CallTimeout, alarm
from legacy_wrappers.capture import CappedStream, Capture, Pipes, sample_text
from legacy_wrappers.exec_plan import (
    ExecPlan,
    RunnerError,
    groups_of,
    lookup_account,
    plan_command,
    read_pam_env,
    working_directory,
)
from legacy_wrappers.watchdog import DEFAULT_GRACE, WATCHDOG

POLL_SECONDS = 0.1
GATE_SHELL = "/bin/sh"
# reads one line from stdin (EOF: the runner died before releasing it -> never run; shells read
# a pipe byte by byte, so nothing after that line is consumed), then becomes the job's shell in
# place (same pid / process group / session) with the rest of the pipe as its stdin
GATE_SCRIPT = 'IFS= read -r _ || exit 127; exec "$@"'
GATE_LINE = b"go\n"


@dataclass(frozen=True)
class RunOutcome:
    status: Status
    exit_status: int | None
    started_at: datetime
    finished_at: datetime
    output_digest: str | None
    output_sample: str | None
    error: str | None
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is Status.SUCCEEDED


class CommandRun:
    """One started command. :meth:`wait` pumps its pipes; :meth:`terminate` may come from any
    thread (warm shutdown) and makes the outcome ``interrupted``."""

    def __init__(
        self, plan: ExecPlan, *, grace: float = DEFAULT_GRACE, gated: bool = False
    ) -> None:
        self.plan = plan
        self.grace = grace
        self._interrupt = threading.Event()
        self.capture = Capture()
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
            ident = {"user": a.uid, "group": a.gid, "extra_groups": groups_of(a)}
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
    ) -> tuple[Status | None, int | None]:
        """Pump stdin/stdout until EOF and exit; returns (stop reason or None, exit status)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        reason: Status | None = None
        kill_at = give_up_at = None
        with Pipes(self.proc, self.plan.stdin, self.capture) as pipes:
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
    ) -> Status | None:
        if self._interrupt.is_set() or (interrupted is not None and interrupted()):
            return Status.INTERRUPTED
        if deadline is not None and now >= deadline:
            return Status.TIMED_OUT
        return None


# --- entry points -----------------------------------------------------------------------------


def utc_now() -> datetime:
    return datetime.now(UTC)


def error_outcome(started: datetime, message: str) -> RunOutcome:
    return RunOutcome(Status.ERROR, None, started, utc_now(), None, None, message)


def status_of(reason: Status | None, code: int | None) -> Status:
    if reason is not None:
        return reason
    return Status.SUCCEEDED if code == 0 else Status.FAILED


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
    started, t0 = utc_now(), time.monotonic()
    try:
        run = start_command(handler, extra_env=extra_env, command=command, grace=grace,
                            gated=gated)
    except RunnerError as e:
        return error_outcome(started, str(e))
    if on_start is not None:
        try:
            on_start(run)
        except BaseException:
            run.abandon()
            raise
    run.release()
    reason, code = run.wait(timeout, interrupted)
    status = status_of(reason, code)
    error = None
    if status is Status.TIMED_OUT:
        error = f"timed out after {timeout:g} s: process group killed"
    elif status is Status.INTERRUPTED:
        error = "interrupted: process group terminated"
    return RunOutcome(
        status, code, started, utc_now(), run.capture.digest.hexdigest(),
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


def run_callable(
    handler: CallableHandler, *, timeout: float | None = None, target: str | None = None
) -> RunOutcome:
    """Call ``handler.target`` (or ``target``) in-process with its JSON args."""
    started, t0 = utc_now(), time.monotonic()
    capture = Capture()
    stream = CappedStream(capture)
    status, code, error = Status.SUCCEEDED, 0, None
    try:
        func = resolve_target(target or handler.target)
        with alarm(timeout), contextlib.redirect_stdout(stream), \
                contextlib.redirect_stderr(stream):
            func(*handler.args, **dict(handler.kwargs))
    except CallTimeout as e:
        status, code, error = Status.TIMED_OUT, 1, str(e)
    except Exception as e:
        status, code, error = Status.FAILED, 1, f"{type(e).__name__}: {e}"
    return RunOutcome(
        status, code, started, utc_now(), capture.digest.hexdigest(),
        sample_text(bytes(capture.sample)), error, time.monotonic() - t0,
    )


def run_handler(
    spec: JobSpec,
    *,
    grace: float,
    interrupted: Callable[[], bool],
    dry_run: bool = False,
    on_start: Callable[[CommandRun], None] | None = None,
) -> RunOutcome | None:
    """Run the job's handler (or its dry-run form); None when there is nothing to run.

    A dry run of a command runs ``dry_run_command`` (else the command) with ``BRIDGE_SHADOW=1``
    in its environment; of a callable, its ``dry_run_target`` (None without one: a Python
    function has no environment contract to honour). ``on_start`` (command handlers) gets the
    gated process before it may exec: it records the pid durably; if it raises, the command
    never runs and the exception propagates."""
    handler, timeout = spec.handler, spec.policies.timeout_seconds
    if isinstance(handler, CommandHandler):
        command = (handler.dry_run_command or handler.command) if dry_run else None
        extra = {"BRIDGE_SHADOW": "1"} if dry_run else None
        return run_command(
            handler,
            timeout=timeout,
            grace=grace,
            extra_env=extra,
            command=command,
            interrupted=interrupted,
            on_start=on_start,
            gated=on_start is not None,
        )
    if isinstance(handler, CallableHandler):
        if dry_run and handler.dry_run_target is None:
            return None
        target = handler.dry_run_target if dry_run else None
        return run_callable(handler, timeout=timeout, target=target)
    return None
