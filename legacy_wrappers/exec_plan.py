"""What a cron job's process is started with, decided before any process exists.

Debian cron (3.0pl1) facts, verified against the real daemon
(tests/wrappers/test_runner_vs_cron.py):

* argv is ``[$SHELL, "-c", command]`` (``$SHELL``: the crontab's SHELL, default /bin/sh).
* stdin carries ``handler.stdin`` (the text after the first ``%``, already turned into lines by
  the importer), else nothing.
* Environment: pam_env's files (/etc/environment, /etc/default/locale: Debian's
  /etc/pam.d/cron), overlaid by the crontab's variables, then cron's defaults where the crontab
  set none: ``SHELL=/bin/sh``, ``HOME=<passwd home>``, ``PATH=/usr/bin:/bin``; ``LOGNAME`` is
  always the job's user (a crontab ``LOGNAME=`` line is overridden). No ``USER``.
* Working directory: ``$HOME`` of that environment (a crontab ``HOME=/tmp`` moves it); when that
  directory does not exist cron stays in its own directory, /var/spool/cron.
* User: as root, the job's user with its groups (``initgroups``); not as root, only the current
  user: any other user is refused (never silently run as the wrong user).

Not replicated: pam_limits / pam_loginuid / /etc/security/pam_env.conf (only the two plain
files are read), MAILTO mail, the worker's umask (inherited, 022 under systemd like cron's).
"""

from __future__ import annotations

import contextlib
import os
import pwd
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge.core.spec import CommandHandler

DEFAULT_PATH = "/usr/bin:/bin"
DEFAULT_SHELL = "/bin/sh"
CRON_SPOOL_DIR = "/var/spool/cron"
PAM_ENV_FILES = ("/etc/environment", "/etc/default/locale")


class RunnerError(Exception):
    """A command that cannot be started as asked (the message is the recorded reason)."""


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


def lookup_account(user: str | None) -> Account:
    """The passwd entry of ``user`` (None: the current user); RunnerError if unknown."""
    try:
        entry = pwd.getpwuid(os.geteuid()) if user is None else pwd.getpwnam(user)
    except KeyError as e:
        raise RunnerError(f"unknown user '{user}' (no passwd entry)") from e
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def read_pam_env(files: Sequence[str] = PAM_ENV_FILES) -> dict[str, str]:
    """pam_env's files as a job starts: each file re-read only when its identity (inode,
    size, modification time) changed since this process last read it, so an edit is seen by
    the next run, as cron's pam_env sees it, without two reads per run."""
    env: dict[str, str] = {}
    for name in files:
        env.update(_env_file(name))
    return env


_ENV_FILES: dict[str, tuple[tuple[int, int, int, int], dict[str, str]]] = {}


def _env_file(name: str) -> dict[str, str]:
    try:
        st = os.stat(name)
    except OSError:
        return {}
    identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    cached = _ENV_FILES.get(name)
    if cached is not None and cached[0] == identity:
        return cached[1]
    values: dict[str, str] = {}
    with contextlib.suppress(OSError, UnicodeDecodeError):
        values = parse_env_file(Path(name).read_text())
    _ENV_FILES[name] = (identity, values)
    return values


def working_directory(home: str) -> str:
    if os.path.isdir(home):
        return home
    return CRON_SPOOL_DIR if os.path.isdir(CRON_SPOOL_DIR) else "/"


def groups_of(account: Account) -> list[int]:
    try:
        return os.getgrouplist(account.name, account.gid)
    except OSError:
        return [account.gid]

