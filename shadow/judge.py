"""Judging one slot from both paths' records (pure): the comparator's rules.

How a slot is judged (first rule that applies wins)
    Each path's records for the slot are read as one *side*: its **executions** (role
    ``authoritative``/``shadow`` with an execution status; a ``running`` start marker followed by
    a terminal record of the same host and attempt, and a failed/interrupted attempt followed by
    a higher attempt, fold into one execution), whether it **stood down** (``stand-down`` /
    ``suppressed``: the path was there and correctly did not run), whether it **observed** (an
    ``observe`` record), or only **declined** (``skipped``/``missed``/``rejected``) or was only
    **dispatched** (a ``scheduler`` record): those two count as absent.

    1. ``duplicate``: a path executed the slot more than once, or both paths executed it as
       ``authoritative`` (invariant 4 broken). Stand-down and suppressed records never count.
    1b. ``lost``: a path's run of the slot ended ``lost`` (its holder died before recording
       the outcome; the record's note starts ``outcome unknown``) and no later attempt of that
       path executed it. A finding, distinct from a failure or a miss.
    2. ``pending``: a side is absent (or an execution whose outcome is needed is still
       ``running``) and the slot is inside the grace window: ``slot > now - grace``; grace is
       ``tolerance_seconds + (policies.timeout_seconds or 300)`` unless given.
    3. ``missing_legacy`` / ``missing_celery``: that side is absent; or both are absent, or
       both present but neither executed: then the side that owns the slot (authority history,
       legacy by default) is the one missing, and the detail says what each side did.
    4. ``outcome_mismatch``: both sides executed (an *outcome* comparison: authoritative vs a
       ``dry-run``/``execute`` shadow) and a compared field differs: ``exit_status`` (or, when
       either lacks one, succeeded-vs-not) and ``output_digest`` where the job lists it in
       ``compare.fields`` and both digests exist.
    5. ``late``: either side's fire lag (``fired_at`` or else ``started_at``, earliest record, minus
       the slot; early counts too) exceeds ``compare.tolerance_seconds``.
    6. ``match``.

    Pairs where one side only observed or stood down are compared on *timing* only
    (:attr:`Basis.TIMING`): an ``observe`` Celery record in shadow mode, or after a flip the
    legacy shim's ``stand-down`` against Celery's authoritative run: comparison continues in the
    other direction without any change of rules.

    ``unexpected_slot``: records whose slot is not one of the schedule's slots in the window (a
    translation bug on that path, e.g. Celery's ``crontab`` firing at 03:30 EDT where Debian cron
    fires at 03:00 EDT on a spring-forward day).

    ``before_import``: records at a slot of the schedule at or before the job entered the
    registry (e.g. cron firing 16:07:00 for a job imported at 16:07:43): such a slot is not
    expected, nothing is compared, and it is never a finding (``unexpected_slot`` stays for
    instants the schedule does not contain).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bridge.core.authority import AuthorityEvent, Owner, owner_at
from bridge.core.runs import EXECUTION_STATUSES, Path, Role, RunRecord, Status
from bridge.core.spec import JobSpec
from shadow.sides import Side, build_side
from shadow.verdicts import Basis, SlotVerdict, Verdict

__all__ = [
    "JudgingContext", "before_import_verdict", "context_for", "grace_for", "judge_records",
    "judge_slot", "lost_detail", "outcome_diffs", "quick_match", "unexpected_verdict",
]

DEFAULT_RUN_ALLOWANCE = 300  # seconds a run may take before its record is overdue (no timeout)


@dataclass(frozen=True)
class JudgingContext:
    now: datetime
    grace: timedelta
    tolerance: float
    fields: tuple[str, ...]
    owner: Callable[[datetime], Owner]

    @property
    def compare_exit(self) -> bool:
        return "exit_status" in self.fields

    @property
    def compare_digest(self) -> bool:
        return "output_digest" in self.fields


def grace_for(spec: JobSpec) -> timedelta:
    """How long after a slot its records may still arrive (see the module docstring)."""
    allowance = spec.policies.timeout_seconds or DEFAULT_RUN_ALLOWANCE
    return timedelta(seconds=spec.compare.tolerance_seconds + allowance)


MATCH_DETAILS = {
    (Basis.OUTCOME, ""): "same outcome, on time",
    (Basis.TIMING, "legacy stood down"): "on time; legacy stood down (timing only)",
    (Basis.TIMING, "legacy observed"): "on time; legacy observed (timing only)",
    (Basis.TIMING, "celery stood down"): "on time; celery stood down (timing only)",
    (Basis.TIMING, "celery observed"): "on time; celery observed (timing only)",
}


def _verdict(slot: datetime, verdict: Verdict, legacy: Side, celery: Side, detail: str,
             basis: Basis = Basis.NONE, mismatched: tuple[str, ...] = ()) -> SlotVerdict:
    v = object.__new__(SlotVerdict)  # a frozen dataclass built without __init__: the hot path
    v.__dict__.update(slot=slot, verdict=verdict, legacy=legacy.main, celery=celery.main,
                      detail=detail, ignored_by=None, basis=basis, mismatched=mismatched,
                      legacy_lag=legacy.lag(slot), celery_lag=celery.lag(slot))
    return v


def judge_slot(slot: datetime, legacy: Side, celery: Side, ctx: JudgingContext) -> SlotVerdict:
    """One slot's verdict from both sides (rules 1-6 of the module docstring)."""
    duplicate = _duplicate(legacy, celery)
    if duplicate:
        return _verdict(slot, Verdict.DUPLICATE, legacy, celery, duplicate)
    lost = legacy.lost or celery.lost
    if lost is not None:
        return _verdict(slot, Verdict.LOST, legacy, celery, lost_detail(lost))
    if not (legacy.present and celery.present):
        if slot > ctx.now - ctx.grace:
            names = _absent_names(legacy, celery)
            return _verdict(slot, Verdict.PENDING, legacy, celery, f"waiting for {names}")
        return _missing(slot, legacy, celery, ctx.owner(slot))
    if not legacy.executions and not celery.executions:
        owner = ctx.owner(slot)
        verdict = Verdict.MISSING_LEGACY if owner is Owner.LEGACY else Verdict.MISSING_CELERY
        return _verdict(slot, verdict, legacy, celery,
                        f"no path executed the slot (owner {owner.value}: "
                        f"legacy {_how(legacy)}, celery {_how(celery)})")
    basis = Basis.OUTCOME if legacy.executions and celery.executions else Basis.TIMING
    if basis is Basis.OUTCOME:
        lrun, crun = legacy.executions[-1], celery.executions[-1]
        if Status.RUNNING in (lrun.status, crun.status):
            running = [r.path.value for r in (lrun, crun) if r.status is Status.RUNNING]
            return _verdict(slot, Verdict.PENDING, legacy, celery,
                            f"{' and '.join(running)} still running", basis)
        diffs = outcome_diffs(lrun, crun, ctx.fields)
        if diffs:
            return _verdict(slot, Verdict.OUTCOME_MISMATCH, legacy, celery,
                            "; ".join(d for _, d in diffs), basis, tuple(f for f, _ in diffs))
    late = _late(slot, legacy, celery, ctx.tolerance)
    if late:
        return _verdict(slot, Verdict.LATE, legacy, celery, late, basis)
    return _verdict(slot, Verdict.MATCH, legacy, celery, _match_detail(legacy, celery, basis),
                    basis)


