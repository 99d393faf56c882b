"""What every command shares: settings loaded once, the registry opened on first use, output."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from bridge.core.config import Settings, load_settings
from bridge.core.errors import InputError
from bridge.store.db import Registry

# Pipes and CI logs get a wide console instead of rich's 80 columns (tables stay readable).
_WIDTH = None if sys.stdout.isatty() else 160
# markup and emoji off: commands, ids and reasons are user text; `[hourly report]` or `:warning:`
# in a crontab must print as written (styles are given as rich Text, never as [tags]).
out = Console(soft_wrap=True, width=_WIDTH, markup=False, emoji=False)
err = Console(
    stderr=True,
    soft_wrap=True,
    width=None if sys.stderr.isatty() else 200,
    markup=False,
    emoji=False,
)


@dataclass
class AppContext:
    debug: bool = False
    actor: str | None = None
    json_output: bool = False  # --json was given: errors become {"error": ...} documents too
    emitted: bool = False  # a JSON document was printed (no second one for an error)
    _settings: Settings | None = None
    _registry: Registry | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def registry(self, *, check_schema: bool = True) -> Registry:
        if self._registry is None:
            self._registry = Registry(self.settings.database_url, check_schema=check_schema)
        return self._registry

    def close(self) -> None:
        if self._registry is not None:
            self._registry.dispose()


STATE = AppContext()


def emit_json(data: Any) -> None:
    """One JSON document on stdout (stable field names are documented in the README)."""
    STATE.emitted = True
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def read_input(path: str) -> tuple[str, str]:
    """``(absolute path, text)`` of a file a command reads (a crontab, ...); bytes that are not
    UTF-8 survive the round trip to :func:`write_output` (surrogate escapes)."""
    absolute = os.path.abspath(path)
    try:
        data = Path(absolute).read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}") from e
    return absolute, data.decode("utf-8", errors="surrogateescape")


def write_output(text: str, out_file: str | None) -> None:
    """A file a command produced (a crontab, ...): to stdout, or replacing ``out_file``
    atomically with its mode kept (cron never reads a half-written file)."""
    data = text.encode("utf-8", errors="surrogateescape")
    if out_file is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    tmp = Path(out_file).with_name(f".{Path(out_file).name}.bridge-tmp")
    try:
        tmp.write_bytes(data)
        mode = os.stat(out_file).st_mode & 0o777 if os.path.exists(out_file) else 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, out_file)
    except OSError as e:
        raise InputError(f"cannot write {out_file}: {e.strerror}") from e
