"""Legacy-exact schedule math, one module per dialect family (pure: no clock, no I/O).

``compile_schedule(spec)`` validates a :class:`bridge.core.spec.ScheduleSpec` and returns an
:class:`Evaluator`; it raises :class:`bridge.core.errors.ScheduleError` with a precise reason for
anything the legacy scheduler would reject or that the bridge cannot reproduce.
"""

from __future__ import annotations

from bridge.core.errors import ScheduleError
from bridge.core.schedules.base import Evaluator, slots_between, take, to_utc_slot
from bridge.core.spec import Dialect, ScheduleSpec

__all__ = ["Evaluator", "ScheduleError", "compile_schedule", "slots_between", "take", "to_utc_slot"]


def compile_schedule(spec: ScheduleSpec) -> Evaluator:
    if spec.dialect in (Dialect.VIXIE, Dialect.CRONIE):
        from bridge.core.schedules import cron

        return cron.compile(spec)
    if spec.dialect is Dialect.QUARTZ:
        from bridge.core.schedules import quartz

        return quartz.compile(spec)
    from bridge.core.schedules import simple

    return simple.compile(spec)
