"""Planning a flip (pure) and applying many flips as one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from bridge.core.authority import AuthorityEvent, Owner, owner_at
from bridge.services.flip import FlipPlan, Refusal, RefusalKind, apply_flips, plan_flip
from bridge.store.audit import AuditRepo
from bridge.store.db import Registry
from bridge.store.repos import AuthorityRepo, JobRepo
from tests.shadow.helpers import make_spec, utc

MARGIN = timedelta(seconds=120)


@dataclass(frozen=True)
class Ready:
    ready: bool = True
    reasons: tuple[str, ...] = ()


NOT_READY = Ready(False, ("2 decided slot(s) in the window, 3 needed",))


def event(owner: Owner, effective: str | None, job_id: str = "etc-crontab-1") -> AuthorityEvent:
    return AuthorityEvent(job_id, utc(effective) if effective else None, owner, "t", None, False,
                          utc("2026-01-01T00:00:00Z"))


LEGACY = [event(Owner.LEGACY, None)]


def plan(**kw: object) -> FlipPlan:
    result = plan_flip(**{"spec": make_spec(), "history": LEGACY, "readiness": Ready(),  # type: ignore[arg-type]
                          "to": Owner.CELERY, "now": utc("2026-03-02T10:17:30Z"),
                          "margin": MARGIN, **kw})
    assert isinstance(result, FlipPlan), result
    return result


def refusal(**kw: object) -> Refusal:
    result = plan_flip(**{"spec": make_spec(), "history": LEGACY, "readiness": Ready(),  # type: ignore[arg-type]
                          "to": Owner.CELERY, "now": utc("2026-03-02T10:17:30Z"),
                          "margin": MARGIN, **kw})
    assert isinstance(result, Refusal), result
    return result


def test_boundary_is_the_first_slot_strictly_after_now_plus_margin() -> None:
    assert plan().boundary == utc("2026-03-02T11:00:00Z")
    # a slot inside the margin is never the boundary: it may already be running
    assert plan(now=utc("2026-03-02T10:58:30Z")).boundary == utc("2026-03-02T12:00:00Z")
    # exactly now + margin is not "strictly after"
    assert plan(now=utc("2026-03-02T10:58:00Z")).boundary == utc("2026-03-02T12:00:00Z")
    assert plan(now=utc("2026-03-02T10:57:59Z")).boundary == utc("2026-03-02T11:00:00Z")


def test_boundary_on_a_spring_forward_day_is_the_real_next_firing() -> None:
    # vixie 02:30 daily in New York: on 2026-03-08 02:30 does not exist; Debian cron runs it
    # at 03:00 EDT (07:00Z) right after the jump
    spec = make_spec("30 2 * * *", tz="America/New_York")
    p = plan(spec=spec, now=utc("2026-03-08T05:00:00Z"))
    assert p.boundary == utc("2026-03-08T07:00:00Z")
    assert p.local_boundary().isoformat() == "2026-03-08T03:00:00-04:00"


def test_boundary_on_a_fall_back_day_and_quartz_dialect() -> None:
    # Quartz 2.3.2 fires 01:30 once on the fall-back day: the second (EST) occurrence
    spec = make_spec("0 30 1 * * ?", dialect="quartz", tz="America/New_York")
    p = plan(spec=spec, now=utc("2026-11-01T04:00:00Z"))
    assert p.boundary == utc("2026-11-01T06:30:00Z")
    assert p.local_boundary().isoformat() == "2026-11-01T01:30:00-05:00"


def test_at_must_be_a_future_slot_of_the_schedule_beyond_the_margin() -> None:
    assert plan(at=utc("2026-03-02T15:00:00Z")).boundary == utc("2026-03-02T15:00:00Z")
    r = refusal(at=utc("2026-03-02T15:30:00Z"))
    assert r.kind is RefusalKind.NOT_A_SLOT and "16:00:00" in r.message
    assert refusal(at=utc("2026-03-02T10:00:00Z")).kind is RefusalKind.TOO_SOON
    assert refusal(now=utc("2026-03-02T10:59:00Z"),
                   at=utc("2026-03-02T11:00:00Z")).kind is RefusalKind.TOO_SOON


def test_refusals_not_ready_unmapped_mismatch_already_owned() -> None:
    assert refusal(readiness=NOT_READY).kind is RefusalKind.NOT_READY
    assert refusal(spec=make_spec(mapped=False)).kind is RefusalKind.UNMAPPED
    assert refusal(spec=make_spec(mapped=False), force=True,
                   reason="urgent").kind is RefusalKind.UNMAPPED
    r = refusal(mismatches=(utc("2026-03-02T09:00:00Z"),))
    assert r.kind is RefusalKind.MISMATCH and "09:00:00" in r.message
    assert refusal(mismatches=(utc("2026-03-02T09:00:00Z"),), force=True,
                   reason="x").kind is RefusalKind.MISMATCH
    celery = [*LEGACY, event(Owner.CELERY, "2026-03-01T00:00:00Z")]
    assert refusal(history=celery).kind is RefusalKind.ALREADY_OWNED
    # a flip already pending (from the boundary on) counts as owned
    pending = [*LEGACY, event(Owner.CELERY, "2026-03-02T11:00:00Z")]
    assert refusal(history=pending).kind is RefusalKind.ALREADY_OWNED


def test_forced_flip_needs_a_reason_and_is_marked_forced() -> None:
    assert refusal(readiness=NOT_READY, force=True).kind is RefusalKind.NO_REASON
    assert refusal(readiness=NOT_READY, force=True, reason="  ").kind is RefusalKind.NO_REASON
    p = plan(readiness=NOT_READY, force=True, reason="vendor deadline")
    assert p.forced and p.reason == "vendor deadline" and p.waived == NOT_READY.reasons


def test_rollback_to_legacy_is_never_gated_by_readiness() -> None:
    celery = [*LEGACY, event(Owner.CELERY, "2026-03-01T00:00:00Z")]
    p = plan(history=celery, to=Owner.LEGACY, readiness=NOT_READY,
             mismatches=(utc("2026-03-02T09:00:00Z"),), spec=make_spec(mapped=False))
    assert p.previous is Owner.CELERY and p.boundary == utc("2026-03-02T11:00:00Z")
    assert p.effects() == ("celery: stands down from 2026-03-02T11:00:00+00:00; legacy: runs "
                           "2026-03-02T11:00:00+00:00 authoritatively")
    assert refusal(to=Owner.LEGACY).kind is RefusalKind.ALREADY_OWNED


def test_effects_and_json_name_both_zones() -> None:
    p = plan(spec=make_spec(tz="Europe/Berlin"))
    assert p.effects().startswith("legacy: stands down from 2026-03-02T11:00:00+00:00; celery:")
    j = p.to_json()
    assert j["boundary"] == "2026-03-02T12:00:00+01:00"
    assert j["boundary_utc"] == "2026-03-02T11:00:00+00:00"


def test_apply_many_flips_in_one_transaction_and_roll_back(db_url: str) -> None:
    registry = Registry(db_url)
    specs = [make_spec(job_id=f"j{i}") for i in range(3)]
    with registry.session() as s:
        for spec in specs:
            JobRepo(s).upsert(spec)
            AuthorityRepo(s).append(spec.id, Owner.LEGACY, effective_slot=None, actor="import",
                                    reason=None)
    now = utc("2026-03-02T10:17:30Z")
    plans = [plan(spec=spec) for spec in specs]
    with pytest.raises(RuntimeError), registry.session() as s:
        apply_flips(s, plans, "alice")
        raise RuntimeError("a failure after the writes")  # all of it rolls back
    with registry.session() as s:
        assert all(len(h) == 1 for h in AuthorityRepo(s).histories().values())
    with registry.session() as s:
        apply_flips(s, plans, "alice")
    with registry.session() as s:
        histories = AuthorityRepo(s).histories()
        assert all(owner_at(h, utc("2026-03-02T11:00:00Z")) is Owner.CELERY
                   for h in histories.values())
        assert owner_at(histories["j0"], utc("2026-03-02T10:00:00Z")) is Owner.LEGACY
        entries = AuditRepo(s).query()
    assert [(e.action, e.job_id, e.actor) for e in entries] == [
        ("flip", f"j{i}", "alice") for i in range(3)]
    assert entries[0].after == {"owner": "celery", "effective_slot": "2026-03-02T11:00:00+00:00",
                                "forced": False, "waived": []}
    back = plan_flip(specs[0], histories["j0"], NOT_READY, Owner.LEGACY,
                     now + timedelta(hours=2), MARGIN)
    assert isinstance(back, FlipPlan) and back.boundary == utc("2026-03-02T13:00:00Z")
    registry.dispose()
