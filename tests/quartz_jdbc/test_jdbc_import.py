"""``bridge import quartz --jdbc``: real Quartz 2.3.2 schedulers on PostgreSQL and MariaDB.

The harness (QuartzJdbcHarness.java) schedules a realistic set through the Quartz API, starts
the scheduler (misfire recovery included), and reports every trigger's next fire times; the
bridge then imports from the tables and must fire each imported trigger exactly then.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.core.schedules import compile_schedule
from crontab_import.model import ItemStatus
from crontab_import.quartz.jdbc import read_store
from crontab_import.quartz.store import parse_store
from tests.quartz_jdbc.conftest import SCHEDULERS, Quartz

pytestmark = [pytest.mark.java, pytest.mark.integration]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
IMPORTED = {
    "billing.invoice-run.nightly": "billing.nightly",
    "billing.invoice-run.month-end": "billing.month-end",
    "ops.heartbeat": "ops.heartbeat",
    "ops.batch": "ops.batch",
    "ops.catch-up": "ops.catch-up",
    "reports.month-close": "reports.month-close",
    "reports.fortnight": "reports.fortnight",
    "ops.cleanup": "ops.cleanup",  # paused: inactive, but its schedule must still be Quartz's
    "frozen.ldap-sync": "frozen.ldap-sync",
}


def _items(quartz: Quartz, sched: str) -> dict[str, Any]:
    rows = read_store(quartz.store.sqlalchemy_url, sched_name=sched)
    result = parse_store(
        rows, handlers=None, now=datetime.now(UTC), default_timezone="America/New_York"
    )
    assert result.errors == ()
    return {i.id: i for i in result.items}


@pytest.mark.parametrize("sched", sorted(SCHEDULERS))
def test_every_imported_trigger_fires_exactly_when_the_running_quartz_does(
    quartz: Quartz, sched: str
) -> None:
    items = _items(quartz, sched)
    reported = quartz.reported[sched]
    for job_id, trigger in IMPORTED.items():
        item = items[job_id]
        assert item.job is not None, (job_id, item.reason)
        expected = [ms // 1000 for ms in reported[trigger].next_ms]  # bridge slots: whole seconds
        assert len(expected) >= 5, (trigger, reported[trigger])
        ev = compile_schedule(item.job.schedule)
        slot = ev.next_after(EPOCH + timedelta(seconds=expected[0] - 1))
        got = []
        for _ in expected:
            assert slot is not None, job_id
            got.append(int(slot.timestamp()))
            slot = ev.next_after(slot)
        assert got == expected, job_id
        quartz_state = item.details["quartz"]
        assert quartz_state["in_step"] is True, (job_id, quartz_state)
        assert quartz_state["next_fire"] is not None


@pytest.mark.parametrize("sched", sorted(SCHEDULERS))
def test_states_refusals_misfire_zone_and_priority_are_in_the_plan(
    quartz: Quartz, sched: str
) -> None:
    items = _items(quartz, sched)
    assert set(items) == {*IMPORTED, "billing.payroll", "ops.office-hours", "ops.manual-export"}
    ok = {k for k, v in items.items() if v.status is ItemStatus.OK}
    assert ok == set(IMPORTED) - {"ops.cleanup", "frozen.ldap-sync"}
    for paused in ("ops.cleanup", "frozen.ldap-sync"):
        assert items[paused].status is ItemStatus.INACTIVE
        assert items[paused].details["quartz"]["state"] == "PAUSED"
        assert "paused in Quartz" in (items[paused].reason or "")
    assert items["billing.payroll"].status is ItemStatus.UNSUPPORTED
    assert "calendar-name 'holidays'" in (items["billing.payroll"].reason or "")
    assert items["ops.office-hours"].status is ItemStatus.UNSUPPORTED
    assert "DailyTimeIntervalTrigger" in (items["ops.office-hours"].reason or "")
    assert items["ops.manual-export"].status is ItemStatus.UNSUPPORTED
    nightly = items["billing.invoice-run.nightly"]
    assert nightly.details["misfire"] == "MISFIRE_INSTRUCTION_DO_NOTHING"
    assert nightly.details["misfire_policy"] == "skip"
    assert nightly.details["trigger"]["priority"] == 7
    assert {k: nightly.details["quartz"][k] for k in ("recover", "nonconcurrent")} == {
        "recover": False, "nonconcurrent": False,
    }  # fmt: skip
    assert nightly.job is not None and nightly.job.schedule.timezone == "America/New_York"
    month_end = items["billing.invoice-run.month-end"]
    assert month_end.details["misfire"] == "MISFIRE_INSTRUCTION_FIRE_ONCE_NOW"
    assert month_end.job is not None and month_end.job.schedule.timezone == "Europe/Berlin"
    assert month_end.job.schedule.end == datetime(2030, 1, 1, tzinfo=UTC)
    tokyo = items["reports.month-close"]
    assert tokyo.job is not None and tokyo.job.schedule.timezone == "Asia/Tokyo"
    # re-anchored by Quartz's start-up misfire handling (RESCHEDULE_NOW_WITH_EXISTING_COUNT):
    # the bridge starts where Quartz now is, not at the start the application gave it
    catch_up = items["ops.catch-up"]
    assert catch_up.details["quartz"]["prev_fire"] is not None
    assert catch_up.job is not None and catch_up.job.schedule.start is not None
    assert catch_up.job.schedule.start > datetime.now(UTC) - timedelta(hours=1)


def test_job_data_is_read_both_ways_and_unreadable_values_are_named(quartz: Quartz) -> None:
    props = _items(quartz, "props")["billing.invoice-run.nightly"]
    serial = _items(quartz, "serial")["billing.invoice-run.nightly"]
    label = 'Zürich € = \\ "x"\n#not a comment'
    strings = {"region": "us-east", "batchSize": "500", "label": label}
    assert props.details["job_data"] == strings
    assert "job_data_unreadable" not in props.details
    assert serial.details["job_data"] == {
        **strings, "retries": "3", "limit": "10000000000", "dryRun": "false",
    }  # fmt: skip
    assert set(serial.details["job_data_unreadable"]) == {"amount"}
    assert "QuartzJdbcHarness$Money" in serial.details["job_data_unreadable"]["amount"]
    for item in (props, serial):  # the trigger's own JobDataMap overrides the job's
        assert item.details["trigger_data"] == {"batchSize": "250"}
