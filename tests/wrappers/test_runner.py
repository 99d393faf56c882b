"""The runner runs a command the way Debian cron does, and reports it faithfully."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from bridge.core.runs import Status
from bridge.core.spec import CallableHandler, CommandHandler
from legacy_wrappers.capture import SAMPLE_BYTES
from legacy_wrappers.exec_plan import (
    Account,
    RunnerError,
    cron_environment,
    parse_env_file,
    plan_command,
    read_pam_env,
)
from legacy_wrappers.runner import run_callable, run_command
from tests.support import wait_for

pytestmark = pytest.mark.integration  # commands run as real subprocesses

TEST_USER = "bridgetest"
IS_ROOT = os.geteuid() == 0


def env_of(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie nobody reaps counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


@pytest.fixture(scope="session")
def test_user() -> pwd.struct_passwd:
    """An ordinary account to switch to (created with useradd when missing; needs root)."""
    if not IS_ROOT:
        pytest.skip("user switching needs root: the runner only switches users as root")
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", TEST_USER], check=True)
        return pwd.getpwnam(TEST_USER)


def me() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


# --- environment, cwd, stdin, exit status ----------------------------------------------------


def test_environment_is_crons_defaults_overlaid_by_crontab_variables() -> None:
    user = pwd.getpwuid(os.geteuid())
    handler = CommandHandler(command="env", user=user.pw_name,
                             env=(("FOO", "bar baz"), ("LOGNAME", "someone-else")))
    outcome = run_command(handler, timeout=10)
    assert outcome.status is Status.SUCCEEDED and outcome.exit_status == 0
    expected = {**read_pam_env(), "HOME": user.pw_dir, "LOGNAME": user.pw_name,
                "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", "FOO": "bar baz"}
    if os.path.isdir(user.pw_dir):
        expected["PWD"] = user.pw_dir  # set by dash itself
    assert env_of(outcome.output_sample or "") == expected


def test_crontab_home_shell_and_path_replace_the_defaults(tmp_path: Path) -> None:
    handler = CommandHandler(command='echo "cwd=$(pwd) shell=$0"; env',
                             env=(("HOME", str(tmp_path)), ("PATH", "/usr/local/bin:/bin"),
                                  ("SHELL", "/bin/bash")), shell="/bin/bash")
    outcome = run_command(handler, timeout=10)
    env = env_of(outcome.output_sample or "")
    assert (outcome.output_sample or "").startswith(f"cwd={tmp_path} shell=/bin/bash\n")
    assert env["HOME"] == str(tmp_path) and env["PATH"] == "/usr/local/bin:/bin"
    assert env["SHELL"] == "/bin/bash"


def test_shell_field_alone_sets_shell_variable() -> None:
    outcome = run_command(CommandHandler(command='echo "$SHELL $0"', shell="/bin/bash"))
    assert outcome.output_sample == "/bin/bash /bin/bash\n"


def test_missing_home_runs_in_crons_spool_directory(tmp_path: Path) -> None:
    handler = CommandHandler(command="pwd", env=(("HOME", str(tmp_path / "nope")),))
    outcome = run_command(handler, timeout=10)
    expected = "/var/spool/cron" if os.path.isdir("/var/spool/cron") else "/"
    assert outcome.output_sample == f"{expected}\n"


def test_stdin_is_the_percent_text_or_an_empty_pipe() -> None:
    fed = run_command(CommandHandler(command="cat", stdin="line1\nline2%x\n"), timeout=10)
    assert fed.output_sample == "line1\nline2%x\n"
    empty = run_command(CommandHandler(command="readlink /proc/self/fd/0; cat"), timeout=10)
    assert (empty.output_sample or "").startswith("pipe:[")
    assert (empty.output_sample or "").count("\n") == 1


def test_large_stdin_and_output_do_not_deadlock() -> None:
    data = ("x" * 1023 + "\n") * 1024  # 1 MiB through cat, both ways at once
    outcome = run_command(CommandHandler(command="cat", stdin=data), timeout=30)
    assert outcome.status is Status.SUCCEEDED
    assert outcome.output_digest == hashlib.sha256(data.encode()).hexdigest()


def test_exit_status_and_signal_deaths_are_reported() -> None:
    ok = run_command(CommandHandler(command="true"))
    failed = run_command(CommandHandler(command="echo oops; exit 3"))
    killed = run_command(CommandHandler(command="kill -9 $$"))
    assert (ok.status, ok.exit_status) == (Status.SUCCEEDED, 0)
    assert (failed.status, failed.exit_status) == (Status.FAILED, 3)
    assert failed.output_sample == "oops\n" and failed.error is None
    assert (killed.status, killed.exit_status) == (Status.FAILED, -9)
    assert ok.finished_at >= ok.started_at and ok.duration_seconds >= 0


def test_job_runs_as_its_own_session_leader() -> None:
    outcome = run_command(CommandHandler(command="ps -o pid=,pgid=,sid= -p $$"))
    pid, pgid, sid = (outcome.output_sample or "").split()
    assert pid == pgid == sid


# --- output -------------------------------------------------------------------------------------


def test_stdout_and_stderr_are_merged_in_order() -> None:
    outcome = run_command(CommandHandler(command="echo out; echo err >&2; echo out2"))
    assert outcome.output_sample == "out\nerr\nout2\n"


def test_output_sample_is_capped_and_digest_covers_everything() -> None:
    size = 200_000
    outcome = run_command(CommandHandler(command=f"head -c {size} /dev/zero | tr '\\0' a"))
    assert outcome.output_digest == hashlib.sha256(b"a" * size).hexdigest()
    assert outcome.output_sample == "a" * SAMPLE_BYTES


def test_nul_and_invalid_utf8_are_made_storable() -> None:
    outcome = run_command(CommandHandler(command="printf 'a\\000b\\377c'"))
    assert outcome.output_sample == "a\ufffdb\ufffdc"
    assert outcome.output_digest == hashlib.sha256(b"a\x00b\xffc").hexdigest()


def test_no_output_digests_as_empty() -> None:
    outcome = run_command(CommandHandler(command="true"))
    assert outcome.output_digest == hashlib.sha256(b"").hexdigest()
    assert outcome.output_sample == ""


# --- timeouts and interruption -----------------------------------------------------------------


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    cmd = f"sleep 300 & echo $! > {pidfile}; sleep 300"
    t0 = time.monotonic()
    outcome = run_command(CommandHandler(command=cmd), timeout=1, grace=2)
    assert time.monotonic() - t0 < 6
    assert outcome.status is Status.TIMED_OUT
    assert outcome.error is not None and "timed out after 1 s" in outcome.error
    child = int(pidfile.read_text())
    wait_for("the background child to die at the timeout", lambda: gone(child), 5, interval=0.05)


def test_a_job_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    cmd = f"trap '' TERM; sleep 300 & echo $! > {pidfile}; wait"
    t0 = time.monotonic()
    outcome = run_command(CommandHandler(command=cmd), timeout=1, grace=1)
    elapsed = time.monotonic() - t0
    assert outcome.status is Status.TIMED_OUT and outcome.exit_status == -9
    assert 1.8 < elapsed < 6
    child = int(pidfile.read_text())
    wait_for("the child to die after the grace", lambda: gone(child), 5, interval=0.05)


def test_terminate_interrupts_the_run(tmp_path: Path) -> None:
    started = threading.Event()
    runs = []

    def keep(run):  # type: ignore[no-untyped-def]
        runs.append(run)
        started.set()

    def stop_later() -> None:
        started.wait(10)
        time.sleep(0.3)  # terminate a run that is under way, not one still starting
        runs[0].terminate()

    threading.Thread(target=stop_later).start()
    outcome = run_command(CommandHandler(command="sleep 300"), grace=2, on_start=keep)
    assert outcome.status is Status.INTERRUPTED and outcome.exit_status == -15
    assert outcome.duration_seconds < 5


def test_interrupt_callback_is_polled() -> None:
    t0 = time.monotonic()
    outcome = run_command(CommandHandler(command="sleep 300"), grace=1,
                          interrupted=lambda: time.monotonic() - t0 > 0.5)
    assert outcome.status is Status.INTERRUPTED
    assert outcome.error == "interrupted: process group terminated"


# --- users ---------------------------------------------------------------------------------------


def test_unknown_user_is_a_clear_error() -> None:
    outcome = run_command(CommandHandler(command="true", user="no-such-user-xyz"))
    assert outcome.status is Status.ERROR and outcome.exit_status is None
    assert outcome.error == "unknown user 'no-such-user-xyz' (no passwd entry)"


def test_missing_shell_is_a_clear_error() -> None:
    outcome = run_command(CommandHandler(command="true", shell="/no/such/shell"))
    assert outcome.status is Status.ERROR
    assert outcome.error is not None and outcome.error.startswith("cannot start /no/such/shell")


def test_not_root_refuses_another_user_pure() -> None:
    other = Account("alice", 4242, 4242, "/home/alice")
    with pytest.raises(RunnerError, match="refusing to run it as another user"):
        plan_command(CommandHandler(command="true", user="alice"), other, current_uid=4343)
    plan = plan_command(CommandHandler(command="true", user="alice"), other, current_uid=0)
    assert plan.switch_user and plan.env["LOGNAME"] == "alice"
    same = plan_command(CommandHandler(command="true"), other, current_uid=4242)
    assert not same.switch_user


def test_root_switches_to_the_jobs_user_with_its_groups(test_user: pwd.struct_passwd) -> None:
    shared = Path(tempfile.mkdtemp(prefix="bridge-runner-", dir="/tmp"))
    shared.chmod(0o777)  # pytest's tmp_path sits under a root-only directory
    target = shared / "made-by-job"
    handler = CommandHandler(command=f'id -u; id -G; pwd; echo "$HOME $LOGNAME"; touch {target}',
                             user=TEST_USER)
    outcome = run_command(handler, timeout=10)
    assert outcome.status is Status.SUCCEEDED, outcome
    uid, groups, cwd, names = (outcome.output_sample or "").splitlines()
    expected_groups = sorted(os.getgrouplist(TEST_USER, test_user.pw_gid))
    assert int(uid) == test_user.pw_uid
    assert sorted(int(g) for g in groups.split()) == expected_groups
    assert cwd == (test_user.pw_dir if os.path.isdir(test_user.pw_dir) else "/var/spool/cron")
    assert names == f"{test_user.pw_dir} {TEST_USER}"
    assert target.stat().st_uid == test_user.pw_uid
    shutil.rmtree(shared)


def test_not_root_refuses_to_run_as_another_user(test_user: pwd.struct_passwd) -> None:
    """A real non-root process (setpriv to the test user) asking to run a root job."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    script = textwrap.dedent("""
        from bridge.core.spec import CommandHandler
        from legacy_wrappers.runner import run_command
        refused = run_command(CommandHandler(command="touch /tmp/never", user="root"))
        mine = run_command(CommandHandler(command="id -un", user=USER))
        print(refused.status.value, "|", refused.error)
        print(mine.status.value, "|", mine.output_sample.strip())
    """).replace("USER", repr(TEST_USER))
    proc = subprocess.run(
        ["setpriv", "--reuid", TEST_USER, "--regid", TEST_USER, "--init-groups",
         sys.executable, "-c", script],
        capture_output=True, text=True, timeout=60, cwd="/",
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert proc.returncode == 0, proc.stderr
    refused, mine = proc.stdout.splitlines()
    assert refused == (f"error | job runs as 'root' but this worker runs as '{TEST_USER}' "
                       "(not root): refusing to run it as another user")
    assert mine == f"succeeded | {TEST_USER}"


def test_refusal_when_not_root_without_root(tmp_path: Path) -> None:
    if IS_ROOT:
        pytest.skip("covered as root by test_not_root_refuses_to_run_as_another_user")
    outcome = run_command(CommandHandler(command="true", user="root"))
    assert outcome.status is Status.ERROR
    assert outcome.error is not None and "refusing to run it as another user" in outcome.error


# --- pure pieces -----------------------------------------------------------------------------


def test_pam_env_files_are_parsed_like_pam_env() -> None:
    text = '# comment\nLANG="C.UTF-8"\nexport LC_ALL=C\nbad line\n A = b\nEMPTY=\n'
    assert parse_env_file(text) == {"LANG": "C.UTF-8", "LC_ALL": "C", "EMPTY": ""}


def test_crontab_wins_over_pam_env_but_not_over_logname() -> None:
    acct = Account("bob", 5, 5, "/home/bob")
    env = cron_environment((("LANG", "fr_FR"), ("LOGNAME", "x")), acct, "/bin/sh",
                           {"LANG": "C", "TZ": "UTC"})
    assert env == {"LANG": "fr_FR", "TZ": "UTC", "LOGNAME": "bob", "HOME": "/home/bob",
                   "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh"}


# --- callables ---------------------------------------------------------------------------------


def sample_ok(name: str, *, times: int = 1) -> str:
    print(f"hello {name}" * times)
    return "ignored"


def sample_boom() -> None:
    raise ValueError("bad input 42")


def sample_slow() -> None:
    time.sleep(30)


MODULE = __name__


def test_callable_runs_in_process_with_args_and_captured_output() -> None:
    handler = CallableHandler(target=f"{MODULE}:sample_ok", args=("ann",), kwargs=(("times", 2),))
    outcome = run_callable(handler)
    assert (outcome.status, outcome.exit_status) == (Status.SUCCEEDED, 0)
    assert outcome.output_sample == "hello annhello ann\n"


def test_callable_exception_is_a_failure_with_class_and_message() -> None:
    outcome = run_callable(CallableHandler(target=f"{MODULE}:sample_boom"))
    assert (outcome.status, outcome.exit_status) == (Status.FAILED, 1)
    assert outcome.error == "ValueError: bad input 42"


def test_callable_import_error_and_timeout() -> None:
    missing = run_callable(CallableHandler(target="no_such_module_xyz:f"))
    assert missing.status is Status.FAILED
    assert missing.error is not None and missing.error.startswith("ModuleNotFoundError")
    slow = run_callable(CallableHandler(target=f"{MODULE}:sample_slow"), timeout=0.5)
    assert slow.status is Status.TIMED_OUT and slow.duration_seconds < 5


def test_a_sigkilled_runner_takes_its_command_down_with_it(tmp_path: Path) -> None:
    """The watchdog: a command never outlives a worker killed with SIGKILL."""
    started, late = tmp_path / "started", tmp_path / "late"
    script = textwrap.dedent(f"""
        from bridge.core.spec import CommandHandler
        from legacy_wrappers.runner import run_command
        run_command(CommandHandler(command="echo $$ > {started}; sleep 3; touch {late}"),
                    grace=1)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    wait_for("the command to start", lambda: started.exists() and started.read_text().strip(),
             20, interval=0.05)
    shell = int(started.read_text())
    proc.kill()
    proc.wait(timeout=10)
    wait_for("the job's shell to die with its runner", lambda: gone(shell), 5, interval=0.05)
    time.sleep(3.5)  # past the command's own "sleep 3": had it survived, it would have finished
    assert not late.exists(), "the orphaned command went on to finish"