_RUNS = EXECUTION_STATUSES
_RUNNERS = frozenset({Role.AUTHORITATIVE, Role.SHADOW})
_MATCH_OUTCOME = MATCH_DETAILS[Basis.OUTCOME, ""]
_MATCH_OBSERVED = MATCH_DETAILS[Basis.TIMING, "celery observed"]
_set_dict = object.__setattr__


def quick_match(slot: datetime, lrec: RunRecord, crec: RunRecord,
           ctx: JudgingContext) -> SlotVerdict | None:
    """:func:`judge_slot`'s answer for the common case, without building sides: one record per
    path, legacy executed, Celery executed alike or observed, both on time. ``None`` = not that
    case (the general path decides). Kept equal to the general path by the tests; this is the
    hot loop of a report, hence flat."""
    lstatus, cstatus = lrec.status, crec.status
    if lstatus not in _RUNS or lrec.role not in _RUNNERS or lstatus is Status.RUNNING:
        return None
    if cstatus in _RUNS and crec.role in _RUNNERS:
        if cstatus is Status.RUNNING or (lrec.role is crec.role is Role.AUTHORITATIVE):
            return None
        if ctx.compare_exit:
            le, ce = lrec.exit_status, crec.exit_status
            if le is None or ce is None:
                if (lstatus is Status.SUCCEEDED) is not (cstatus is Status.SUCCEEDED):
                    return None
            elif le != ce:
                return None
        if ctx.compare_digest and lrec.output_digest and crec.output_digest \
                and lrec.output_digest != crec.output_digest:
            return None
        basis, detail = Basis.OUTCOME, _MATCH_OUTCOME
    elif cstatus is Status.OBSERVED and crec.role is Role.OBSERVE:
        basis, detail = Basis.TIMING, _MATCH_OBSERVED
    else:
        return None
    lt, ct = lrec.fired_at or lrec.started_at, crec.fired_at or crec.started_at
    llag = None if lt is None else (lt - slot).total_seconds()
    clag = None if ct is None else (ct - slot).total_seconds()
    tol = ctx.tolerance
    if (llag is not None and abs(llag) > tol) or (clag is not None and abs(clag) > tol):
        return None
    v = object.__new__(SlotVerdict)
    _set_dict(v, "__dict__", {
        "slot": slot, "verdict": Verdict.MATCH, "legacy": lrec, "celery": crec,
        "detail": detail, "ignored_by": None, "basis": basis, "mismatched": (),
        "legacy_lag": llag, "celery_lag": clag,
    })
    return v


