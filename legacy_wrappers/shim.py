"""``bridge-cron-shell``: the legacy side's SHELL shim (design.md §4).

``bridge legacy rewrite`` sets ``SHELL`` to this program, ``BRIDGE_SHELL`` to the shell cron
would have used and ``BRIDGE_JOB`` to the job id, so cron execs ``bridge-cron-shell -c CMD``
with the job's environment, stdin, stdout and stderr. Guarantees:

* **Cron's behaviour is kept.** The command runs as ``$BRIDGE_SHELL -c CMD`` (argv[0] the
  shell's path, as cron's ``execle``) in a new session (pid = pgid = sid, as under cron), with
  the same stdin (inherited) and the environment cron passed (read back from
  ``/proc/self/environ``, so CPython's locale coercion does not leak), ``SHELL`` restored to
  ``BRIDGE_SHELL``, ``BRIDGE_JOB`` and ``BRIDGE_SHELL`` removed. The inherited file
  descriptors and signal dispositions are cron's: signals cron left ignored stay ignored,
  CPython's own ``SIGPIPE``/``SIGXFSZ`` changes are undone, the shim's descriptors are
  close-on-exec. Output: when stdout and stderr are one regular file open read-write (Debian
  cron's temporary mail file) the command writes to it directly and the shim reads back what
  it wrote for the digest; otherwise (pipes) the shim tees every chunk through as it comes,
  over one merged pipe when stdout and stderr are the same file. The exit status is the
  command's; a command killed by signal N kills the shim with N. SIGTERM, SIGINT, SIGHUP,
  SIGQUIT, SIGUSR1 and SIGUSR2 received by the shim go to the shell (a signal to the shim's
  process group reaches the shell only, not its children: they are in the shell's own
  group, as under cron).
* **Unmanaged lines cost one exec.** Empty or absent ``BRIDGE_JOB`` (or an argv other than
  ``-c CMD``): ``execve`` of the shell at once, nothing imported, nothing recorded.
* **Recorded, keyed by slot.** The slot is the latest slot of the job's schedule at or before
  now, within :data:`legacy_wrappers.shim_run.TOLERANCE_SECONDS` (90 s); otherwise the command
  still runs and the record (slot = the current minute) says ``no slot within tolerance``.
  The slot's owner comes from the registry's authority history (when the registry is
  unreachable: the on-disk authority file, :mod:`bridge.services.authority_files`, which every
  registry read refreshes; legacy when there is neither):

  - legacy owns: claim ``(job, slot)`` on path ``legacy`` (lease renewed every 10 s while the
    command runs), run, record an ``authoritative`` run (start, end, exit status, sha256 of
    the merged output, a bounded sample) and complete the claim, in one transaction;
  - the slot is already claimed (e.g. the same line on a second host): nothing runs, a
    ``suppressed`` record, exit status 0 and no output. 0, because the slot *is* handled, by
    the claim's holder: a non-zero status would make cron log (and monitoring count) a failure
    of a job that did not fail, and output would mail every duplicate; the registry has the
    trace;
  - Celery owns: nothing runs, a ``stand-down`` record, exit status 0, no output.
* **Never breaks the legacy job, never loses a record.** When the registry is unreachable the
  command runs unclaimed and the record is appended to the spool (:mod:`legacy_wrappers.spool`);
  the next shim run that reaches the registry uploads the spool if it is not empty. If even the
  spool cannot be written, the record (without its output sample) goes to syslog (facility
  cron, ident ``bridge-cron-shell``), never to stderr: stderr is the job's own output, mailed
  to MAILTO, and must stay byte-identical. A bug in the recording machinery (or a broken
  install) is logged the same way and the command runs as cron would have run it.
* **Cheap.** Started through its launcher (:mod:`legacy_wrappers.launcher`: ``python -I -S``,
  no ``site``), an unmanaged line costs a bare interpreter start, ``os`` and one ``execve``.
  The recorded path (:mod:`legacy_wrappers.shim_run`) imports only C modules of the standard
  library (``_sqlite3`` without ``functools``, ``_datetime``, ``_signal``, ``select``,
  ``_sha256``, ``_bisect``; ``_ctypes`` for PostgreSQL -- never the Python packages over them,
  whose imports cost milliseconds) and its own small modules, pinned module by module in
  ``tests/wrappers/test_shim_imports.py``; it exits without the interpreter's teardown
  (:func:`launch`). The command starts with ``fork``/``execve`` (no ``subprocess``); the
  registry is reached through the bare driver (:mod:`bridge.store.bare`: ``_sqlite3``, libpq
  through ``_ctypes``, :mod:`bridge.store.libpq`) with the rows and formats SQLAlchemy writes,
  never through SQLAlchemy, psycopg or Celery (their imports alone cost 80-500 ms). What would
  cost more than all that -- validating the settings, evaluating the schedule, rewriting the
  authority file -- is answered from the shim's private cache
  (:mod:`legacy_wrappers.shim_cache`) while its inputs are unchanged. An outage costs no more:
  a missing SQLite file is seen before the driver loads, the spool line is written without
  ``json``. The rare paths import more: a contested claim delegates to
  :class:`legacy_wrappers.claims.Claims` (takeover rules in one place), a waiting spool is
  uploaded through the registry, a cold cache computes the full way. Figures:
  ``bench/shim.py``.

Limits: a SIGKILLed shim records nothing for that firing (its command keeps running). Through
pip's console script (not the launcher) the shim's interpreter also sees ``PYTHONHOME`` /
``PYTHONPATH`` lines of a crontab (they reach the command unchanged either way); the launcher's
``-I`` ignores them.
"""

from __future__ import annotations

import sys
import time

from legacy_wrappers.shim_os import (
    ERROR_EXIT,
    child_environment,
    exec_shell,
    exit_now,
    original_environment,
    syslog,
)


def launch() -> None:
    """The launcher's (and the console script's) entry point: :func:`main`, then
    :func:`legacy_wrappers.shim_os.exit_now` with its status."""
    exit_now(main())


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point (``bridge-cron-shell -c CMD``)."""
    fired = time.time()
    argv = list(sys.argv if argv is None else argv)
    received = original_environment()
    shell, env = child_environment(received)
    job_id = received.get("BRIDGE_JOB", "")
    if not job_id or len(argv) != 3 or argv[1] != "-c":
        exec_shell(shell, argv[1:], env)
    try:
        from legacy_wrappers import shim_run

        return shim_run.run_recorded(job_id, shell, argv[2], env, fired)
    except Exception as e:  # a broken install or a bug: run the job the way cron would have
        syslog("err", f"{job_id}: shim failure: {e!r}")
        if getattr(sys.modules.get("legacy_wrappers.shim_exec"), "child_started", False):
            return ERROR_EXIT
        exec_shell(shell, argv[1:], env)
        return ERROR_EXIT
