"""The policies that govern running a job: overlap, misfire, retries, timeout, shadow mode,
queue and concurrency group, what to do with a lost run, repairs, and how shadow runs compare.

Frozen values validated on construction (a bad value is a :class:`SpecError`); part of every
:class:`bridge.core.spec.JobSpec`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from bridge.core.errors import SpecError


class OverlapPolicy(StrEnum):
    ALLOW = "allow"  # cron's and Quartz's default: a new slot runs even if the last still runs
    FORBID = "forbid"  # skip (and record) a slot while the previous one still runs


class MisfirePolicy(StrEnum):
    SKIP = "skip"  # cron: a slot missed beyond grace is recorded missed, not run
    FIRE_ONCE = "fire_once"  # Quartz SMART_POLICY / FIRE_ONCE_NOW: one run for the latest miss
    FIRE_ALL = "fire_all"  # every missed slot inside the catch-up window


class ShadowMode(StrEnum):
    OBSERVE = "observe"  # record the firing only (default: never doubles a side effect)
    DRY_RUN = "dry-run"  # run the handler's declared dry-run form
    EXECUTE = "execute"  # run the real handler: explicit opt-in for side-effect-free jobs


class LostPolicy(StrEnum):
    """What happens to a slot whose run's holder died after the command started and before its
    outcome was recorded (the outcome is unknown: the side effect may or may not have happened).
    """

    SKIP = "skip"  # record the slot ``lost`` ("outcome unknown"), alert, never re-run it by itself
    RERUN = "rerun"  # run it again (safe only for idempotent handlers)


class RepairPolicy(StrEnum):
    """Whether the periodic health task repairs this job's missed and stuck slots by itself."""

    AUTO = "auto"  # re-send through the claim (audited as ``repair``)
    ALERT_ONLY = "alert-only"  # only alert; an operator repairs (`bridge reconcile --repair`)


class Placement(StrEnum):
    """Which workers may run a job (see :mod:`bridge.core.placement`)."""

    HOST = "host"  # only a worker on the job's host (its per-host queue); the default
    ANYWHERE = "anywhere"  # any worker of the job's queue


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 0
    backoff_seconds: float = 30.0
    backoff_max_seconds: float = 600.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.backoff_seconds < 0 or self.backoff_max_seconds < 0:
            raise SpecError("retry policy values must be >= 0")


@dataclass(frozen=True)
class Policies:
    overlap: OverlapPolicy = OverlapPolicy.ALLOW
    misfire: MisfirePolicy = MisfirePolicy.SKIP
    misfire_grace_seconds: int = 60
    catchup_window_seconds: int = 3600
    retry: RetryPolicy = RetryPolicy()
    timeout_seconds: int | None = None
    shadow_mode: ShadowMode = ShadowMode.OBSERVE
    queue: str = "bridge"
    group: str | None = None
    jitter_seconds: int = 0
    max_concurrency: int | None = None  # runs of ``group`` at once, across all workers
    on_lost: LostPolicy = LostPolicy.SKIP  # prefer skip over double-run (issue 20)
    repair: RepairPolicy = RepairPolicy.AUTO
    placement: Placement = Placement.HOST  # binds only a job that has a host (spec.host)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "overlap", OverlapPolicy(self.overlap))
        except ValueError as e:  # 'replace' (stop the previous run) included: never supported
            raise SpecError(f"unknown overlap policy {self.overlap!r}: use "
                            + " or ".join(repr(p.value) for p in OverlapPolicy)) from e
        try:
            object.__setattr__(self, "on_lost", LostPolicy(self.on_lost))
            object.__setattr__(self, "repair", RepairPolicy(self.repair))
            object.__setattr__(self, "placement", Placement(self.placement))
            object.__setattr__(self, "misfire", MisfirePolicy(self.misfire))
            object.__setattr__(self, "shadow_mode", ShadowMode(self.shadow_mode))
        except ValueError as e:
            raise SpecError(str(e)) from e
        if self.misfire_grace_seconds < 0 or self.catchup_window_seconds < 0:
            raise SpecError("misfire grace and catch-up window must be >= 0")
        if self.timeout_seconds is not None and self.timeout_seconds <= 0:
            raise SpecError("timeout_seconds must be > 0 when set")
        if self.jitter_seconds < 0:
            raise SpecError("jitter_seconds must be >= 0")
        if not re.match(r"^[A-Za-z0-9_.:-]{1,100}$", self.queue):
            raise SpecError(f"bad queue name '{self.queue}'")
        if self.max_concurrency is not None:
            if isinstance(self.max_concurrency, bool) or not isinstance(
                self.max_concurrency, int
            ):
                raise SpecError("max_concurrency must be an integer >= 1")
            if self.max_concurrency < 1:
                raise SpecError("max_concurrency must be >= 1 when set")
            if self.group is None:
                raise SpecError("max_concurrency needs a group: it bounds that group's runs")


@dataclass(frozen=True)
class ComparePolicy:
    """How shadow observations of this job are compared (see :mod:`shadow.compare`)."""

    fields: tuple[str, ...] = ("exit_status",)
    clean: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    tolerance_seconds: int = 60
    ready_after: int | None = None

    def __post_init__(self) -> None:
        allowed = {"exit_status", "output_digest"}
        object.__setattr__(self, "fields", tuple(self.fields))
        object.__setattr__(self, "clean", tuple(self.clean))
        object.__setattr__(self, "ignore", tuple(self.ignore))
        bad = [f for f in self.fields if f not in allowed]
        if bad:
            raise SpecError(f"unknown compare field(s) {bad}; allowed {sorted(allowed)}")
        for pattern in self.clean:
            try:
                re.compile(pattern)
            except re.error as e:
                raise SpecError(f"bad clean regex '{pattern}': {e}") from e
