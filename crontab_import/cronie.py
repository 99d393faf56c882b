"""cronie (the RHEL family's cron) where it differs from Debian cron 3.0pl1. Pure.

Read in cronie's source (``src/entry.c``, ``src/user.c``, ``src/database.c``) and its
``crontab(5)``; the crontab parser (:mod:`crontab_import.crontab`, dialect ``cronie``) applies
these rules, the inventory reader (:mod:`crontab_import.inventory`) the file-name one.

Exact, so accepted:
  * ``CRON_TZ=zone``: the following lines fire in that zone (the cronie dialect's evaluator).
  * A job line starting with ``-`` (``-*/5 * * * * root cmd``): only stops cronie from
    logging the run to syslog; the schedule and command are the rest of the line. cronie
    allows it in system crontabs and root's crontab; in another user's crontab the line is
    rejected ("bad option"), so it is an error there.
  * One line cronie cannot parse skips that line only (``load_user`` goes on with the next
    entry): the other jobs of the file run, unlike Debian where the whole file is ignored. The
    bad line is an error; a last line without its newline is an error and never runs.
  * ``/etc/cron.d`` and the spool: every name but those starting with ``.`` or ``#`` or ending
    with ``~``, ``.rpmsave``, ``.rpmorig``, ``.rpmnew`` (``not_a_crontab``); ``backup.sh`` is
    read, unlike Debian.
  * ``MAILTO``/``MAILFROM`` (cronie expands ``$VAR`` in them when it sends mail), ``MLS_LEVEL``,
    ``CONTENT_TYPE``: environment of the legacy side; the job's environment keeps them as
    written, as cronie's child process gets them.

Not reproducible, so refused (the line is listed UNSUPPORTED with the reason and stays in the
legacy crontab):
  * ``RANDOM_DELAY=N`` (N > 0 minutes): cronie delays every following job by a random amount
    chosen when the daemon starts; the bridge runs at the slot and the shim could not tell which
    slot a delayed run belongs to.
  * ``a~b`` in a time field: cronie picks a random value when it reads the file.
"""

from __future__ import annotations

import re

SKIPPED_PREFIXES = (".", "#")
SKIPPED_SUFFIXES = ("~", ".rpmsave", ".rpmorig", ".rpmnew")
RANDOM_FIELD_REASON = (
    "'~' in a time field: cronie picks a random value when it reads the file; the bridge "
    "cannot know which (write the value as a number)"
)
DASH_REASON = (
    "bad option: only system crontabs and root's crontab may start a line with '-' "
    "(cronie rejects this line)"
)
MAX_RANDOM_DELAY = 24 * 60
_LEADING_INT = re.compile(r"^[ \t\n\v\f\r]*([+-]?\d+)")


def skips_name(name: str) -> bool:
    """cronie's ``not_a_crontab``: a cron.d or spool name its daemon never reads."""
    return name.startswith(SKIPPED_PREFIXES) or name.endswith(SKIPPED_SUFFIXES)


def random_delay(value: str) -> int:
    """Minutes of ``RANDOM_DELAY=value`` as cronie reads it (``strtol``; a bad or out-of-range
    value is logged by cronie and means no delay): 0 = exact."""
    m = _LEADING_INT.match(value)
    if m is None:
        return 0
    minutes = int(m.group(1))
    return minutes if 0 < minutes <= MAX_RANDOM_DELAY else 0


def random_delay_reason(minutes: int, line: int) -> str:
    return (
        f"RANDOM_DELAY={minutes} (line {line}) delays cronie's runs by up to {minutes} "
        "minute(s) at random: the bridge runs at the slot (set RANDOM_DELAY=0 to migrate)"
    )


def has_random_field(fields: list[str]) -> bool:
    return any("~" in f for f in fields)
