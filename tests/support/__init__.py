"""Shared test support: waiting on conditions, free ports, real services and real processes.

* :func:`wait_for` / :func:`sleep_until` (``waiting``): poll a condition, fail naming what was
  awaited, with the logs of the processes involved.
* :func:`free_port` (``net``): a TCP port nobody listens on right now.
* ``services``: a private ``redis-server``, PostgreSQL databases made and dropped per test, a
  migrated empty registry.
* ``procs``: real ``celery worker`` / ``celery beat`` subprocesses in their own sessions, stopped
  as a group, their logs attached to a failing test's report.

The pytest fixtures built on these live in ``tests/conftest.py``.
"""

from tests.support.net import free_port
from tests.support.waiting import sleep_until, wait_for

__all__ = ["free_port", "sleep_until", "wait_for"]
