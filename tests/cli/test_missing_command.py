"""A group run without its command prints its formatted help on stderr and exits 2."""

from __future__ import annotations

import pytest

from bridge.cli.main import run


@pytest.mark.parametrize("argv,usage,listed", [
    ([], "Usage: bridge [OPTIONS] COMMAND [ARGS]...", "import"),
    (["jobs"], "Usage: bridge jobs [OPTIONS] COMMAND [ARGS]...", "show"),
    (["legacy"], "Usage: bridge legacy [OPTIONS] COMMAND [ARGS]...", "rewrite"),
    (["fleet"], "Usage: bridge fleet [OPTIONS] COMMAND [ARGS]...", "consolidate"),
])
def test_a_group_without_its_command_prints_its_help_on_stderr_and_exits_2(
        argv: list[str], usage: str, listed: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run(argv)
    out, err = capsys.readouterr()
    assert exited.value.code == 2
    assert out == ""  # help is not output a script could mistake for a result
    lines = err.splitlines()
    assert lines[0] == usage
    assert "Commands:" in lines  # formatted, one entry per line, not flattened into an error
    assert any(line.strip().startswith(listed) for line in lines)
    assert not err.startswith("error:")


def test_a_real_usage_error_is_still_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run(["jobs", "--no-such-option"])
    _, err = capsys.readouterr()
    assert exited.value.code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
