"""A crontab's bytes -> numbered lines, as cron reads them (only space and tab are blanks).

A line keeps its text without the newline, whether a newline ended it (cron ignores a file
whose last job or environment line has none) and the problem that makes it unreadable for cron:
a NUL byte, invalid UTF-8 (replaced, so the rest can still be shown), a byte order mark.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

BLANKS = " \t"
C_SPACE = " \t\n\v\f\r"  # C isspace(), what cron's environment parser trims


@dataclass(frozen=True)
class Line:
    number: int
    text: str  # without the newline; invalid UTF-8 replaced
    terminated: bool  # ended with a newline
    problem: str | None = None  # NUL byte / invalid UTF-8 / byte order mark


def split_lines(data: str | bytes) -> Iterator[Line]:
    chunks: list[tuple[str | None, bytes | None]]
    if isinstance(data, str):
        chunks = [(c, None) for c in data.split("\n")]
    else:
        chunks = [(None, c) for c in data.split(b"\n")]
    last = len(chunks) - 1
    for n, (text, raw) in enumerate(chunks):
        if n == last and not (text if raw is None else raw):
            return  # the newline ended the previous line: nothing follows
        yield _make_line(n + 1, text, raw, n < last)


def _make_line(number: int, text: str | None, raw: bytes | None, terminated: bool) -> Line:
    problem = None
    if raw is not None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            text = raw.decode("utf-8", errors="replace")
            problem = f"invalid UTF-8 at byte {e.start + 1}"
    assert text is not None
    if "\x00" in text:
        problem = f"NUL byte at column {text.index(chr(0)) + 1}"
    if number == 1 and text.startswith("\ufeff"):
        problem = "byte order mark at the start of the file (cron reads it as part of line 1)"
        text = text[1:]
    return Line(number, text, terminated, problem)


def is_blank(text: str) -> bool:
    return text.strip(BLANKS) == ""


def is_comment(text: str) -> bool:
    return text.lstrip(BLANKS).startswith("#")
