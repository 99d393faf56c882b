"""Chaos: bad input at every entrance.

* Fuzzed crontab and Quartz XML through the CLI import path (hypothesis, a modest number of
  examples): never a traceback; a rejected file exits 2 naming ``file:line`` and leaves the
  registry exactly as it was (no job, authority, audit or run row changed).
* Malformed broker messages to a real worker: unknown job, bad slot, oversized arguments, a job
  id with shell metacharacters, a ``command`` kwarg (each a ``rejected`` run row with the reason),
  a pickled payload (refused by the worker's JSON-only ``accept_content``, logged); the worker
  keeps serving and a valid job still runs afterwards. Raw garbage pushed onto the Redis list
  (not a kombu message at all) is logged and dropped by :mod:`bridge.adapters.transport`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from bridge.store.db import Registry
from tests.chaos.harness import CHAOS_APP, ROOT, Chaos, parse_slot
from tests.support import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SEED_CRONTAB = """\
SHELL=/bin/sh
MAILTO=ops@example.com
# bridge: id=fuzz-nightly
30 2 * * * /usr/bin/env echo nightly
*/5 * * * 1-5 /usr/bin/env echo weekday % with stdin
0 0 1,15 * fri /usr/bin/env echo star-rule
"""
BAD_FIELDS = ["60", "24", "*/0", "1-", "a", "32", "13", "8-1", "1,,2", "-5", "99999", "*/",
              "@every"]
FUZZ = settings(max_examples=15, deadline=None, derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def snapshot(db_url: str) -> dict[str, list[tuple[Any, ...]]]:
    registry = Registry(db_url)
    try:
        with registry.engine.connect() as conn:
            return {t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY 1"))]
                    for t in ("jobs", "authority_events", "audit_log", "runs", "claims")}
    finally:
        registry.dispose()


@pytest.fixture
def importer(tmp_path: Path, redis_url: str, cli: Any) -> Iterator[dict[str, Any]]:
    env = {"BRIDGE_REDIS_URL": redis_url,
           "BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'import.db'}",
           "BRIDGE_TIMEZONE": "America/New_York"}
    yield {"env": env, "cli": cli, "db": env["BRIDGE_DATABASE_URL"]}


def check_rejection(result: Any, path: Path, before: Any, db_url: str) -> None:
    combined = result.out + result.err
    assert "Traceback" not in combined, combined
    assert result.code in (0, 1, 2), (result.code, combined)
    if result.code == 2:
        assert re.search(re.escape(str(path)) + r":\d+:", result.err), result.err
        assert snapshot(db_url) == before


bad_line = st.builds(
    lambda field, pos, junk: " ".join(
        [*(["*"] * 5)[:pos], field, *(["*"] * 5)[pos + 1:], "/usr/bin/env echo", junk]),
    st.sampled_from(BAD_FIELDS), st.integers(0, 4), st.text(max_size=10).map(
        lambda s: s.replace("\n", " ").replace("\r", " ").replace("%", "")))
noise_line = st.text(alphabet=st.characters(blacklist_categories=["Cs"],
                                            blacklist_characters="\n\r\x00"), max_size=60)


@FUZZ
@given(extra=st.lists(st.one_of(bad_line, noise_line), min_size=1, max_size=4),
       bad=bad_line, where=st.integers(0, 10), seed=st.integers(0, 2**16))
def test_fuzzed_crontab_never_tracebacks_and_a_rejection_changes_nothing(
    importer: dict[str, Any], tmp_path: Path, extra: list[str], bad: str, where: int, seed: int
) -> None:
    cli, env, db = importer["cli"], importer["env"], importer["db"]
    path = tmp_path / "fuzz.cron"
    path.write_text(SEED_CRONTAB)
    assert cli("import", "crontab", str(path), env=env).code == 0
    before = snapshot(db)
    lines = SEED_CRONTAB.splitlines()
    rnd = random.Random(seed)
    for line in [bad, *extra]:
        lines.insert(min(where, len(lines)) if line is bad else rnd.randrange(len(lines) + 1),
                     line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogateescape")
    result = cli("import", "crontab", str(path), env=env)
    assert result.code == 2, (result.code, result.out, result.err)  # the bad line is always there
    check_rejection(result, path, before, db)


XML = (ROOT / "examples" / "quartz" / "jobs.xml").read_text()
HANDLERS = ROOT / "examples" / "quartz" / "handlers.toml"


def mutate(doc: str, kind: int, pos: float, junk: str) -> str:
    at = int(pos * len(doc))
    if kind == 0:
        return doc[:at]  # truncated
    if kind == 1:
        return doc[:at] + junk + doc[at:]  # junk inserted anywhere
    if kind == 2:  # a cron expression replaced by junk
        exprs = list(re.finditer(r"<cron-expression>([^<]*)</cron-expression>", doc))
        m = exprs[at % len(exprs)]
        return doc[:m.start(1)] + junk.replace("<", "").replace("&", "") + doc[m.end(1):]
    # a tag renamed (schema error) or a time zone made unknown
    return doc.replace("<time-zone>", "<time-zone>Mars/", 1) if kind == 3 else \
        doc.replace("<job-class>", "<job-klass>", 1).replace("</job-class>", "</job-klass>", 1)


@FUZZ
@given(kind=st.integers(0, 4), pos=st.floats(0.05, 0.95),
       junk=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1,
                    max_size=20))
def test_fuzzed_quartz_xml_never_tracebacks_and_a_rejection_changes_nothing(
    importer: dict[str, Any], tmp_path: Path, kind: int, pos: float, junk: str
) -> None:
    cli, env, db = importer["cli"], importer["env"], importer["db"]
    path = tmp_path / "fuzz.xml"
    path.write_text(XML)
    seeded = cli("import", "quartz", str(path), "--handlers", str(HANDLERS), env=env)
    assert seeded.code in (0, 1), seeded.err
    before = snapshot(db)
    path.write_text(mutate(XML, kind, pos, junk), encoding="utf-8")
    result = cli("import", "quartz", str(path), "--handlers", str(HANDLERS), env=env)
    check_rejection(result, path, before, db)


# --- the broker entrance -----------------------------------------------------------------------


def test_malformed_broker_messages_are_rejected_and_the_worker_keeps_serving(
    chaos: Chaos,
) -> None:
    s1 = "2026-03-08T07:00:00Z"
    chaos.add_job("good", "0 * * * *", dialect="vixie")
    worker = chaos.worker(concurrency=2, app=CHAOS_APP)
    bad: list[tuple[list[Any], dict[str, Any], str]] = [
        (["no-such-job", s1], {}, "unknown job id 'no-such-job'"),
        (["good", "yesterday"], {}, "malformed slot"),
        (["good", "x" * 100_000], {}, "oversized arguments"),
        (["good; rm -rf / #", s1], {}, "malformed job id"),
        (["$(touch pwned)", s1], {}, "malformed job id"),
        (["good", s1], {"command": "touch pwned"}, "unexpected keyword arguments ['command']"),
    ]
    for args, kwargs, _ in bad:
        chaos.client.send_task("bridge.run_job", args=args, kwargs=kwargs, queue="bridge")
    chaos.client.send_task("bridge.run_job", args=["good", s1], queue="bridge",
                           serializer="pickle")  # application/x-python-serialize

    def rejected() -> list[Any]:
        return [row for row in chaos.runs() if row.status == "rejected"]

    wait_for("the rejections", lambda: len(rejected()) >= len(bad), 60, logs=chaos.tail_logs)
    wait_for("the worker to refuse the pickled message",
             lambda: any(mark in worker.text() for mark in (
                 "application/x-python-serialize", "Refusing to deserialize")), 30,
             logs=chaos.tail_logs)
    rows = rejected()
    for _args, _kwargs, reason in bad:
        assert any(reason in (row.error or "") for row in rows), (reason, [
                row.error for row in rows])
    assert all(row.role == "rejected" for row in rows)
    assert not (chaos.tmp / "pwned").exists()
    assert chaos.effects() == []  # nothing bad ran

    chaos.client.send_task("bridge.run_job", args=["good", s1], queue="bridge")
    wait_for("the valid run", lambda: chaos.slots_of("good"), 30, logs=chaos.tail_logs)
    assert worker.alive()
    print("bad messages:", sorted({(row.error or "")[:60] for row in rows}))


def test_raw_garbage_pushed_onto_the_queue_does_not_stop_the_worker(chaos: Chaos) -> None:
    s1 = "2026-03-08T07:00:00Z"
    chaos.add_job("good", "0 * * * *", dialect="vixie")
    worker = chaos.worker(concurrency=1, app=CHAOS_APP)
    r = redis.Redis.from_url(chaos.redis_url)
    r.lpush("bridge", b"\x80garbage that is not a kombu message")
    r.close()
    chaos.client.send_task("bridge.run_job", args=["good", s1], queue="bridge")  # behind it
    wait_for("the valid run behind the garbage, or the worker's death",
             lambda: chaos.slots_of("good") or not worker.alive(), 30, logs=chaos.tail_logs)
    assert worker.alive(), "the worker stopped on a raw non-kombu item: " + worker.text()[-300:]
    assert chaos.slots_of("good") == [parse_slot(s1)]
