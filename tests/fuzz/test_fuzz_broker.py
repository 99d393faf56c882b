"""Fuzzing the broker entrance (issue 15): ``bridge.run_job`` messages.

* The task's request parser (:func:`legacy_wrappers.messages.parse_request`, pure) over arbitrary
  JSON arguments: it never raises, and accepts exactly ``(job_id, slot)`` well-formed.
* A real worker fed hypothesis-generated garbage (arbitrary JSON args and kwargs, and raw bytes
  pushed onto the queue list, not kombu messages at all): each message is answered by one
  ``rejected`` (or, if well-formed, recorded) run row, nothing runs, the worker keeps serving,
  and a valid message still runs afterwards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from legacy_wrappers.messages import JobRequest, Rejection, parse_request
from tests.chaos.harness import CHAOS_APP, Chaos
from tests.fuzz.conftest import examples
from tests.support import wait_for

TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30)
SLOTS = st.sampled_from(["2026-03-08T07:00:00Z", "2026-03-08T07:00:00", "2026-03-08T07:00:00.5Z",
                         "2026-02-30T00:00:00Z", "yesterday", "", "9999-12-31T23:59:59Z"])
IDS = st.sampled_from(["good", "no-such-job", "good; rm -rf /", "$(touch pwned)", "", "a" * 201,
                       "../../etc", "good\n"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False) | TEXT | IDS | SLOTS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6)
ARGS = st.one_of(st.tuples(IDS, SLOTS).map(list), st.lists(JSON, max_size=4))
KWARGS = st.one_of(st.just({}), st.dictionaries(TEXT, JSON, max_size=2))
SLOT_OK = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@examples(1000)
@given(args=ARGS, kwargs=KWARGS)
def test_the_request_parser_never_raises_and_accepts_only_id_and_slot(
    args: list[Any], kwargs: dict[str, Any]
) -> None:
    result = parse_request(args, kwargs)
    assert isinstance(result, JobRequest | Rejection)
    if isinstance(result, JobRequest):
        assert kwargs == {} and len(args) == 2 and result.job_id == args[0]
        assert isinstance(args[1], str) and SLOT_OK.match(args[1])
    else:
        assert result.reason and isinstance(result.job_id, str)


@pytest.fixture
def worker(tmp_path: Path, redis_url: str) -> Iterator[tuple[Chaos, Any]]:
    chaos = Chaos(tmp_path, redis_url)
    chaos.add_job("good", "0 * * * *", dialect="vixie")
    proc = chaos.worker(concurrency=1, app=CHAOS_APP)
    yield chaos, proc
    chaos.close()


@pytest.mark.integration
@pytest.mark.timeout(240)
@examples(15)
@given(args=ARGS, kwargs=KWARGS, raw=st.binary(max_size=64))
def test_a_real_worker_answers_garbage_messages_and_keeps_serving(
    worker: tuple[Chaos, Any], args: list[Any], kwargs: dict[str, Any], raw: bytes
) -> None:
    chaos, proc = worker
    if isinstance(parse_request(args, kwargs), JobRequest) and args[0] == "good":
        args = ["good", "not a slot"]  # a valid run is the final check, not a fuzz case
    before = len(chaos.runs())
    client = redis.Redis.from_url(chaos.redis_url)
    try:
        client.lpush("bridge", raw)  # not a kombu message at all: logged and dropped
    finally:
        client.close()
    chaos.client.send_task("bridge.run_job", args=args, kwargs=kwargs, queue="bridge")
    rows = wait_for("the message's run row", lambda: chaos.runs()[before:], 30,
                    logs=chaos.tail_logs)
    assert len(rows) == 1 and rows[0].status == "rejected", [(r.status, r.error) for r in rows]
    assert proc.alive(), proc.text()[-2000:]
    assert chaos.effects() == []
    assert not (chaos.tmp / "pwned").exists()


@pytest.mark.integration
def test_after_the_garbage_a_valid_message_still_runs(worker: tuple[Chaos, Any]) -> None:
    chaos, proc = worker
    client = redis.Redis.from_url(chaos.redis_url)
    try:
        for junk in (b"\x80\x81", b"{}", json.dumps({"body": "x"}).encode(), b"[" * 10000):
            client.lpush("bridge", junk)
    finally:
        client.close()
    chaos.client.send_task("bridge.run_job", args=["good", "2026-03-08T07:00:00Z"],
                           queue="bridge")
    wait_for("the valid run", lambda: chaos.slots_of("good"), 30, logs=chaos.tail_logs)
    assert proc.alive()
