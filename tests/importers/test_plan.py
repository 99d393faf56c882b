"""The pure planner: parse results + registry state -> plan entries."""

from __future__ import annotations

from datetime import UTC, datetime

from bridge.core.jobs import StoredJob
from bridge.core.spec import CommandHandler, JobSpec, ScheduleSpec, SourceLocation
from crontab_import.model import ImportItem, ItemStatus, ParseResult
from crontab_import.plan import PlanStatus, changed_fields, make_plan

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def spec(
    job_id: str,
    expr: str = "0 5 * * *",
    file: str = "/f",
    start: datetime | None = None,
    dialect: str = "vixie",
) -> JobSpec:
    schedule = (
        ScheduleSpec(dialect=dialect, expression=expr, timezone="UTC")
        if start is None
        else ScheduleSpec(dialect="quartz-simple", start=start, interval_ms=60000)
    )
    return JobSpec(
        id=job_id,
        schedule=schedule,
        handler=CommandHandler(command="true"),
        source=SourceLocation(file, 1),
    )


def item(job: JobSpec, status: ItemStatus = ItemStatus.OK, **details: object) -> ImportItem:
    return ImportItem(status=status, source=job.source, id=job.id, job=job, details=details)


def stored(job: JobSpec) -> StoredJob:
    return StoredJob(job, job.spec_hash(), False, None, T0, T0)


def test_new_changed_and_same_jobs_are_create_update_unchanged() -> None:
    old_a, old_b = spec("a"), spec("b")
    results = [
        ParseResult("/f", items=(item(spec("a")), item(spec("b", "0 6 * * *")), item(spec("c"))))
    ]
    plan = make_plan(results, {"a": stored(old_a), "b": stored(old_b)}, {"/f": {"a", "b"}})
    status = {e.id: e.status for e in plan.entries}
    assert status == {"a": PlanStatus.UNCHANGED, "b": PlanStatus.UPDATE, "c": PlanStatus.CREATE}
    assert next(e for e in plan.entries if e.id == "b").changed == ("schedule.expression",)


def test_only_jobs_that_vanished_from_their_file_are_deleted() -> None:
    existing = {i: stored(spec(i)) for i in ("kept", "gone", "disabled-now")}
    results = [
        ParseResult(
            "/f", items=(item(spec("kept")), item(spec("disabled-now"), ItemStatus.DISABLED))
        )
    ]
    plan = make_plan(results, existing, {"/f": set(existing)})
    assert [(e.id, e.status) for e in plan.entries if e.status is PlanStatus.DELETE] == [
        ("gone", PlanStatus.DELETE)
    ]
    assert not [
        e
        for e in make_plan(results, existing, {"/f": set(existing)}, prune=False).entries
        if e.status is PlanStatus.DELETE
    ]


def test_inactive_items_are_imported_only_when_asked() -> None:
    results = [ParseResult("/f", items=(item(spec("x"), ItemStatus.INACTIVE),))]
    assert make_plan(results, {}, {}).entries[0].status is PlanStatus.INACTIVE
    assert make_plan(results, {}, {}, include_inactive=True).entries[0].status is PlanStatus.CREATE


def test_duplicate_ids_across_files_are_errors_naming_the_first_place() -> None:
    results = [
        ParseResult("/a", items=(item(spec("dup", file="/a")),)),
        ParseResult("/b", items=(item(spec("dup", file="/b")),)),
    ]
    plan = make_plan(results, {}, {})
    assert [str(e) for e in plan.errors] == ["/b:1: job id 'dup' is already used at /a:1"]


def test_import_time_start_of_a_quartz_trigger_does_not_make_every_reimport_an_update() -> None:
    first = spec("q", start=T0)
    later = spec("q", start=datetime(2026, 6, 1, tzinfo=UTC))
    results = [ParseResult("/f", items=(item(later, start_source="import-time"),))]
    plan = make_plan(results, {"q": stored(first)}, {"/f": {"q"}})
    assert plan.entries[0].status is PlanStatus.UNCHANGED
    results = [ParseResult("/f", items=(item(later, start_source="start-time"),))]
    assert make_plan(results, {"q": stored(first)}, {}).entries[0].status is PlanStatus.UPDATE


def test_changed_fields_lists_dotted_paths() -> None:
    assert changed_fields({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 1, "c": 5}, "d": 4}) == [
        "a.c",
        "d",
    ]