def lost_detail(lost: RunRecord) -> str:
    """What a ``lost`` verdict says: which path lost the run, and the record's note."""
    note = (lost.error or "").strip() or "outcome unknown"
    return f"{lost.path.value} {lost.role.value} run lost: {note}"


def _late(slot: datetime, legacy: Side, celery: Side, tolerance: float) -> str:
    words = []
    for side in (legacy, celery):
        lag = side.lag(slot)
        if lag is not None and abs(lag) > tolerance:
            words.append(f"{side.path.value} {_lag_words(lag)}")
    return f"{', '.join(words)} (tolerance {tolerance:g} s)" if words else ""


def _duplicate(legacy: Side, celery: Side) -> str:
    for side in (legacy, celery):
        if len(side.executions) > 1:
            hosts = sorted({r.host or "?" for r in side.executions})
            return f"{side.path.value} executed {len(side.executions)} times ({', '.join(hosts)})"
    if any(r.role is Role.AUTHORITATIVE for r in legacy.executions) and any(
        r.role is Role.AUTHORITATIVE for r in celery.executions
    ):
        return "both paths executed the slot as authoritative"
    return ""


def _missing(slot: datetime, legacy: Side, celery: Side, owner: Owner) -> SlotVerdict:
    if not legacy.present and not celery.present:
        verdict = Verdict.MISSING_LEGACY if owner is Owner.LEGACY else Verdict.MISSING_CELERY
        return _verdict(slot, verdict, legacy, celery,
                        f"neither path recorded the slot (owner {owner.value})"
                        f"{_declined(legacy)}{_declined(celery)}")
    if not legacy.present:
        return _verdict(slot, Verdict.MISSING_LEGACY, legacy, celery,
                        f"no legacy firing{_declined(legacy)}")
    return _verdict(slot, Verdict.MISSING_CELERY, legacy, celery,
                    f"no celery firing{_declined(celery)}")


def _declined(side: Side) -> str:
    if not side.records:
        return ""
    r = side.records[-1]
    return f" ({side.path.value}: only {r.role.value}/{r.status.value} recorded)"


