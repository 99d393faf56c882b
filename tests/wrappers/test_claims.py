"""Slot claims: one winner under contention, leases, takeover, retries (SQLite + PostgreSQL)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from bridge.core.claims import AlreadyClaimed, ClaimState, Holder, LeaseTerms, RetryGrant
from bridge.store.db import Registry
from legacy_wrappers.claims import Claims, Lease

SLOT = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
T0 = datetime(2026, 3, 8, 7, 0, 1, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def registry(db_url: str):  # type: ignore[no-untyped-def]
    reg = Registry(db_url)
    yield reg
    reg.dispose()


def _race(claims: Claims, count: int, tag: str, barrier: threading.Barrier | None = None
          ) -> list[Lease | AlreadyClaimed]:
    barrier = barrier or threading.Barrier(count)
    results: list[Lease | AlreadyClaimed] = []
    lock = threading.Lock()

    def claimant(i: int) -> None:
        barrier.wait(timeout=60)
        result = claims.claim("job-a", SLOT, Holder(f"{tag}-{i}", "test"))
        with lock:
            results.append(result)

    threads = [threading.Thread(target=claimant, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def _summary(results: list[Lease | AlreadyClaimed]) -> tuple[list[str], list[str]]:
    winners = [r.info.holder for r in results if isinstance(r, Lease)]
    losers = [r.holder for r in results if isinstance(r, AlreadyClaimed)]
    return winners, losers


def test_fifty_concurrent_threads_one_wins_the_others_see_already_claimed(
    registry: Registry,
) -> None:
    results = _race(Claims(registry), 50, "thread")
    winners, losers = _summary(results)
    assert len(results) == 50
    assert len(winners) == 1
    assert len(losers) == 49 and set(losers) == {winners[0]}
    assert all(r.state is ClaimState.RUNNING and r.live
               for r in results if isinstance(r, AlreadyClaimed))


def _process_claimant(url: str, proc: int, threads: int, barrier, queue) -> None:  # type: ignore[no-untyped-def]
    reg = Registry(url, check_schema=False)
    claims = Claims(reg)
    local = threading.Barrier(threads, action=lambda: barrier.wait(timeout=120))
    out: list[tuple[str, str]] = []

    def claimant(i: int) -> None:
        local.wait(timeout=120)
        r = claims.claim("job-a", SLOT, Holder(f"p{proc}-t{i}", "spawn"))
        out.append(("won", r.info.holder) if isinstance(r, Lease) else ("lost", r.holder))

    pool = [threading.Thread(target=claimant, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    reg.dispose()
    queue.put(out)


@pytest.mark.integration
def test_fifty_claimants_in_spawned_processes_and_threads_one_wins(db_url: str) -> None:
    """10 spawned processes x 5 threads, released together by a cross-process barrier."""
    ctx = multiprocessing.get_context("spawn")
    procs, threads = 10, 5
    barrier = ctx.Barrier(procs)
    queue = ctx.Queue()
    children = [ctx.Process(target=_process_claimant, args=(db_url, p, threads, barrier, queue))
                for p in range(procs)]
    for child in children:
        child.start()
    results = [item for _ in children for item in queue.get(timeout=180)]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    winners = [h for kind, h in results if kind == "won"]
    losers = [h for kind, h in results if kind == "lost"]
    assert len(results) == 50
    assert len(winners) == 1
    assert len(losers) == 49 and set(losers) == set(winners)


def test_live_lease_is_never_taken_over(registry: Registry) -> None:
    clock = FakeClock()
    claims = Claims(registry, clock=clock)
    first = claims.claim("job-a", SLOT, Holder("one"))
    assert isinstance(first, Lease)
    for offset in (0, 10, 29.999, 30):  # expires_at == now is still alive
        clock.now = T0 + timedelta(seconds=offset)
        second = claims.claim("job-a", SLOT, Holder("two"))
        assert isinstance(second, AlreadyClaimed)
        assert second.live and second.holder == "one@"
        assert second.reason == "already claimed by one@"


def test_expired_lease_is_taken_over_and_the_old_holder_is_fenced_off(registry: Registry) -> None:
    clock = FakeClock()
    claims = Claims(registry, clock=clock)
    first = claims.claim("job-a", SLOT, Holder("one", "host-a:1"))
    assert isinstance(first, Lease)
    clock.advance(31)
    second = claims.claim("job-a", SLOT, Holder("two", "host-b:2"))
    assert isinstance(second, Lease)
    assert second.attempts == 2 and second.info.holder == "two@host-b:2"
    assert first.renew() is False and first.lost.is_set()
    assert first.complete(ClaimState.SUCCEEDED) is False
    assert second.complete(ClaimState.SUCCEEDED) is True
    stored = claims.get("job-a", SLOT)
    assert stored is not None and stored.state is ClaimState.SUCCEEDED
    assert stored.holder == "two@host-b:2"


def test_concurrent_takeovers_of_one_expired_lease_have_one_winner(registry: Registry) -> None:
    clock = FakeClock()
    claims = Claims(registry, clock=clock)
    assert isinstance(claims.claim("job-a", SLOT, Holder("crashed")), Lease)
    clock.advance(60)
    winners, losers = _summary(_race(claims, 20, "successor"))
    assert len(winners) == 1 and len(losers) == 19
    stored = claims.get("job-a", SLOT)
    assert stored is not None and stored.attempts == 2


@pytest.mark.integration  # waits out real leases (~5 s)
def test_heartbeat_renews_the_lease_while_the_run_lasts(registry: Registry) -> None:
    terms = LeaseTerms(duration=timedelta(seconds=1.5), renew_every=timedelta(seconds=0.3))
    claims = Claims(registry, terms=terms)
    lease = claims.claim("job-a", SLOT, Holder("runner"))
    assert isinstance(lease, Lease)
    first_expiry = lease.expires_at
    with lease:
        time.sleep(3.0)  # twice the lease duration
        other = claims.claim("job-a", SLOT, Holder("other"))
        assert isinstance(other, AlreadyClaimed) and other.live
        assert lease.expires_at > first_expiry + timedelta(seconds=1)
        assert not lease.lost.is_set()
    # the heartbeat stopped without a verdict: the lease runs out and may be taken over
    time.sleep(1.7)
    successor = claims.claim("job-a", SLOT, Holder("other"))
    assert isinstance(successor, Lease) and successor.attempts == 2
    assert lease.complete(ClaimState.SUCCEEDED) is False


def test_exception_inside_the_lease_marks_the_claim_failed(registry: Registry) -> None:
    claims = Claims(registry)
    lease = claims.claim("job-a", SLOT, Holder("runner"))
    assert isinstance(lease, Lease)
    with pytest.raises(RuntimeError), lease:
        raise RuntimeError("boom")
    stored = claims.get("job-a", SLOT)
    assert stored is not None and stored.state is ClaimState.FAILED


def test_failed_claim_is_reclaimed_only_by_a_retry_of_its_lineage_below_max(
    registry: Registry,
) -> None:
    claims = Claims(registry)
    lease = claims.claim("job-a", SLOT, Holder("task-1", "w1"))
    assert isinstance(lease, Lease) and lease.complete(ClaimState.FAILED)
    grant = RetryGrant(max_attempts=2)
    # a manual re-send (new lineage) and a redelivery without a grant are refused
    assert isinstance(claims.claim("job-a", SLOT, Holder("task-2", "w1"), retry=grant),
                      AlreadyClaimed)
    refused = claims.claim("job-a", SLOT, Holder("task-1", "w2"))
    assert isinstance(refused, AlreadyClaimed) and refused.state is ClaimState.FAILED
    retry = claims.claim("job-a", SLOT, Holder("task-1", "w2"), retry=grant)
    assert isinstance(retry, Lease) and retry.attempts == 2
    assert retry.complete(ClaimState.INTERRUPTED)
    exhausted = claims.claim("job-a", SLOT, Holder("task-1", "w3"), retry=grant)
    assert isinstance(exhausted, AlreadyClaimed) and exhausted.state is ClaimState.INTERRUPTED
    more = claims.claim("job-a", SLOT, Holder("task-1", "w3"), retry=RetryGrant(3))
    assert isinstance(more, Lease) and more.attempts == 3


def test_succeeded_and_skipped_claims_are_final(registry: Registry) -> None:
    clock = FakeClock()
    claims = Claims(registry, clock=clock)
    for state, slot in ((ClaimState.SUCCEEDED, SLOT), (ClaimState.SKIPPED, SLOT + timedelta(1))):
        lease = claims.claim("job-a", slot, Holder("t"))
        assert isinstance(lease, Lease) and lease.complete(state)
        clock.advance(3600)
        again = claims.claim("job-a", slot, Holder("t"), retry=RetryGrant(10))
        assert isinstance(again, AlreadyClaimed) and again.state is state and not again.live


def test_abandoned_claims_are_taken_over_and_live_earlier_slots_are_found(
    registry: Registry,
) -> None:
    clock = FakeClock()
    claims = Claims(registry, clock=clock)
    earlier, later = SLOT, SLOT + timedelta(minutes=1)
    assert isinstance(claims.claim("job-a", earlier, Holder("a")), Lease)
    assert claims.live_before("job-a", later) is not None
    assert claims.live_before("job-a", earlier) is None
    clock.advance(31)
    assert claims.live_before("job-a", later) is None
    assert claims.abandon_expired() == 1
    stored = claims.get("job-a", earlier)
    assert stored is not None and stored.state is ClaimState.ABANDONED
    assert isinstance(claims.claim("job-a", earlier, Holder("b")), Lease)


def test_takeovers_stop_at_the_limit(registry: Registry) -> None:
    clock = FakeClock()
    claims = Claims(registry, clock=clock, takeover_limit=2)
    assert isinstance(claims.claim("job-a", SLOT, Holder("a")), Lease)
    clock.advance(31)
    assert isinstance(claims.claim("job-a", SLOT, Holder("b")), Lease)
    clock.advance(31)
    final = claims.claim("job-a", SLOT, Holder("c"))
    assert isinstance(final, AlreadyClaimed) and not final.live
