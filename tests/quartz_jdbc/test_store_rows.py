"""``parse_store`` on rows no running Quartz produces on demand (pure, no database)."""

from __future__ import annotations

from datetime import UTC, datetime

from crontab_import.model import ItemStatus
from crontab_import.quartz.rows import StoreJob, StoreRows, StoreTrigger
from crontab_import.quartz.store import parse_store

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
MS_2026 = 1767225600000  # 2026-01-01T00:00:00Z


def _rows(**trigger: object) -> StoreRows:
    job = StoreJob("j", "g", "com.acme.J", None, False, False, False, False)
    base: dict[str, object] = dict(
        name="t", group="g", job_name="j", job_group="g", type="CRON", state="WAITING",
        start_ms=MS_2026, end_ms=None, next_fire_ms=None, prev_fire_ms=None, priority=5,
        misfire=0, cron_expression="0 0 12 * * ?", time_zone="UTC",
    )  # fmt: skip
    base.update(trigger)
    return StoreRows("s", "test rows", jobs=[job], triggers=[StoreTrigger(**base)])  # type: ignore[arg-type]


def _item(rows: StoreRows):  # type: ignore[no-untyped-def]
    result = parse_store(rows, handlers=None, now=NOW, default_timezone="UTC")
    return result, result.items[0]


def test_a_complete_trigger_whose_end_has_passed_is_unsupported_not_an_error() -> None:
    # Quartz marks a trigger COMPLETE after its last fire; converting it would find that it
    # "never fires between its start and end" and block the whole import
    result, item = _item(_rows(state="COMPLETE", end_ms=MS_2026 + 3_600_000))
    assert result.errors == ()
    assert item.status is ItemStatus.UNSUPPORTED
    assert item.reason == "complete in Quartz: it will never fire again"


def test_a_time_outside_the_calendar_is_refused_without_a_traceback() -> None:
    result, item = _item(_rows(end_ms=2**62))
    assert result.errors == ()
    assert item.status is ItemStatus.UNSUPPORTED
    assert "outside the years" in (item.reason or "")


def test_an_unknown_misfire_number_is_an_error_naming_the_trigger() -> None:
    result, item = _item(_rows(misfire=7))
    assert item.status is ItemStatus.ERROR
    assert [e.message for e in result.errors] == [
        "trigger g.t: no cron misfire instruction "
        "'MISFIRE_INSTRUCTION_7 (unknown to Quartz 2.3 for CRON triggers)'"
    ]


def test_blob_and_dst_preserving_calendar_triggers_are_refused_with_the_reason() -> None:
    _, blob = _item(_rows(type="BLOB", cron_expression=None))
    assert blob.status is ItemStatus.UNSUPPORTED and "QRTZ_BLOB_TRIGGERS" in (blob.reason or "")
    _, preserving = _item(
        _rows(type="CAL_INT", cron_expression=None, repeat_interval=1, interval_unit="DAY",
              time_zone="Europe/Paris", preserve_hour=True)
    )  # fmt: skip
    assert preserving.status is ItemStatus.UNSUPPORTED
    assert "preserveHourOfDayAcrossDaylightSavings" in (preserving.reason or "")