def _absent_names(legacy: Side, celery: Side) -> str:
    return " and ".join(s.path.value for s in (legacy, celery) if not s.present)


def _how(side: Side) -> str:
    return "stood down" if side.stood_down else "observed" if side.observed else "absent"


def _lag_words(lag: float) -> str:
    return f"late by {lag:g} s" if lag > 0 else f"early by {-lag:g} s"


def _match_detail(legacy: Side, celery: Side, basis: Basis) -> str:
    if basis is Basis.OUTCOME:
        return MATCH_DETAILS[basis, ""]
    quiet = legacy if not legacy.executions else celery
    return MATCH_DETAILS[basis, f"{quiet.path.value} {_how(quiet)}"]


def _succeeded(obs: RunRecord) -> bool:
    return obs.status is Status.SUCCEEDED


def outcome_diffs(
    legacy: RunRecord, celery: RunRecord, fields_: Sequence[str]
) -> list[tuple[str, str]]:
    """(field, description) of each compared outcome field that differs."""
    out: list[tuple[str, str]] = []
    if "exit_status" in fields_:
        if legacy.exit_status is not None and celery.exit_status is not None:
            if legacy.exit_status != celery.exit_status:
                out.append(("exit_status", f"exit status legacy={legacy.exit_status} "
                                           f"celery={celery.exit_status}"))
        elif _succeeded(legacy) != _succeeded(celery):
            out.append(("exit_status", f"status legacy={legacy.status.value} "
                                       f"celery={celery.status.value}"))
    if ("output_digest" in fields_ and legacy.output_digest and celery.output_digest
            and legacy.output_digest != celery.output_digest):
        out.append(("output_digest", f"output digest legacy={legacy.output_digest[:12]} "
                                     f"celery={celery.output_digest[:12]}"))
    return out


def context_for(spec: JobSpec, now: datetime, history: Sequence[AuthorityEvent] = (),
                grace: timedelta | None = None) -> JudgingContext:
    """The judging context of one job (``grace`` overrides :func:`grace_for`)."""
    return JudgingContext(now, grace_for(spec) if grace is None else grace,
                    float(spec.compare.tolerance_seconds), spec.compare.fields,
                    lambda s: owner_at(history, s))


def judge_records(slot: datetime, legacy: Sequence[RunRecord], celery: Sequence[RunRecord],
                  ctx: JudgingContext) -> SlotVerdict:
    """The verdict of one expected slot from each path's records for it (slot order)."""
    verdict = None
    if len(legacy) == len(celery) == 1:
        verdict = quick_match(slot, legacy[0], celery[0], ctx)
    if verdict is None:
        verdict = judge_slot(slot, build_side(Path.LEGACY, legacy),
                             build_side(Path.CELERY, celery), ctx)
    return verdict


def unexpected_verdict(
    slot: datetime, legacy: Sequence[RunRecord], celery: Sequence[RunRecord]
) -> SlotVerdict:
    """The verdict of records at an instant the schedule does not contain."""
    lside, cside = build_side(Path.LEGACY, legacy), build_side(Path.CELERY, celery)
    paths = " and ".join(s.path.value for s in (lside, cside) if s.records)
    return _verdict(slot, Verdict.UNEXPECTED_SLOT, lside, cside,
                    f"{paths} fired at an instant the schedule does not contain")


def before_import_verdict(slot: datetime, legacy: Sequence[RunRecord],
                          celery: Sequence[RunRecord],
                          imported: datetime | None) -> SlotVerdict:
    """The verdict of records at a slot of the schedule at or before the job's import: not
    compared (the other path could not know the job yet), never a finding."""
    lside, cside = build_side(Path.LEGACY, legacy), build_side(Path.CELERY, celery)
    paths = " and ".join(s.path.value for s in (lside, cside) if s.records)
    when = "" if imported is None else \
        f" ({imported.astimezone(UTC).isoformat().replace('+00:00', 'Z')})"
    return _verdict(slot, Verdict.BEFORE_IMPORT, lside, cside,
                    f"{paths} fired before the job was imported{when}; not compared")
