"""Host identity: which machine a legacy crontab line lives on, and how that shows in job ids.

Pure values and rules (no I/O). A crontab job belongs to one host: ``JobSpec.host`` (its
``source.host``). The host id is the machine's name as the operator gives it: the folder name
of an inventory (``bridge import crontab --inventory DIR``: ``DIR/web-01/etc/cron.d/backup``),
or this machine's host name for a local import. It must be usable verbatim in a job id, a
RedBeat key, a file name, a CLI argument and a Celery queue name, hence :data:`HOST_RE`:
1 to :data:`MAX_HOST` characters, letters, digits, ``-`` and ``_`` in dot-separated labels,
each label starting and ending with a letter or digit (``web-01``, ``db_2.eu.example.com``).

Job ids (:func:`qualify`)
  A job imported from an inventory gets the id ``<host>.<id on its host>``:
  ``/etc/cron.d/backup`` job 1 on ``web-01`` is ``web-01.etc-cron.d-backup-1``, so the same
  file on two hosts gives two jobs. An id that already starts with ``<host>.`` is kept (a
  ``BRIDGE_JOB=`` line written by ``bridge legacy rewrite``, a ``# bridge: id=`` naming the full
  id), so re-importing a rewritten file gives the same ids. A job imported without
  ``--inventory`` keeps the bare id (``etc-cron.d-backup-1``) and gets this machine as its host:
  a registry made before fleets keeps every id. Two hosts never share an id; a bare id and a
  qualified one never collide unless a user crontab's user name contains the host's name and a
  dot, which the plan reports as a duplicate id at its file:line.
"""

from __future__ import annotations

import re

from bridge.core.errors import SpecError

MAX_HOST = 80
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?"
HOST_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
SEPARATOR = "."


def host_problem(name: str) -> str | None:
    """Why ``name`` cannot be a host id (None when it can)."""
    if not name:
        return "empty host name"
    if len(name) > MAX_HOST:
        return f"host name longer than {MAX_HOST} characters"
    if not HOST_RE.match(name):
        return (
            "a host name has dot-separated labels of letters, digits, '-' and '_', each "
            "starting and ending with a letter or digit"
        )
    return None


def check_host(name: str) -> str:
    """``name`` if it is a valid host id, else :class:`SpecError` naming the rule."""
    problem = host_problem(name)
    if problem is not None:
        raise SpecError(f"bad host '{name}': {problem}")
    return name


def qualify(host: str, job_id: str) -> str:
    """The id of ``job_id`` (an id on its host) in a fleet registry: ``<host>.<job_id>``."""
    prefix = host + SEPARATOR
    return job_id if job_id.startswith(prefix) else prefix + job_id


def is_qualified(host: str, job_id: str) -> bool:
    """Whether ``job_id`` carries ``host`` (an inventory-style id)."""
    return job_id.startswith(host + SEPARATOR)
