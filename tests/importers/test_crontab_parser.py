"""Unit tests for :mod:`crontab_import.crontab`: every rule of Debian cron 3.0pl1 it reproduces.

Facts marked "(Debian)" were checked with the real ``crontab``/``cron`` on this machine; the
acceptance rules are re-checked against the binary by ``test_crontab_debian_oracle.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.core.errors import BridgeError, ConfigError, ScheduleError
from bridge.core.spec import CommandHandler, Placement, SourceKind
from crontab_import.cron.command import split_command
from crontab_import.cron.env import EnvFailure, EnvSetting, parse_env_line
from crontab_import.cron.kinds import infer_kind
from crontab_import.crontab import parse_crontab, parse_file
from crontab_import.model import ImportItem, ItemStatus, ParseResult

TZ = "America/New_York"
ALICE = "/var/spool/cron/crontabs/alice"
CROND = "/etc/cron.d/certbot"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def parse(text: str | bytes, file: str = ALICE, **kw: object) -> ParseResult:
    return parse_crontab(text, file=file, timezone=TZ, **kw)  # type: ignore[arg-type]


def only(result: ParseResult) -> ImportItem:
    assert len(result.items) == 1, result.items
    return result.items[0]


def handler(item: ImportItem) -> CommandHandler:
    assert item.job is not None, item
    assert isinstance(item.job.handler, CommandHandler)
    return item.job.handler


def messages(result: ParseResult) -> list[str]:
    return [str(e) for e in result.errors]


# --- kinds, users, options --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/etc/crontab", SourceKind.SYSTEM_CRONTAB),
        ("hosts/app-01/etc/crontab", SourceKind.SYSTEM_CRONTAB),
        ("/etc/cron.d/certbot", SourceKind.CRON_D),
        ("examples/cron.d/acme-backup", SourceKind.CRON_D),
        ("/var/spool/cron/crontabs/alice", SourceKind.USER_CRONTAB),
        ("alice", SourceKind.USER_CRONTAB),
        ("/etc/cron.d", SourceKind.USER_CRONTAB),  # a file named cron.d is not in a cron.d dir
    ],
)
def test_kind_is_inferred_from_the_path(path: str, kind: SourceKind) -> None:
    assert infer_kind(path) is kind


def test_explicit_kind_overrides_the_path() -> None:
    item = only(parse("0 5 * * * bob echo hi\n", file="crontab.txt", kind="cron.d"))
    assert item.details == {"user": "bob", "dialect": "vixie", "kind": "cron.d"}
    assert handler(item).command == "echo hi"


def test_user_crontab_user_defaults_to_the_spool_file_name() -> None:
    item = only(parse("0 5 * * * echo hi\n"))
    assert handler(item).user == "alice"
    assert item.id == "alice-crontab-1"


def test_user_crontab_user_can_be_given() -> None:
    item = only(parse("0 5 * * * echo hi\n", file="backup-of-crontab.txt", user="bob"))
    assert handler(item).user == "bob"
    assert item.id == "bob-crontab-1"
    assert item.details["user"] == "bob"


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"timezone": "Mars/Olympus"}, ScheduleError, "unknown timezone 'Mars/Olympus'"),
        (
            {"timezone": TZ, "dialect": "quartz"},
            ConfigError,
            "dialect 'quartz' is not a crontab dialect (vixie or cronie)",
        ),
        (
            {"timezone": TZ, "dialect": "bsd"},
            ConfigError,
            "unknown crontab dialect 'bsd' (vixie or cronie)",
        ),
        ({"timezone": TZ, "kind": "quartz-xml"}, ConfigError, "'quartz-xml' is not a crontab kind"),
    ],
)
def test_bad_options_raise_a_bridge_error(
    kwargs: dict[str, str], error: type[BridgeError], text: str
) -> None:
    with pytest.raises(error) as info:
        parse_crontab("", file=ALICE, **kwargs)
    assert info.value.message == text


# --- line kinds -------------------------------------------------------------------------------


def test_blank_and_comment_lines_produce_nothing() -> None:
    result = parse("\n   \n\t\n# a comment\n   # indented comment\n#\n")
    assert result.items == () and result.errors == () and result.notes == ()


def test_a_hash_later_in_a_job_line_belongs_to_the_command() -> None:
    assert handler(only(parse("0 5 * * * echo a # b\n"))).command == "echo a # b"


def test_leading_blanks_before_a_job_line_are_ignored() -> None:
    item = only(parse(" \t0 5 * * * echo hi\n"))
    assert item.job is not None and item.job.schedule.expression == "0 5 * * *"


def test_fields_may_be_separated_by_tabs_and_the_expression_is_normalised() -> None:
    item = only(parse("0\t5   *\t* 1-5\t  echo hi\n"))
    assert item.job is not None and item.job.schedule.expression == "0 5 * * 1-5"
    assert handler(item).command == "echo hi"


def test_the_command_keeps_its_trailing_blanks_as_cron_does() -> None:
    assert handler(only(parse("0 5 * * * touch f   \n"))).command == "touch f   "


# --- environment lines ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "name", "value"),
    [
        ("A=b", "A", "b"),
        ("A = b", "A", "b"),
        (" \tA=b", "A", "b"),
        ("B =   x   y   ", "B", "x   y"),  # (Debian) blanks around the value dropped
        ('E = "quoted # not comment"', "E", "quoted # not comment"),
        ('F=""', "F", ""),
        ("F=''", "F", ""),
        ("A='  x y  '", "A", "  x y"),  # (Debian) leading blanks in quotes kept, trailing lost
        ('A=  "  x  "  ', "A", "  x"),
        ('A="a  "', "A", "a"),
        ("A='\t'", "A", ""),
        ('A=a "b"', "A", 'a "b"'),  # quotes only count at the start of the value
        ("A==b", "A", "=b"),
        ("A=b=c", "A", "b=c"),
        ("A='\"'", "A", '"'),
        ('A="x\\"', "A", "x\\"),  # no escapes inside quotes
        ("A=$HOME", "A", "$HOME"),  # no expansion
        ("A=#x", "A", "#x"),
        ("A=b%c", "A", "b%c"),
        ("A=b\r", "A", "b"),  # CRLF: the \r is a trailing blank of the value
        ('A="b"\r', "A", "b"),
        ('"A B"=c', "A B", "c"),  # a quoted name
        ("=b", "", "b"),
        ("5 = * * * * x", "5", "* * * * x"),  # (Debian) an environment line, not a job
        ("A\t=\tb", "A", "b"),
    ],
)
def test_environment_values_follow_debian(line: str, name: str, value: str) -> None:
    assert parse_env_line(line) == EnvSetting(name, value)


@pytest.mark.parametrize(
    ("line", "reached_equals", "reason"),
    [
        ("D=", True, 'empty value; write NAME="" for an empty value'),
        ("G = ", True, 'empty value; write NAME="" for an empty value'),
        ('C="a"b', True, "text after the closing quote"),
        ('A="a" "b"', True, "text after the closing quote"),
        ("A='b", True, "unterminated ' quote"),
        ("A B=c", False, "not an environment line"),
        ("A", False, "not an environment line"),
        ('"A=B"=c', False, "not an environment line"),
        ("0 5 * * * A=b", False, "not an environment line"),
    ],
)
def test_lines_that_are_not_environment_settings(
    line: str, reached_equals: bool, reason: str
) -> None:
    assert parse_env_line(line) == EnvFailure(reached_equals, reason)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("D=", "bad environment line in 'D=' (empty value; write NAME=\"\" for an empty value)"),
        ("G = ", "bad environment line in 'G =' (empty value; write NAME=\"\" for an empty value)"),
        ('C="a"b', "bad environment line in 'C=\"a\"b' (text after the closing quote)"),
        ("A='b", "bad environment line in 'A='b' (unterminated ' quote)"),
    ],
)
def test_a_bad_environment_line_is_a_located_error(line: str, message: str) -> None:
    result = parse(f"{line}\n")
    assert messages(result) == [f"{ALICE}:1: {message}"]
    item = only(result)
    assert item.status is ItemStatus.ERROR and item.id is None


def test_environment_applies_to_the_lines_below_only_in_order() -> None:
    result = parse(
        "0 1 * * * echo first\n"
        "MAILTO=ops@example.com\n"
        "PATH=/usr/bin:/bin\n"
        "0 2 * * * echo second\n"
        "MAILTO=dev@example.com\n"
        "X=1\n"
        "0 3 * * * echo third\n"
    )
    first, second, third = (handler(i) for i in result.items)
    assert first.env == ()
    assert second.env == (("MAILTO", "ops@example.com"), ("PATH", "/usr/bin:/bin"))
    # a later setting replaces the value in place, as cron's env_set does
    assert third.env == (("MAILTO", "dev@example.com"), ("PATH", "/usr/bin:/bin"), ("X", "1"))


def test_shell_sets_the_handler_shell_and_stays_in_the_environment() -> None:
    result = parse("0 1 * * * echo a\nSHELL=/bin/bash\n0 2 * * * echo b\n")
    default, bash = (handler(i) for i in result.items)
    assert default.shell == "/bin/sh"
    assert bash.shell == "/bin/bash" and bash.env == (("SHELL", "/bin/bash"),)


def test_a_variable_name_a_shell_cannot_carry_is_left_out_with_a_note() -> None:
    result = parse("A-B=c\nOK=1\n0 5 * * * env\n")
    assert handler(only(result)).env == (("OK", "1"),)
    assert result.notes == (
        f"{ALICE}:1: environment variable name 'A-B' cannot be passed to a shell; it is left "
        "out of the jobs' environment",
    )


def test_only_the_first_998_bytes_of_an_environment_line_are_read() -> None:
    # (Debian) LONGV=<1500 y> gave a 992-character value in the job's environment
    result = parse("LONGV=" + "y" * 1500 + "\n0 5 * * * env\n")
    assert dict(handler(only(result)).env)["LONGV"] == "y" * 992
    assert result.notes == (
        f"{ALICE}:1: environment line longer than 998 bytes: cron keeps only its first 998 "
        "bytes (LONGV is cut)",
    )


def test_a_quoted_value_cut_by_the_limit_is_a_bad_environment_line() -> None:
    assert parse_env_line('A="' + "x" * 994 + '"') == EnvSetting("A", "x" * 994)
    result = parse('A="' + "x" * 995 + '"\n')
    assert messages(result) == [
        f'{ALICE}:1: bad environment line in \'A="{"x" * 995}"\' (unterminated " quote; '
        "cron reads only the first 998 bytes of the line)"
    ]


def test_cron_tz_only_lands_in_the_environment_under_vixie() -> None:
    result = parse("CRON_TZ=Europe/Paris\n0 5 * * * echo hi\n")
    item = only(result)
    assert item.job is not None and item.job.schedule.timezone == TZ
    assert handler(item).env == (("CRON_TZ", "Europe/Paris"),)
    assert result.notes == (
        f"{ALICE}:1: CRON_TZ has no effect in Debian cron (vixie dialect): jobs run in {TZ}; "
        "use the cronie dialect for RHEL-family hosts",
    )


def test_cron_tz_sets_the_zone_of_the_lines_below_under_cronie() -> None:
    result = parse(
        "0 1 * * * echo host\nCRON_TZ=Europe/Paris\n0 2 * * * echo paris\n"
        'CRON_TZ=""\n0 3 * * * echo host-again\n',
        dialect="cronie",
    )
    zones = [i.job.schedule.timezone for i in result.items if i.job]
    assert zones == [TZ, "Europe/Paris", TZ]
    assert {i.job.schedule.dialect.value for i in result.items if i.job} == {"cronie"}
    assert result.errors == ()


def test_an_unknown_cron_tz_is_an_error_at_its_line_under_cronie() -> None:
    result = parse("0 1 * * * echo a\nCRON_TZ=Mars/Base\n0 2 * * * echo b\n", dialect="cronie")
    assert messages(result) == [f"{ALICE}:2: unknown timezone in CRON_TZ 'Mars/Base'"]
    before, below = result.items
    assert below.status is ItemStatus.ERROR
    assert below.reason == "CRON_TZ 'Mars/Base' at line 2 is not a known timezone"
    # cronie skips only what it cannot read: the job above still runs (crontab_import/cronie.py)
    assert before.status is ItemStatus.OK


def test_tz_only_changes_the_environment_with_a_note() -> None:
    result = parse("TZ=UTC\n0 5 * * * date\n")
    item = only(result)
    assert item.job is not None and item.job.schedule.timezone == TZ
    assert result.notes == (
        f"{ALICE}:1: TZ only changes the commands' environment, not when jobs run",
    )


# --- job lines --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("macro", "expression"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
    ],
)
def test_macros_are_expanded(macro: str, expression: str) -> None:
    item = only(parse(f"{macro} echo hi\n"))
    assert item.status is ItemStatus.OK
    assert item.job is not None and item.job.schedule.expression == expression
    assert handler(item).command == "echo hi"


def test_reboot_is_unsupported_and_stays_in_the_legacy_crontab() -> None:
    item = only(parse("@reboot echo booted\n"))
    assert item.status is ItemStatus.UNSUPPORTED
    assert item.reason == "@reboot has no schedule; it stays in the legacy crontab"
    assert item.id == "alice-crontab-1" and item.job is None


def test_system_lines_carry_the_user_field() -> None:
    item = only(
        parse("17 * * * * root cd / && run-parts --report /etc/cron.hourly\n", file="/etc/crontab")
    )
    assert handler(item).user == "root"
    assert handler(item).command == "cd / && run-parts --report /etc/cron.hourly"
    assert item.details == {"user": "root", "dialect": "vixie", "kind": "system-crontab"}
    assert item.id == "etc-crontab-1"


def test_system_macro_lines_carry_the_user_field() -> None:
    item = only(parse("@daily www-data echo hi\n", file=CROND))
    assert handler(item).user == "www-data"
    assert item.job is not None and item.job.schedule.expression == "0 0 * * *"


def test_source_location_and_details() -> None:
    result = parse("# header\nMAILTO=x\n30 2 * * * echo billing\n")
    item = only(result)
    assert item.job is not None
    src = item.job.source
    assert (src.file, src.line, src.raw, src.kind) == (
        ALICE,
        3,
        "30 2 * * * echo billing",
        SourceKind.USER_CRONTAB,
    )
    assert item.source == src
    assert item.details == {"user": "alice", "dialect": "vixie", "kind": "user-crontab"}


def test_the_default_policies_are_crons() -> None:
    item = only(parse("0 5 * * * echo hi\n"))
    assert item.job is not None
    assert item.job.policies.misfire.value == "skip"
    assert item.job.policies.overlap.value == "allow"


@pytest.mark.parametrize(
    "line",
    [
        "0 5 * * *\n",  # (Debian) accepted: no command
        "0 5 * * *   \n",
        "@daily\n",
        "0 5 * * * %only stdin\n",
    ],
)
def test_an_empty_command_is_unsupported_and_does_not_disable_the_file(line: str) -> None:
    result = parse(line + "0 6 * * * echo fine\n")
    empty, fine = result.items
    assert empty.status is ItemStatus.UNSUPPORTED
    assert empty.reason == "empty command: cron accepts the line but runs nothing"
    assert fine.status is ItemStatus.OK and result.errors == ()


def test_a_system_line_with_a_blank_after_the_user_has_an_empty_command() -> None:
    # (Debian) "0 5 * * * root \n" is accepted in /etc/cron.d, "0 5 * * * root\n" is not
    item = only(parse("0 5 * * * root \n", file=CROND))
    assert item.status is ItemStatus.UNSUPPORTED and item.details["user"] == "root"


def test_a_line_that_is_no_environment_setting_is_tried_as_a_job() -> None:
    # (Debian) "@daily =" is installed: not an environment line (empty value), a valid job
    item = only(parse("@daily =\n"))
    assert item.status is ItemStatus.OK and handler(item).command == "="


def test_a_user_command_may_not_start_with_a_star() -> None:
    # (Debian) "* * * * * *x" is "bad command": a sixth time field, most likely
    result = parse("* * * * * */5 echo hi\n")
    assert messages(result) == [
        f"{ALICE}:1: bad command in '*/5 echo hi' (cron refuses a command starting with '*': "
        "a sixth time field?)"
    ]


def test_a_system_command_may_start_with_a_star() -> None:
    # (Debian daemon) "0 5 * * * root *x" is read without an error
    assert handler(only(parse("0 5 * * * root *x\n", file=CROND))).command == "*x"


# --- % and stdin ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "command", "stdin"),
    [
        ("echo hi", "echo hi", None),
        ("cat%line1%line2\\%x", "cat", "line1\nline2%x\n"),  # (Debian) semantics.md
        ("printf 'a\\%b'", "printf 'a%b'", None),  # \% -> % even inside single quotes
        ("cat > f%abc%", "cat > f", "abc\n"),  # already ends with a newline
        ("cat > f%", "cat > f", ""),  # (Debian) empty input: no newline added
        ("cat > f%%", "cat > f", "\n"),
        ("cat > f%\\%", "cat > f", "%\n"),
        ("cat > f %x", "cat > f ", "x\n"),  # the blank before % stays in the command
        ("cat%  x  ", "cat", "  x  \n"),
        # (Debian) in the command part \\ becomes \ ; in stdin every backslash but \% stays
        ("touch 'a\\\\b'", "touch 'a\\b'", None),
        ("touch a\\\\%b", "touch a\\", "b\n"),
        ("touch f_\\\\\\%b", "touch f_\\%b", None),
        ("touch 'a\\b'", "touch 'a\\b'", None),
        ("touch tail\\", "touch tail\\", None),
        ("cat%a\\\\%b", "cat", "a\\%b\n"),
        ("cat%a\\\\\\%b", "cat", "a\\\\%b\n"),
        ("cat%x\\\\", "cat", "x\\\\\n"),
        ("cat%a\\b%", "cat", "a\\b\n"),
    ],
)
def test_percent_splits_command_and_stdin_like_debian(
    raw: str, command: str, stdin: str | None
) -> None:
    assert split_command(raw) == (command, stdin)


def test_stdin_reaches_the_handler() -> None:
    item = only(parse("0 * * * * mail -s report ops%Hello,%%the hourly report\n"))
    assert handler(item).command == "mail -s report ops"
    assert handler(item).stdin == "Hello,\n\nthe hourly report\n"


# --- commented-out jobs -----------------------------------------------------------------------


def test_a_commented_out_job_is_listed_as_disabled() -> None:
    item = only(parse("# 0 5 * * * /usr/bin/backup\n"))
    assert item.status is ItemStatus.DISABLED and item.reason == "commented out"
    assert item.id == "alice-crontab-1"
    assert item.job is not None and handler(item).command == "/usr/bin/backup"


@pytest.mark.parametrize(
    "line",
    [
        "#0 5 * * * /usr/bin/backup",
        "##  0 5 * * * /usr/bin/backup",
        "  #\t@daily /usr/bin/backup",
        "# @reboot /usr/bin/backup",
    ],
)
def test_commented_out_job_forms(line: str) -> None:
    assert only(parse(line + "\n")).status is ItemStatus.DISABLED


@pytest.mark.parametrize(
    "line",
    [
        "# m h  dom mon dow   command",
        "# Edit this file to introduce tasks to be run by cron.",
        "# 10 minutes after midnight",
        "#MAILTO=ops@example.com",
        "# 61 5 * * * /usr/bin/backup",
        "# 0 5 * * *",  # no command
    ],
)
def test_comments_that_are_not_valid_job_lines_are_just_comments(line: str) -> None:
    assert parse(line + "\n").items == ()


def test_a_commented_out_system_job_needs_its_user_field() -> None:
    result = parse("# 0 5 * * * /usr/bin/backup\n# 0 5 * * * root /usr/bin/backup\n", file=CROND)
    item = only(result)
    assert item.status is ItemStatus.DISABLED and item.source.line == 2
    assert item.id == "etc-cron.d-certbot-1"


# --- ids, overrides, descriptions -------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "kind", "expected"),
    [
        ("/etc/cron.d/certbot", None, "etc-cron.d-certbot-1"),
        ("copies/app-01/cron.d/certbot", None, "etc-cron.d-certbot-1"),
        ("/etc/crontab", None, "etc-crontab-1"),
        ("/var/spool/cron/crontabs/alice", None, "alice-crontab-1"),
        ("/tmp/dump.txt", "system-crontab", "etc-crontab-1"),
    ],
)
def test_ids_are_derived_from_the_source(file: str, kind: str | None, expected: str) -> None:
    user = "" if kind is None and "crontabs" in file else "root "
    assert only(parse(f"0 5 * * * {user}echo hi\n", file=file, kind=kind)).id == expected


def test_id_ordinals_count_every_job_line_so_they_do_not_shift() -> None:
    result = parse(
        "0 1 * * * echo one\n"
        "# 0 2 * * * echo two (commented out)\n"
        "61 3 * * * echo three (broken)\n"
        "@reboot echo four\n"
        "A=b\n"
        "D=\n"
        "0 0 31 2 * echo five (never fires)\n"
        "0 6 * * * echo six\n"
    )
    ids = [(i.source.line, i.id, i.status.value) for i in result.items]
    assert ids == [
        (1, "alice-crontab-1", "inactive"),
        (2, "alice-crontab-2", "disabled"),
        (3, "alice-crontab-3", "error"),
        (4, "alice-crontab-4", "unsupported"),
        (6, None, "error"),
        (7, "alice-crontab-5", "unsupported"),
        (8, "alice-crontab-6", "inactive"),
    ]


@pytest.mark.parametrize(
    ("user", "expected"),
    [("bob", "bob-crontab-1"), ("svc$", "svc_-crontab-1"), ("_apt", "u-_apt-crontab-1")],
)
def test_ids_only_hold_characters_a_job_id_allows(user: str, expected: str) -> None:
    assert only(parse("0 5 * * * echo hi\n", user=user)).id == expected


def test_a_bridge_directive_overrides_the_id_of_the_job_below() -> None:
    result = parse("# bridge: id=billing-nightly\n30 2 * * * echo billing\n0 3 * * * echo x\n")
    first, second = result.items
    assert first.id == "billing-nightly" and first.job is not None
    assert first.job.id == "billing-nightly"
    assert second.id == "alice-crontab-2"


def test_a_placement_directive_lets_the_job_below_run_on_any_worker() -> None:
    result = parse("# bridge: placement=anywhere\n30 2 * * * echo global\n0 3 * * * echo local\n")
    anywhere, local = (item.job for item in result.items)
    assert anywhere is not None and anywhere.policies.placement is Placement.ANYWHERE
    assert local is not None and local.policies.placement is Placement.HOST  # the default


def test_directives_apply_across_a_run_of_comment_lines() -> None:
    result = parse(
        "# Name: Nightly billing\n# bridge: id=billing\n# charges every due subscription\n"
        "30 2 * * * echo billing\n"
    )
    item = only(result)
    assert item.id == "billing"
    assert item.job is not None and item.job.description == "Nightly billing"


def test_a_directive_separated_by_a_blank_line_is_ignored_with_a_note() -> None:
    result = parse("# bridge: id=billing\n\n30 2 * * * echo billing\n")
    assert only(result).id == "alice-crontab-1"
    assert result.notes == (f"{ALICE}:1: directive is not directly above a job line (ignored)",)


def test_a_directive_above_an_environment_line_is_ignored_with_a_note() -> None:
    result = parse("# Name: x\nA=b\n30 2 * * * echo billing\n")
    assert only(result).job.description is None  # type: ignore[union-attr]
    assert result.notes == (f"{ALICE}:1: directive is not directly above a job line (ignored)",)


def test_a_directive_also_names_a_commented_out_job() -> None:
    item = only(parse("# bridge: id=weekly-cleanup\n# 0 5 * * 1 echo cleanup\n"))
    assert (item.status, item.id) == (ItemStatus.DISABLED, "weekly-cleanup")


@pytest.mark.parametrize(
    ("directive", "message"),
    [
        (
            "# bridge: id=-bad",
            "bad job id in '-bad' (letters, digits, '.', '_', '@', '-'; "
            "at most 200; starting with a letter or digit)",
        ),
        (
            "# bridge: id=a/b",
            "bad job id in 'a/b' (letters, digits, '.', '_', '@', '-'; "
            "at most 200; starting with a letter or digit)",
        ),
        (
            "# bridge: id=",
            "bad job id in '' (letters, digits, '.', '_', '@', '-'; "
            "at most 200; starting with a letter or digit)",
        ),
        ("# bridge: name=x", "bad bridge directive in 'name=x' (expected '# bridge: id=<job-id> "
         "on-lost=skip|rerun repair=auto|alert-only placement=host|anywhere')"),
        ("# bridge: placement=everywhere",
         "bad placement value in 'placement=everywhere' (expected placement=host|anywhere)"),
    ],
)
def test_a_bad_directive_is_an_error_at_its_line(directive: str, message: str) -> None:
    result = parse(f"{directive}\n0 5 * * * echo hi\n")
    assert messages(result) == [f"{ALICE}:1: {message}"]
    item = only(result)
    # the directive is only a comment for cron: the job keeps its default id and still runs
    assert (item.id, item.status) == ("alice-crontab-1", ItemStatus.OK)


def test_a_duplicate_override_id_is_an_error_at_the_later_directive() -> None:
    result = parse("# bridge: id=backup\n0 1 * * * echo a\n# bridge: id=backup\n0 2 * * * echo b\n")
    assert messages(result) == [f"{ALICE}:3: duplicate job id 'backup' (line 2 has the same id)"]
    first, second = result.items
    assert first.status is ItemStatus.OK
    assert second.status is ItemStatus.ERROR and second.job is None


def test_an_override_colliding_with_a_generated_id_is_an_error_at_the_override() -> None:
    result = parse("# bridge: id=alice-crontab-2\n0 1 * * * echo a\n0 2 * * * echo b\n")
    assert messages(result) == [
        f"{ALICE}:1: duplicate job id 'alice-crontab-2' (line 3 has the same id)"
    ]
    first, second = result.items
    assert first.status is ItemStatus.ERROR and second.status is ItemStatus.OK


# --- rejected lines: located errors with Debian's reason --------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("61 5 * * * echo hi", "minute 61 out of range 0-59 in '61'"),
        ("0 24 * * * echo hi", "hour 24 out of range 0-23 in '24'"),
        ("0 5 0 * * echo hi", "day-of-month 0 out of range 1-31 in '0'"),
        ("0 5 * 13 * echo hi", "month 13 out of range 1-12 in '13'"),
        ("0 5 * * 8 echo hi", "day-of-week 8 out of range 0-7 in '8'"),
        (
            "5/15 * * * * echo hi",
            "step on a single value in minute '5/15' "
            "(Debian cron accepts steps on '*' and ranges only)",
        ),
        ("*/0 * * * * echo hi", "step 0 in minute '*/0'"),
        ("0 5 * janu * echo hi", "bad month value 'janu' in 'janu'"),
        ("0 5 * *", "expected 5 time fields, got 4 in '0 5 * *'"),
        ("@DAILY echo hi", "unknown special schedule in '@DAILY'"),
        ("@ daily echo hi", "unknown special schedule in '@'"),
        (
            "0 5 * * \uff15 echo hi",
            "bad day-of-week value in '\uff15' (only ASCII letters, digits and ',-/*')",
        ),
        (
            "0\x0c5 * * * * echo hi",
            "bad minute value in '0\\x0c5' (only ASCII letters, digits and ',-/*')",
        ),
        (
            "0" * 1000 + " * * * * echo hi",
            "minute field longer than 999 characters in '00000000000000000000...'",
        ),
    ],
)
def test_a_rejected_user_line_is_a_located_error(line: str, message: str) -> None:
    result = parse(line + "\n")
    assert messages(result) == [f"{ALICE}:1: {message}"]
    item = only(result)
    assert (item.status, item.reason, item.id) == (ItemStatus.ERROR, message, "alice-crontab-1")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 5 * * * root", "missing command in '0 5 * * * root'"),
        ("0 5 * * *", "missing command in '0 5 * * *'"),
        ("@daily root", "missing command in '@daily root'"),
        ("@reboot root", "missing command in '@reboot root'"),
        (
            "0 3 * * * /opt/backups/backup-mysql.sh >> /var/log/backup.log 2>&1",
            "unknown user field in '/opt/backups/backup-mysql.sh' (expected a user name: five time "
            "fields, user, command)",
        ),
        (
            "0 0 * * 0 * root echo hi",
            "unknown user field in '*' (expected a user name: five time fields, user, command)",
        ),
    ],
)
def test_a_rejected_system_line_is_a_located_error(line: str, message: str) -> None:
    result = parse(line + "\n", file=CROND)
    assert messages(result) == [f"{CROND}:1: {message}"]
    assert only(result).status is ItemStatus.ERROR


@pytest.mark.parametrize("user", ["root", "www-data", "backup", "_apt", "svc.app", "machine$"])
def test_user_fields_that_look_like_user_names(user: str) -> None:
    assert only(parse(f"0 5 * * * {user} echo hi\n", file=CROND)).status is ItemStatus.OK


def test_command_length_limit_is_998_bytes() -> None:
    ok = parse("0 5 * * * " + "x" * 998 + "\n")
    assert only(ok).status is ItemStatus.OK
    too_long = parse("0 5 * * * " + "x" * 999 + "\n")
    assert messages(too_long) == [
        f"{ALICE}:1: command too long (999 bytes; Debian cron accepts at most 998) in "
        f"'{'x' * 40}...'"
    ]


def test_command_length_counts_bytes_trailing_blanks_and_stdin() -> None:
    assert only(parse("0 5 * * * " + "é" * 499 + "\n")).status is ItemStatus.OK
    for command in ("é" * 500, "x" * 990 + " " * 9, "%" + "x" * 998):
        assert only(parse(f"0 5 * * * {command}\n")).status is ItemStatus.ERROR, command


def test_all_errors_of_a_file_are_reported_at_once() -> None:
    result = parse("61 * * * * a\n0 5 * * * ok\nD=\n0 25 * * * b\n")
    assert [e.line for e in result.errors] == [1, 3, 4]
    assert all(e.file == ALICE for e in result.errors)


# --- bytes, encodings, line endings -----------------------------------------------------------


def test_a_nul_byte_in_a_job_line_is_a_located_error() -> None:
    result = parse(b"0 5 * * * echo ok\n0 5 * * * echo a\x00b\n")
    assert messages(result) == [f"{ALICE}:2: NUL byte at column 17"]
    ok, bad = result.items
    assert (bad.status, bad.id) == (ItemStatus.ERROR, "alice-crontab-2")
    assert ok.status is ItemStatus.INACTIVE  # (Debian) crontab rejects the file


def test_a_nul_byte_in_a_comment_is_only_a_note() -> None:
    result = parse(b"# a\x00b\n0 5 * * * echo ok\n")
    assert result.errors == ()
    assert result.notes == (f"{ALICE}:1: NUL byte at column 4 in a comment (ignored)",)
    assert only(result).status is ItemStatus.OK


def test_invalid_utf8_in_a_job_line_is_an_error_but_cron_still_runs_the_file() -> None:
    result = parse(b"0 5 * * * echo caf\xe9\n0 6 * * * echo ok\n")
    assert messages(result) == [f"{ALICE}:1: invalid UTF-8 at byte 19"]
    bad, ok = result.items
    assert bad.status is ItemStatus.ERROR and bad.id == "alice-crontab-1"
    assert ok.status is ItemStatus.OK  # (Debian) the bytes are fine for cron


def test_invalid_utf8_in_a_comment_is_only_a_note() -> None:
    result = parse(b"# caf\xe9 au lait\n0 5 * * * echo ok\n")
    assert result.errors == ()
    assert result.notes == (f"{ALICE}:1: invalid UTF-8 at byte 6 in a comment (ignored)",)


def test_a_byte_order_mark_makes_cron_reject_the_first_line() -> None:
    result = parse("\ufeff# my crontab\n0 5 * * * echo hi\n".encode())
    assert messages(result) == [
        f"{ALICE}:1: byte order mark at the start of the file (cron reads it as part of line 1)"
    ]
    assert only(result).status is ItemStatus.INACTIVE


def test_crlf_lines_keep_their_carriage_return_as_cron_does() -> None:
    result = parse(b"MAILTO=ops\r\n# note\r\n0 5 * * * echo hi\r\n")
    item = only(result)
    assert handler(item).command == "echo hi\r"  # (Debian) touch f\r created 'f\r'
    assert handler(item).env == (("MAILTO", "ops"),)
    assert result.notes == (
        f"{ALICE}: CRLF line endings: cron keeps each '\\r' (commands end with it, a line "
        "holding only '\\r' is invalid)",
    )


def test_a_line_holding_only_a_carriage_return_is_invalid() -> None:
    result = parse(b"0 5 * * * echo hi\r\n\r\n")
    assert messages(result) == [
        f"{ALICE}:2: bad minute value in '\\r' (only ASCII letters, digits and ',-/*')"
    ]


def test_a_last_job_line_without_newline_makes_cron_ignore_the_file() -> None:
    result = parse(b"0 5 * * * echo a\n0 6 * * * echo b")
    assert messages(result) == [
        f"{ALICE}:2: missing newline at end of file (cron ignores the whole file)"
    ]
    assert [i.status for i in result.items] == [ItemStatus.INACTIVE, ItemStatus.INACTIVE]


@pytest.mark.parametrize("tail", [b"# last comment", b"   ", b""])
def test_a_last_comment_or_blank_line_may_lack_its_newline(tail: bytes) -> None:
    result = parse(b"0 5 * * * echo a\n" + tail)
    assert result.errors == () and only(result).status is ItemStatus.OK


def test_a_user_crontab_longer_than_10000_lines_is_refused() -> None:
    assert parse("# c\n" * 10000).errors == ()
    result = parse("0 5 * * * echo hi\n" + "# c\n" * 10000)
    assert messages(result) == [
        f"{ALICE}:10001: crontab is too long: 10001 lines (crontab accepts at most 10000)"
    ]
    assert only(result).status is ItemStatus.INACTIVE


# --- the whole file ---------------------------------------------------------------------------


def test_one_invalid_line_makes_every_valid_job_of_the_file_inactive() -> None:
    result = parse(
        "0 5 * * * root echo before\n61 * * * * root echo bad\n0 6 * * * root echo after\n"
        "@reboot root echo boot\n",
        file=CROND,
    )
    before, bad, after, boot = result.items
    reason = "not running today: cron ignores this file because line 2 is invalid"
    assert (before.status, before.reason) == (ItemStatus.INACTIVE, reason)
    assert (after.status, after.reason) == (ItemStatus.INACTIVE, reason)
    assert before.job is not None  # kept so --include-inactive can import it
    assert bad.status is ItemStatus.ERROR
    assert boot.status is ItemStatus.UNSUPPORTED
    assert messages(result) == [f"{CROND}:2: minute 61 out of range 0-59 in '61'"]
    assert result.notes == (f"{CROND}: cron ignores this whole file: line 2 is invalid",)


@pytest.mark.parametrize("name", ["backup.sh", "certbot.dpkg-dist", "my job", "a+b"])
def test_a_cron_d_file_name_debian_ignores_makes_its_jobs_inactive(name: str) -> None:
    result = parse("0 5 * * * root echo hi\n", file=f"/etc/cron.d/{name}")
    reason = (
        f"file name '{name}' is ignored by Debian cron (names may only contain letters, "
        "digits, '_' and '-')"
    )
    item = only(result)
    assert (item.status, item.reason) == (ItemStatus.INACTIVE, reason)
    assert result.notes == (f"/etc/cron.d/{name}: {reason}",)
    assert result.errors == ()


@pytest.mark.parametrize("name", ["certbot", "e2scrub_all", "php-fpm", "ABC123"])
def test_cron_d_file_names_debian_reads(name: str) -> None:
    assert (
        only(parse("0 5 * * * root echo hi\n", file=f"/etc/cron.d/{name}")).status is ItemStatus.OK
    )


def test_the_name_rule_does_not_apply_outside_cron_d() -> None:
    assert (
        only(parse("0 5 * * * echo hi\n", file="/tmp/alice.txt", user="alice")).status
        is ItemStatus.OK
    )


@pytest.mark.parametrize(
    "expression", ["0 0 31 2 *", "0 0 30 2 *", "0 0 * * fri-mon", "50-10 * * * *"]
)
def test_a_line_that_never_fires_is_unsupported(expression: str) -> None:
    item = only(parse(f"{expression} echo never\n"))
    assert (item.status, item.reason) == (ItemStatus.UNSUPPORTED, "never fires under cron")
    assert item.job is not None and item.job.schedule.expression == expression


def test_debian_etc_crontab_parses_with_its_template_line_listed_as_disabled() -> None:
    text = (
        "SHELL=/bin/sh\n"
        "# You can also override PATH, but by default, newer versions inherit it\n"
        "#PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\n"
        "\n"
        "# Example of job definition:\n"
        "# .---------------- minute (0 - 59)\n"
        "# |  .------------- hour (0 - 23)\n"
        "# *  *  *  *  * user-name command to be executed\n"
        "17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly\n"
        "25 6\t* * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report "
        "/etc/cron.daily; }\n"
        "47 6\t* * 7\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report "
        "/etc/cron.weekly; }\n"
        "52 6\t1 * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report "
        "/etc/cron.monthly; }\n"
        "#\n"
    )
    result = parse(text, file="/etc/crontab")
    assert result.errors == ()
    assert [(i.id, i.status.value) for i in result.items] == [
        ("etc-crontab-1", "disabled"),
        ("etc-crontab-2", "ok"),
        ("etc-crontab-3", "ok"),
        ("etc-crontab-4", "ok"),
        ("etc-crontab-5", "ok"),
    ]
    assert handler(result.items[1]).env == (("SHELL", "/bin/sh"),)


# --- examples and parse_file ------------------------------------------------------------------


def test_parse_file_reads_bytes_and_infers_the_kind(tmp_path: Path) -> None:
    crond = tmp_path / "cron.d"
    crond.mkdir()
    (crond / "certbot").write_bytes(b"0 */12 * * * root echo renew\r\n")
    result = parse_file(crond / "certbot", timezone=TZ)
    item = only(result)
    assert item.id == "etc-cron.d-certbot-1" and handler(item).command == "echo renew\r"
    assert result.file == str(crond / "certbot")


def test_example_alice_crontab() -> None:
    result = parse_file(EXAMPLES / "crontab" / "alice", timezone=TZ)
    assert result.errors == () and result.notes == ()
    summary = [
        (i.id, i.status.value, i.job.schedule.expression if i.job else None) for i in result.items
    ]
    assert summary == [
        ("billing-nightly", "ok", "30 2 * * *"),
        ("alice-crontab-2", "ok", "15 4 * * *"),
        ("alice-crontab-3", "ok", "5 * * * *"),
        ("alice-crontab-4", "ok", "*/15 * * * *"),
        ("alice-crontab-5", "ok", "0 6 1 * *"),
        ("alice-crontab-6", "unsupported", None),
        ("alice-crontab-7", "disabled", "0 5 * * 1"),
        ("alice-heartbeat", "ok", "* * * * *"),
    ]
    report = handler(result.items[2])
    assert report.stdin == "orders processed: see dashboard\nrefunds issued: see dashboard\n"
    assert dict(report.env) == {
        "MAILTO": "ops-alerts@example.com",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
    }
    assert result.items[0].job.description == "Nightly billing run"  # type: ignore[union-attr]


def test_example_acme_backup_cron_d_file() -> None:
    result = parse_file(EXAMPLES / "cron.d" / "acme-backup", timezone=TZ)
    assert result.errors == () and result.notes == ()
    assert [(i.id, i.details["user"], i.status.value) for i in result.items] == [
        ("etc-cron.d-acme-backup-1", "backup", "ok"),
        ("etc-cron.d-acme-backup-2", "root", "ok"),
        ("etc-cron.d-acme-backup-3", "backup", "ok"),
        ("etc-cron.d-acme-backup-4", "root", "ok"),
    ]
    assert result.items[1].job.schedule.expression == "30 3 1,15 * sun"  # type: ignore[union-attr]


def test_example_broken_cron_d_file_is_ignored_by_cron() -> None:
    result = parse_file(EXAMPLES / "cron.d" / "broken.example", timezone=TZ)
    assert result.errors == ()
    assert [i.status for i in result.items] == [ItemStatus.INACTIVE]


def test_text_debian_skips_after_a_field_element_is_accepted_and_warned() -> None:
    result = parse("5#2 * * * mon#2 echo hi\n")
    assert not result.errors
    (item,) = result.items
    assert item.status is ItemStatus.OK
    assert item.details["warnings"] == [
        "Debian cron ignores '#2' at the end of minute '5#2'",
        "Debian cron ignores '#2' at the end of day-of-week 'mon#2'",
    ]
