"""The pieces of the crontab parser (:mod:`crontab_import.crontab` is its façade).

* ``lines`` — bytes -> numbered lines (NUL, invalid UTF-8, byte order mark, missing newline)
* ``kinds`` — user crontab, /etc/crontab, cron.d: inferring the kind, options, id prefix
* ``state`` — what the parser carries from line to line
* ``env`` — environment lines (Debian's ``load_env``), ``CRON_TZ``, the rewrite's own lines
* ``fields`` — the schedule part of a job line (five fields or a macro), cached
* ``command`` — Debian's ``%`` processing of a command
* ``jobs`` — job lines: schedule, user, command, Debian's limits
* ``directives`` — comment lines: ``# bridge:`` directives, ``# Name:``, commented-out jobs
* ``items`` — job ids and import items
* ``whole_file`` — rules about the whole file (cron ignores a file with one bad line)

The rules themselves, as Debian applies them: ``docs/debian-cron-rules.md``.
"""
