"""A job line's command text -> the command and its standard input (Debian's ``%`` rules)."""

from __future__ import annotations


def split_command(raw: str) -> tuple[str, str | None]:
    """Debian's ``%`` processing: ``(command, stdin)``; stdin is None without a ``%``.

    Command part (up to the first unescaped ``%``): ``\\%`` -> ``%`` and ``\\\\`` -> ``\\``;
    any other backslash is kept. Stdin part: ``\\%`` -> ``%``, each other ``%`` -> newline,
    every other backslash kept (``\\\\`` too), and a final newline added when the text is not
    empty and does not already end with one. ``cat%line1%line2\\%x`` -> ``("cat",
    "line1\\nline2%x\\n")``; ``cat%`` -> ``("cat", "")``. Verified on the Debian daemon.
    """
    if "%" not in raw and "\\" not in raw:
        return raw, None  # the common case, without the character loop
    out: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and raw[i + 1 : i + 2] in ("\\", "%"):
            out.append(raw[i + 1])
            i += 2
            continue
        if c == "%":
            return "".join(out), _stdin(raw[i + 1 :])
        out.append(c)
        i += 1
    return "".join(out), None


def _stdin(text: str) -> str:
    data = text.replace("\\%", "\x00").replace("%", "\n").replace("\x00", "%")
    return data if not data or data.endswith("\n") else data + "\n"
