"""The observation store on SQLite and PostgreSQL: round trip, idempotent keys, windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.core.runs import (
    SAMPLE_LIMIT,
    Path,
    Role,
    RunRecord,
    Status,
    bound_sample,
    digest_output,
)
from bridge.store.db import Registry
from bridge.store.runs import RunRepo, query, record, record_many
from tests.shadow.helpers import make_obs, utc

SLOT = utc("2026-03-08T07:00:00Z")


@pytest.fixture
def reg(db_url: str):  # type: ignore[no-untyped-def]
    registry = Registry(db_url)
    yield registry
    registry.dispose()


def full_observation(**changes) -> RunRecord:  # type: ignore[no-untyped-def]
    values = dict(
        job_id="etc-cron.d-certbot-1", slot=SLOT, path=Path.LEGACY, role=Role.AUTHORITATIVE,
        status=Status.FAILED, fired_at=SLOT + timedelta(microseconds=250_001),
        started_at=SLOT + timedelta(seconds=1, microseconds=5),
        finished_at=SLOT + timedelta(seconds=9, microseconds=999_999), exit_status=3,
        task_state="FAILURE", attempts=2, output_digest="f" * 64, output_sample="héllo\n",
        host="cron-1", error="exit 3", record_key="legacy/etc-cron.d-certbot-1/1")
    values.update(changes)
    return RunRecord(**values)  # type: ignore[arg-type]


def test_every_field_round_trips_as_aware_utc(reg: Registry) -> None:
    obs = full_observation()
    with reg.session() as s:
        assert record(s, obs) is True
    with reg.session() as s:
        [back] = list(query(s, obs.job_id))
    assert back == obs
    assert back.slot.tzinfo is not None and back.slot.utcoffset() == timedelta(0)
    assert isinstance(back.path, Path) and isinstance(back.status, Status)


def test_a_duplicate_record_key_adds_nothing(reg: Registry) -> None:
    obs = full_observation()
    with reg.session() as s:
        assert record(s, obs) is True
    with reg.session() as s:
        assert record(s, full_observation(exit_status=0)) is False  # the spool uploads again
        assert RunRepo(s).count() == 1
    with reg.session() as s:
        assert [o.exit_status for o in query(s, obs.job_id)] == [3]


def test_records_without_a_key_are_all_kept(reg: Registry) -> None:
    with reg.session() as s:
        for _ in range(2):
            assert record(s, full_observation(record_key=None)) is True
        assert RunRepo(s).count() == 2


def test_record_many_is_idempotent_per_key_in_and_across_batches(reg: Registry) -> None:
    batch = [full_observation(record_key=f"k{i % 5}", slot=SLOT + timedelta(hours=i % 5))
             for i in range(12)]
    with reg.session() as s:
        assert record_many(s, batch, batch=4) == 5
    with reg.session() as s:
        assert record_many(s, [*batch[:3], full_observation(record_key="k9")]) == 1
        assert RunRepo(s).count() == 6


def test_query_window_is_since_exclusive_until_inclusive_in_slot_order(reg: Registry) -> None:
    slots = [SLOT + timedelta(hours=h) for h in (3, 0, 1, 2)]
    with reg.session() as s:
        for slot in slots:
            record(s, make_obs("celery", slot, job_id="a"))
            record(s, make_obs("legacy", slot, job_id="a"))
        record(s, make_obs("legacy", SLOT + timedelta(hours=1), job_id="b"))
    with reg.session() as s:
        got = list(query(s, "a", SLOT, SLOT + timedelta(hours=2)))
    assert [(o.slot.hour, o.path.value) for o in got] == [
        (8, "celery"), (8, "legacy"), (9, "celery"), (9, "legacy")]


def test_query_several_jobs_in_the_order_given_or_all_jobs(reg: Registry) -> None:
    with reg.session() as s:
        for job in ("b", "a", "c"):
            record(s, make_obs("legacy", SLOT, job_id=job))
    with reg.session() as s:
        assert [o.job_id for o in query(s, ["c", "a"])] == ["c", "a"]
        assert [o.job_id for o in query(s, None)] == ["a", "b", "c"]
        assert list(query(s, "nope")) == []


def test_query_streams_in_small_chunks(reg: Registry) -> None:
    with reg.session() as s:
        record_many(s, [make_obs("legacy", SLOT + timedelta(minutes=i), job_id="a")
                        for i in range(25)])
    with reg.session() as s:
        got = list(query(s, "a", chunk_size=4))
    assert len(got) == 25 and got == sorted(got, key=lambda o: o.slot)


def test_observations_refuse_naive_times_and_sub_second_slots() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        full_observation(fired_at=datetime(2026, 3, 8, 7, 0))
    with pytest.raises(ValueError, match="whole-second"):
        full_observation(slot=SLOT + timedelta(microseconds=1))
    with pytest.raises(ValueError):
        full_observation(status="exploded")


def test_output_sample_is_bounded_keeping_head_and_tail() -> None:
    text = "é" * 3000 + "MIDDLE" + "z" * 5000 + "THE END"
    sample = full_observation(output_sample=text).output_sample
    assert sample is not None and len(sample.encode()) <= SAMPLE_LIMIT
    assert sample.startswith("é") and sample.endswith("THE END")
    assert "[... output truncated ...]" in sample
    assert bound_sample("short") == "short"


def test_digest_applies_clean_rules_before_hashing() -> None:
    clean = [r"\d{4}-\d{2}-\d{2}T[\d:]+Z", r"pid=\d+"]
    a = "2026-03-08T07:00:01Z start pid=41\nok\n"
    b = "2026-03-09T07:00:02Z start pid=977\nok\n"
    assert digest_output(a, clean) == digest_output(b, clean)
    assert digest_output(a) != digest_output(b)
    assert digest_output(a, clean) != digest_output(a.replace("ok", "FAIL"), clean)
    assert len(digest_output("")) == 64


def test_query_reads_rows_written_by_other_writers(reg: Registry) -> None:
    """legacy_wrappers may write runs rows directly: those read back as observations too."""
    with reg.session() as s:
        RunRepo(s).add(job_id="a", slot=SLOT, path="celery", role="observe", status="observed",
                       fired_at=datetime(2026, 3, 8, 7, 0, 2, tzinfo=UTC), attempts=1)
    with reg.session() as s:
        [o] = list(query(s, "a"))
    assert (o.role, o.status, o.fire_time) == (Role.OBSERVE, Status.OBSERVED,
                                              SLOT + timedelta(seconds=2))
