"""Bounded import (issue 15.4): size and count limits checked before any work is printed or
committed. Through the real CLI against a real Redis and both registries."""

from __future__ import annotations

from pathlib import Path

import pytest

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<job-scheduling-data xmlns="http://www.quartz-scheduler.org/xml/JobSchedulingData" '
    'version="2.0">\n<schedule>\n'
)
JOB = (
    "<job><name>j{n}</name><group>g</group><job-class>x.J</job-class></job>\n"
    "<trigger><cron><name>t{n}</name><group>g</group><job-name>j{n}</job-name>"
    "<job-group>g</job-group><cron-expression>0 0 * * * ?</cron-expression></cron></trigger>\n"
)
TAIL = "</schedule>\n</job-scheduling-data>\n"


def env_for(redis_url: str, db_url: str) -> dict[str, str]:
    return {"BRIDGE_REDIS_URL": redis_url, "BRIDGE_DATABASE_URL": db_url, "BRIDGE_TIMEZONE": "UTC"}


def _quartz(path: Path, triggers: int) -> Path:
    with path.open("w") as f:
        f.write(HEAD)
        for n in range(triggers):
            f.write(JOB.format(n=n))
        f.write(TAIL)
    return path


def test_a_hundred_thousand_line_crontab_is_refused_before_anything_is_printed(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path
) -> None:
    env = env_for(redis_url, db_url)
    crond = tmp_path / "cron.d"
    crond.mkdir()
    big = crond / "big"
    big.write_text("".join(f"{i % 60} * * * * root /bin/echo {i}\n" for i in range(100_000)))
    r = cli("import", "crontab", str(big), env=env)
    assert r.code == 2
    assert r.out == ""
    assert r.err.strip() == (
        f"error: {big}:10001: more than 10000 lines (100000): refused before parsing "
        "(hint: raise --max-lines if this is intended)"
    )
    assert cli("jobs", "list", "--json", env=env).json() == {"jobs": []}


def test_max_lines_and_max_bytes_are_configurable(cli, redis_url, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = env_for(redis_url, db_url)
    tab = tmp_path / "ops"
    tab.write_text("".join(f"{i} * * * * /bin/echo {i}\n" for i in range(12)))
    r = cli("import", "crontab", str(tab), "--max-lines", "11", "--json", env=env)
    assert r.code == 2 and f"{tab}:12: more than 11 lines" in r.err
    r = cli("import", "crontab", str(tab), "--max-bytes", "100", env=env)
    assert r.code == 2 and "file larger than 100 bytes" in r.err
    r = cli("import", "crontab", str(tab), "--max-lines", "12", "--json", env=env)
    assert r.code == 0, r.err
    assert r.json()["applied"]["created"] == 12


def test_a_fifty_megabyte_quartz_file_is_refused_from_its_size(  # type: ignore[no-untyped-def]
    cli, redis_url, db_url, tmp_path
) -> None:
    env = env_for(redis_url, db_url)
    big = tmp_path / "jobs.xml"
    with big.open("w") as f:
        f.write(HEAD)
        f.write(JOB.format(n=0) * 200_000)  # ~ 50 MB, 200k triggers
        f.write(TAIL)
    assert big.stat().st_size > 40_000_000
    r = cli("import", "quartz", str(big), env=env)
    assert r.code == 2 and r.out == ""
    assert r.err.startswith(f"error: {big}: file larger than 10485760 bytes")
    assert cli("jobs", "list", "--json", env=env).json() == {"jobs": []}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_quartz_triggers_past_the_limit_stop_the_reading(cli, redis_url, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = env_for(redis_url, db_url)
    xml = _quartz(tmp_path / "jobs.xml", 12)
    r = cli("import", "quartz", str(xml), "--max-jobs", "10", env=env)
    assert r.code == 2 and r.out == ""
    # the 11th trigger element starts on line 4 + 2 * 10 + 1
    assert r.err.strip() == (
        f"error: {xml}:25: more than 10 triggers: refused while reading "
        "(hint: raise --max-jobs if this is intended)"
    )
    r = cli("import", "quartz", str(xml), "--max-jobs", "12", "--json", env=env)
    assert r.code == 0, r.err
    assert r.json()["applied"]["created"] == 12
