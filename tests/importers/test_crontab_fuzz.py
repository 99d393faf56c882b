"""Property tests: whatever the file holds, the crontab parser returns a located result.

Arbitrary text, arbitrary bytes and arbitrary mutations of valid lines never raise (errors are
returned in the ParseResult, each with its file and a line inside the file), and the result
keeps its own invariants (unique ids, a spec for every importable item, statuses that agree
with the errors).
"""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.core.spec import CommandHandler
from crontab_import.cron.command import split_command
from crontab_import.crontab import parse_crontab
from crontab_import.model import ItemStatus, ParseResult

FILES = (
    "/var/spool/cron/crontabs/alice",
    "/etc/crontab",
    "/etc/cron.d/certbot",
    "/etc/cron.d/backup.sh",
)
VALID_LINES = (
    "0 5 * * * echo hi",
    "*/15 9-17 * * mon-fri /usr/bin/env true",
    "30 2 1,15 * sun x",
    "@daily echo daily",
    "@reboot echo boot",
    "MAILTO=ops@example.com",
    'B = "q v"',
    "A='  x y  '",
    "0 0 1 jan * cat%line1%line2\\%x",
    "5-10/2 */3 * * * z",
    "# a comment",
    "# 0 5 * * * echo disabled",
    "# bridge: id=billing",
    "# Name: Billing",
    "",
    "0 5 * * * root echo hi",
    "17 * * * * root cd / && run-parts --report /etc/cron.hourly",
    "CRON_TZ=Europe/Paris",
    "SHELL=/bin/bash",
    "0 0 31 2 * echo never",
)
ALPHABET = string.digits + "*/-,@#%=\"' \t\r\\LW?abcdefjmnorstuxyz\x00\x0béü\ufeff"
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def line_count(data: str | bytes) -> int:
    sep = "\n" if isinstance(data, str) else b"\n"
    parts = data.split(sep)  # type: ignore[arg-type]
    return len(parts) - (1 if parts[-1] in ("", b"") else 0)


def check_invariants(result: ParseResult, file: str, data: str | bytes) -> None:
    n = line_count(data)
    for err in result.errors:
        assert err.file == file
        assert err.line is not None and 1 <= err.line <= max(n, 10001), err
        assert err.message and str(err).startswith(f"{file}:{err.line}: ")
    error_lines = {e.line for e in result.errors}
    ids = [i.id for i in result.items if i.id is not None and i.status is not ItemStatus.ERROR]
    assert len(ids) == len(set(ids)), ids
    for item in result.items:
        assert item.source.file == file and item.source.line is not None
        assert 1 <= item.source.line <= n
        assert (
            {"user", "dialect", "kind"}
            <= set(item.details)
            <= {"user", "dialect", "kind", "warnings", "id_line"}
        )
        if item.status in (ItemStatus.OK, ItemStatus.INACTIVE):
            assert item.job is not None and item.job.id == item.id
            assert isinstance(item.job.handler, CommandHandler)
            assert item.job.source == item.source
        if item.status is ItemStatus.OK:
            assert item.reason is None
        if item.status is ItemStatus.ERROR:
            assert item.job is None and item.reason
            # located at its own line, or at the override it collides with / the bad CRON_TZ
            assert item.source.line in error_lines or (item.reason or "").startswith(
                ("duplicate job id", "CRON_TZ")
            ), item
        if item.status is ItemStatus.INACTIVE:
            assert item.reason and (
                "cron ignores this file" in item.reason
                or "is ignored by Debian cron" in item.reason
            )
    if any(i.status is ItemStatus.INACTIVE for i in result.items):
        assert result.notes


def parse_all_ways(data: str | bytes, file: str, dialect: str = "vixie") -> ParseResult:
    result = parse_crontab(data, file=file, timezone="Europe/Berlin", dialect=dialect)
    check_invariants(result, file, data)
    return result


@SETTINGS
@given(text=st.text(), file=st.sampled_from(FILES), dialect=st.sampled_from(("vixie", "cronie")))
def test_arbitrary_text_never_raises(text: str, file: str, dialect: str) -> None:
    parse_all_ways(text, file, dialect)


@SETTINGS
@given(data=st.binary(), file=st.sampled_from(FILES))
def test_arbitrary_bytes_never_raise(data: bytes, file: str) -> None:
    parse_all_ways(data, file)


@SETTINGS
@given(text=st.text(alphabet=ALPHABET + "\n"), file=st.sampled_from(FILES))
def test_text_made_of_crontab_characters_never_raises(text: str, file: str) -> None:
    parse_all_ways(text, file)


mutation = st.tuples(
    st.sampled_from(("insert", "delete", "replace")),
    st.integers(min_value=0, max_value=200),
    st.sampled_from(ALPHABET),
)


def mutate(line: str, ops: list[tuple[str, int, str]]) -> str:
    chars = list(line)
    for op, pos, ch in ops:
        i = pos % (len(chars) + 1)
        if op == "insert":
            chars.insert(i, ch)
        elif chars:
            j = min(i, len(chars) - 1)
            if op == "delete":
                del chars[j]
            else:
                chars[j] = ch
    return "".join(chars)


@SETTINGS
@given(
    lines=st.lists(
        st.tuples(st.sampled_from(VALID_LINES), st.lists(mutation, max_size=4)),
        min_size=1,
        max_size=12,
    ),
    file=st.sampled_from(FILES),
    dialect=st.sampled_from(("vixie", "cronie")),
    as_bytes=st.booleans(),
)
def test_mutated_valid_lines_never_raise(
    lines: list[tuple[str, list[tuple[str, int, str]]]], file: str, dialect: str, as_bytes: bool
) -> None:
    text = "".join(mutate(line, ops) + "\n" for line, ops in lines)
    parse_all_ways(text.encode() if as_bytes else text, file, dialect)


@SETTINGS
@given(lines=st.lists(st.sampled_from(VALID_LINES), min_size=1, max_size=15))
def test_files_of_valid_user_lines_have_no_errors(lines: list[str]) -> None:
    user_lines = [line for line in lines if " root " not in line and "bridge:" not in line]
    text = "".join(line + "\n" for line in user_lines)
    result = parse_all_ways(text, FILES[0])
    assert result.errors == ()
    assert all(i.status is not ItemStatus.INACTIVE for i in result.items)


@SETTINGS
@given(text=st.text(alphabet=st.characters(blacklist_characters="\\%")))
def test_a_command_without_backslash_or_percent_is_kept_as_is(text: str) -> None:
    assert split_command(text) == (text, None)


@SETTINGS
@given(
    command=st.text(alphabet=st.characters(blacklist_characters="%\\")),
    stdin=st.text(alphabet=ALPHABET),
)
def test_stdin_is_empty_or_ends_with_a_newline(command: str, stdin: str) -> None:
    got_command, got_stdin = split_command(command + "%" + stdin)
    assert got_command == command
    assert got_stdin is not None
    assert got_stdin == "" or got_stdin.endswith("\n")
    assert got_stdin.count("\n") >= stdin.count("%") - stdin.count("\\%")
