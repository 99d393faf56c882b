"""One Quartz scheduler's definitions as its JobStore holds them: :class:`StoreRows`.

Read from the JDBC tables (:mod:`crontab_import.quartz.jdbc`) or from the plugin's export
(:mod:`crontab_import.quartz.export`); :mod:`crontab_import.quartz.store` turns them into
import items. The source of every job is ``quartz-scheduler:<SCHED_NAME>`` (``source_name``:
the plan's "file", the unit of pruning): the same scheduler imported through JDBC or through
the plugin's export is the same source, and re-importing it is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StoreJob:
    name: str
    group: str
    job_class: str | None
    description: str | None
    durable: bool
    recover: bool
    nonconcurrent: bool
    update_data: bool
    data: dict[str, str | None] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)


@dataclass
class StoreTrigger:
    name: str
    group: str
    job_name: str
    job_group: str
    type: str  # TRIGGER_TYPE: CRON, SIMPLE, CAL_INT, DAILY_I, BLOB, ...
    state: str
    start_ms: int
    end_ms: int | None
    next_fire_ms: int | None
    prev_fire_ms: int | None
    priority: int
    misfire: int
    description: str | None = None
    calendar: str | None = None
    cron_expression: str | None = None
    time_zone: str | None = None
    repeat_count: int | None = None
    repeat_interval: int | None = None  # ms (simple) or units (calendar-interval)
    interval_unit: str | None = None
    times_triggered: int | None = None
    preserve_hour: bool = False
    skip_day: bool = False
    data: dict[str, str | None] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.group}.{self.name}"


@dataclass
class StoreRows:
    """One scheduler's definitions as its JobStore holds them (JDBC tables or plugin export)."""

    sched_name: str
    origin: str  # where they were read, for notes: "jdbc postgresql://…", "export FILE"
    jobs: list[StoreJob] = field(default_factory=list)
    triggers: list[StoreTrigger] = field(default_factory=list)
    calendars: list[str] = field(default_factory=list)
    paused_groups: list[str] = field(default_factory=list)


def source_name(sched_name: str) -> str:
    return f"quartz-scheduler:{sched_name}"
