"""The bridge's error tree: shallow, each error knows its location and its exit code.

Exit codes (the CLI contract): 0 ok, 1 findings (diffs, not ready, refused), 2 bad input,
3 infrastructure unreachable.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FINDINGS = 1
    BAD_INPUT = 2
    UNREACHABLE = 3


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose.

    ``file``/``line`` locate the error in an input file; ``hint`` is an optional next step for the
    operator. ``str(err)`` is the one line the CLI prints.
    """

    exit_code: ExitCode = ExitCode.BAD_INPUT

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.hint = hint

    @property
    def location(self) -> str | None:
        if self.file is None:
            return None
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def __str__(self) -> str:
        text = self.message
        if self.location:
            text = f"{self.location}: {text}"
        if self.hint:
            text = f"{text} (hint: {self.hint})"
        return text

    def at(self, file: str | None, line: int | None) -> BridgeError:
        """Return a copy of this error located at ``file:line`` (keeps class and hint)."""
        err = type(self).__new__(type(self))
        BridgeError.__init__(err, self.message, file=file, line=line, hint=self.hint)
        for key, value in vars(self).items():
            if key not in {"message", "file", "line", "hint"}:
                setattr(err, key, value)
        return err


class InputError(BridgeError):
    """Bad input: a file, an option, a message. Exit 2."""


class ParseError(InputError):
    """A source file (crontab, XML, TOML) could not be understood."""


class ScheduleError(InputError):
    """A schedule expression or timezone is invalid for its dialect."""


class SpecError(InputError):
    """A job spec violates its own rules (bad id, missing field, bad policy)."""


class ConfigError(InputError):
    """A setting is unknown or invalid."""


class NotFoundError(InputError):
    """A job, slot or file that was named does not exist."""


class RefusedError(BridgeError):
    """The bridge declined to act (not ready, already claimed, drift). Exit 1."""

    exit_code = ExitCode.FINDINGS


class InfraError(BridgeError):
    """Redis, the database or another service is unreachable. Exit 3.

    ``url`` must already be masked (see :func:`bridge.core.config.mask_url`).
    """

    exit_code = ExitCode.UNREACHABLE

    def __init__(self, message: str, *, url: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.url = url
