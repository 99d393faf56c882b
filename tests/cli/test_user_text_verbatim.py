"""User text (commands, ids, reasons) prints as written: rich markup and emoji codes are off.

Found by running the quickstart: the plan showed ``sed 's/^/ /'`` for the example's
``sed 's/^/[hourly report] /'`` (rich took ``[hourly report]`` for a style tag), and a command
with ``[/x]`` in it would have crashed the renderer with a MarkupError.
"""

from __future__ import annotations

from pathlib import Path


def test_plan_and_jobs_show_print_brackets_and_colons_verbatim(  # type: ignore[no-untyped-def]
    cli, redis_url, tmp_path: Path
) -> None:
    env = {
        "BRIDGE_REDIS_URL": redis_url,
        "BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path}/r.db",
        "BRIDGE_TIMEZONE": "UTC",
    }
    src = tmp_path / "ops"
    src.write_text(
        "# bridge: id=weird\n"
        "5 * * * * sed 's/^/[hourly report] /' [/x] [bold]b :warning: :smile:\n"
    )
    r = cli("import", "crontab", str(src), "--user", "ops", env=env)
    assert r.code == 0, r.err
    flat = " ".join(r.out.split())
    assert "[hourly report]" in flat and "[/x]" in flat and "[bold]b" in flat
    assert ":warning:" in flat and ":smile:" in flat
    shown = cli("jobs", "show", "weird", env=env)
    assert shown.code == 0 and "[hourly report]" in shown.out and ":warning:" in shown.out