def test_the_watchdog_kills_exactly_the_groups_still_in_flight_when_its_runner_dies() -> None:
    """Its bookkeeping (``start`` / ``done`` lines, a finished group dropped by pattern
    expansion): with groups finishing out of order, the ones left running die at EOF and the
    finished ones are never signalled."""
    from legacy_wrappers.watchdog import Watchdog

    sleepers = [subprocess.Popen(["sleep", "30"], start_new_session=True) for _ in range(6)]
    try:
        dog = subprocess.Popen(["/bin/sh", "-c", Watchdog.SCRIPT, "bridge-watchdog", "1"],
                               stdin=subprocess.PIPE, start_new_session=True)
        assert dog.stdin is not None
        lines = [f"start {p.pid}\n" for p in sleepers]
        lines += [f"done {sleepers[i].pid}\n" for i in (3, 0, 5)]  # out of order
        lines += ["done 1\n", f"start {sleepers[0].pid}0\n"]  # unknown, and a longer number
        dog.stdin.write("".join(lines).encode())
        dog.stdin.close()  # EOF: the runner died
        dog.wait(timeout=20)
        for i, proc in enumerate(sleepers):
            if i in (3, 0, 5):
                assert proc.poll() is None, f"group {i} had finished: never signalled"
            else:
                assert proc.wait(timeout=5) == -signal.SIGTERM
    finally:
        for proc in sleepers:
            proc.kill()
            proc.wait()


def test_pam_env_files_are_read_again_as_soon_as_they_change(tmp_path: Path) -> None:
    """Kept per process by file identity: an edit, even of the same size within the same
    second, is seen by the next run; a file that disappears contributes nothing."""
    from legacy_wrappers.exec_plan import read_pam_env

    env_file, locale = tmp_path / "environment", tmp_path / "locale"
    env_file.write_text("A=1\n")
    locale.write_text("LANG=C.UTF-8\n")
    files = (str(env_file), str(locale))
    assert read_pam_env(files) == {"A": "1", "LANG": "C.UTF-8"}
    assert read_pam_env(files) == {"A": "1", "LANG": "C.UTF-8"}
    stat = env_file.stat()
    env_file.write_text("A=2\n")  # same size
    os.utime(env_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert read_pam_env(files)["A"] == "2"
    locale.unlink()
    assert read_pam_env(files) == {"A": "2"}
    env_file.write_text("A=3\nB=x\n")
    assert read_pam_env(files) == {"A": "3", "B": "x"}
