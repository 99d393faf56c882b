"""Property-based fuzzing of every entrance (issue 15): CLI options, crontab text, Quartz XML,
batch JSON, settings (environment and TOML). Contract: :func:`tests.fuzz.conftest.check_contract`
-- no traceback, no internal error, exit code in {0, 1, 2, 3}, bounded time and memory -- and a
refused input (exit 2 or 3) leaves the registry exactly as it was."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bridge.cli.main import command
from bridge.cli.schedule_cmd import run_batch
from bridge.core.config import load_settings
from bridge.core.errors import ConfigError
from tests.fuzz.conftest import check_contract, dump, examples

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[2]
SEED_CRONTAB = """\
PGPASSWORD=hunter2
MAILTO=""
# bridge: id=fuzz-1
30 2 * * * /usr/bin/env echo nightly
*/5 * * * 1-5 /usr/bin/env echo weekday % stdin
"""
# Commands that never return (serve, exec Flower or a Celery worker in place of this process) or
# destroy the registry on purpose.
EXCLUDED = {("flower",), ("metrics", "serve"), ("db", "downgrade"), ("worker",)}
TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40)
PLAUSIBLE = ["fuzz-1", "fuzz-*", "*", "", "-", "0", "1", "-1", "10001", "2147483648", "7d", "24h",
             "30m", "90s", "2026-03-08T07:00:00Z", "2026-03-08", "2026-03-08T02:30", "9999-12-31",
             "0001-01-01", "UTC", "America/New_York", "Mars/Base", "vixie", "quartz", "cronie",
             "* * * * *", "0 0 * * * ?", "celery", "legacy", "json", "html", "table", "ok",
             "failed", "stood-down", "no-such-dir/x", "x" * 300, "\x00", "é", "head", "base",
             "0001", "fuzz.cron", "out.txt", "observe", "execute"]
VALUE = st.one_of(st.sampled_from(PLAUSIBLE), TEXT, st.integers(-(10**15), 10**15).map(str))


def _leaves() -> list[tuple[tuple[str, ...], Any]]:
    out: list[tuple[tuple[str, ...], Any]] = []

    def visit(cmd: Any, path: tuple[str, ...]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in sorted(subs.items()):
                visit(sub, (*path, name))
        elif path not in EXCLUDED:
            out.append((path, cmd))

    visit(command(), ())
    return out


LEAVES = _leaves()


@st.composite
def cli_argv(draw: st.DrawFn) -> list[str]:
    path, cmd = draw(st.sampled_from(LEAVES))
    argv = list(path)
    for param in cmd.params:
        if param.name == "debug" or not draw(st.booleans()):
            continue
        if param.param_type_name == "argument":
            argv += [draw(VALUE) for _ in range(draw(st.integers(1, 2)))]
        elif getattr(param, "is_flag", False):
            argv.append(param.opts[0])
        else:
            if "--from-host" in param.opts:
                continue  # reads this machine's crontabs: not an input under test
            argv += [param.opts[0], draw(VALUE)]
    if draw(st.integers(0, 9)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(st.sampled_from(["--nope", "--"])))
    return argv


@pytest.fixture
def seeded(tmp_path: Path, redis_url: str, run_cli: Any) -> dict[str, Any]:
    db = tmp_path / "registry.db"
    env = {"BRIDGE_DATABASE_URL": f"sqlite:///{db}", "BRIDGE_REDIS_URL": redis_url,
           "BRIDGE_TIMEZONE": "UTC", "BRIDGE_SPOOL_DIR": str(tmp_path / "spool"),
           "BRIDGE_AUTHORITY_DIR": str(tmp_path / "authority")}
    (tmp_path / "fuzz.cron").write_text(SEED_CRONTAB)
    seeded = run_cli("import", "crontab", str(tmp_path / "fuzz.cron"), env=env)
    assert seeded.code == 0, seeded.err
    return {"env": env, "db": db, "dir": tmp_path}


@pytest.mark.slow(seconds=75)
@examples(600)
@given(argv=cli_argv())
@example(argv=["db", "upgrade", ""])  # each found by the long profile, kept as a regression
@example(argv=["db", "upgrade", "fuzz-1"])
@example(argv=["shadow", "report", "--since", "1970-01-01T00:00Z", "--json"])
@example(argv=["shadow", "calibrate", "fuzz-1", "--since", "99999999d"])
@example(argv=["reconcile", "--since", "99999999d", "--json"])
@example(argv=["audit", "log", "--since", "99999999d"])
@example(argv=["reconcile", "--job", "fuzz-*", "--json"])
@example(argv=["reconcile", "--grace", "86400000000000"])
@example(argv=["authority", "export", "--dir", "\x00"])
def test_any_command_line_keeps_the_cli_contract(seeded: dict[str, Any], run_cli: Any,
                                                 argv: list[str]) -> None:
    before = dump(seeded["db"])
    result = run_cli(*argv, env=seeded["env"])
    check_contract(result, argv)
    if result.code in (2, 3):
        assert dump(seeded["db"]) == before, argv
    if "--json" in argv and result.code in (0, 1, 2) and result.out.strip() \
            and "--" not in argv and "--nope" not in argv and "--out" not in argv:
        json.loads(result.out)  # --json output stays JSON, errors included


CRON_ALPHABET = st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")
CRON_LINE = st.one_of(
    st.builds(lambda f, c: " ".join([*f, c]),
              st.lists(st.sampled_from(["*", "0", "59", "*/5", "1-5", "mon", "jan", "L", "60",
                                        "*/0", "7", "@daily", "@reboot", "1,2", "", "?"]),
                       min_size=1, max_size=7),
              st.text(CRON_ALPHABET, max_size=20)),
    st.text(CRON_ALPHABET, max_size=60),
    st.sampled_from(["SHELL=/bin/bash", "CRON_TZ=Mars/Base", "# bridge: id=fuzz-1",
                     "# bridge: id=../x", "MAILTO", "=x"]))


@pytest.mark.slow(seconds=35)
@examples(150)
@given(lines=st.lists(CRON_LINE, max_size=8), raw=st.binary(max_size=40),
       system=st.booleans())
def test_any_crontab_text_keeps_the_contract(seeded: dict[str, Any], run_cli: Any,
                                             lines: list[str], raw: bytes, system: bool) -> None:
    path = seeded["dir"] / "fuzzed.cron"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape") + b"\n" + raw)
    before = dump(seeded["db"])
    argv = ["import", "crontab", str(path), "--json", "--no-prune", *(["--system"] * system)]
    result = run_cli(*argv, env=seeded["env"])
    check_contract(result, lines)
    json.loads(result.out)
    if result.code in (2, 3):
        assert dump(seeded["db"]) == before


XML = (ROOT / "examples" / "quartz" / "jobs.xml").read_bytes()
HANDLERS = ROOT / "examples" / "quartz" / "handlers.toml"


@examples(120)
@given(cut=st.floats(0, 1), junk=st.binary(max_size=30), where=st.floats(0, 1),
       keep_tail=st.booleans())
def test_any_quartz_xml_keeps_the_contract(seeded: dict[str, Any], run_cli: Any, cut: float,
                                           junk: bytes, where: float, keep_tail: bool) -> None:
    at, end = int(where * len(XML)), int(cut * len(XML))
    doc = XML[:at] + junk + (XML[at:] if keep_tail else XML[at:max(at, end)])
    path = seeded["dir"] / "fuzzed.xml"
    path.write_bytes(doc)
    before = dump(seeded["db"])
    result = run_cli("import", "quartz", str(path), "--handlers", str(HANDLERS), "--json",
                     "--dry-run", env=seeded["env"])
    check_contract(result, (at, end, junk))
    json.loads(result.out)
    assert dump(seeded["db"]) == before  # a dry run never writes


JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8)
CASE = st.fixed_dictionaries(
    {}, optional={"dialect": st.one_of(st.sampled_from(["vixie", "cronie", "quartz", "x"]),
                                       JSON_VALUE),
                  "expr": st.one_of(st.sampled_from(["* * * * *", "0 0 * * * ?", "0 0 L * ?",
                                                     "@daily", "0 0 31 2 *"]), JSON_VALUE),
                  "timezone": st.one_of(st.sampled_from(["UTC", "Europe/Berlin", "Nope/X"]),
                                        JSON_VALUE),
                  "after": st.one_of(st.sampled_from(["2026-03-08T01:00", "9999-12-31",
                                                      "0001-01-01", "1970-01-01T00:00Z"]),
                                     JSON_VALUE),
                  "count": st.one_of(st.integers(-3, 10001), JSON_VALUE)})
BATCH_LINE = st.one_of(CASE.map(lambda c: json.dumps(c).encode()), JSON_VALUE.map(
    lambda v: json.dumps(v).encode()), st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")))


@examples(500)
@given(lines=st.lists(BATCH_LINE, max_size=6))
def test_any_batch_answers_every_line_without_an_internal_error(lines: list[bytes]) -> None:
    sink = io.StringIO()
    errors = run_batch(io.BytesIO(b"\n".join(lines) + b"\n"), sink)
    answers = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert len(answers) == sum(1 for line in lines if line.strip())
    assert sum("error" in a for a in answers) == errors
    assert not any("internal error" in a.get("error", "") for a in answers), answers


SETTING_NAMES = ["BRIDGE_REDIS_URL", "BRIDGE_DATABASE_URL", "BRIDGE_TIMEZONE",
                 "BRIDGE_VISIBILITY_TIMEOUT", "BRIDGE_HEALTH_REPAIR", "BRIDGE_METRICS_PORT",
                 "BRIDGE_REDBEAT_KEY_PREFIX", "BRIDGE_SECRET_ENV_PATTERNS",
                 "BRIDGE_ALERT_WEBHOOK_URL", "BRIDGE_SPOOL_DIR", "BRIDGE_NOT_A_SETTING"]
URLISH = st.sampled_from(["redis://localhost:abc/0", "redis://:pw@h:6379/0?password=x",
                          "redis://h:99999/0", "postgresql://u:p@h:x/db", "sqlite:///x.db",
                          "sentinel://h:1;redis://h", "unix:///tmp/r.sock?db=x",
                          "postgresql://[::1/db", "http://x", "rediss://h/0?ssl_cert_reqs=no"])


@examples(150)
@given(env=st.dictionaries(st.sampled_from(SETTING_NAMES), st.one_of(URLISH, TEXT), max_size=4),
       toml=st.one_of(st.none(), st.text(max_size=80), st.sampled_from([
           "[bridge]\nredis_url = 5", "[bridge]\nnope = 1", "bridge = 3",
           "[bridge]\nhealth_repair = 'maybe'", "[bridge]\nmetrics_port = -1"])))
def test_any_settings_are_valid_or_a_config_error(tmp_path: Path, run_cli: Any,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  env: dict[str, str], toml: str | None) -> None:
    for name in [n for n in os.environ if n.startswith("BRIDGE_")]:
        monkeypatch.delenv(name)  # nothing left over from the previous example
    env = {k: v.replace("\x00", "") for k, v in env.items()}
    if toml is not None:
        (tmp_path / "bridge.toml").write_text(toml, encoding="utf-8", errors="surrogateescape")
        env["BRIDGE_CONFIG"] = str(tmp_path / "bridge.toml")
    try:
        load_settings(env)
        valid = True
    except ConfigError:
        valid = False
    # no --timezone: the command reads the settings (the zone), so it must validate them all
    result = run_cli("schedule", "preview", "--expr", "* * * * *", "--after",
                     "2026-01-01T00:00Z", "--count", "1", "--json", env=env)
    check_contract(result, env)
    doc = json.loads(result.out)
    if valid:
        assert result.code == 0 and len(doc["slots"]) == 1, doc
    else:
        assert result.code == 2 and "error" in doc, (result.code, doc)
