"""``{key}`` templates of a handler map's commands: the job-data-map keys they name, and filling
them in (shell-quoted for commands; ``{{``/``}}`` are literal braces)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

_TEMPLATE_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def template_fields(template: str) -> list[str]:
    """The ``{key}`` names of a template; ValueError for a lone or empty brace."""
    names = []
    for m in _TEMPLATE_TOKEN.finditer(template):
        token = m.group(0)
        if token in ("{{", "}}"):
            continue
        if token in ("{", "}") or not m.group(1).strip():
            raise ValueError(
                f"unbalanced or empty '{{}}' at offset {m.start()} "
                "(write {{ and }} for literal braces)"
            )
        names.append(m.group(1))
    return names


def render(template: str, data: Mapping[str, str | None], quote: bool) -> str:
    """Fill ``{key}`` from ``data``; KeyError(key) when a key is missing or empty."""

    def fill(m: re.Match[str]) -> str:
        token = m.group(0)
        if token in ("{{", "}}"):
            return token[0]
        value = data.get(m.group(1))
        if value is None:
            raise KeyError(m.group(1))
        return shlex.quote(value) if quote else value

    return _TEMPLATE_TOKEN.sub(fill, template)
