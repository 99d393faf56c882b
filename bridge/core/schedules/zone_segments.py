"""A zone's UTC timeline cut into segments of one UTC offset (:class:`Segment`), walked forward
or backward from an instant: how the cron evaluator sees DST transitions (and how the calendar
interval evaluator finds a year's gaps)."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
MIN_YEAR, MAX_YEAR = 2, 9997



@dataclass(frozen=True)
class Segment:
    """``[start, end)`` in naive UTC with one UTC ``offset``; ``prev_offset`` holds just before."""

    start: datetime
    end: datetime
    offset: timedelta
    prev_offset: timedelta


def offset_at(zone: ZoneInfo, u: datetime) -> timedelta:
    off = u.replace(tzinfo=UTC).astimezone(zone).utcoffset()
    assert off is not None
    return off


def transition_in(zone: ZoneInfo, a: datetime, b: datetime) -> datetime:
    """The first instant of ``(a, b]`` with ``b``'s offset (offsets at a and b differ)."""
    target = offset_at(zone, b)
    while b - a > SECOND:
        mid = a + timedelta(seconds=(b - a).total_seconds() // 2)
        if offset_at(zone, mid) == target:
            b = mid
        else:
            a = mid
    return b


@lru_cache(maxsize=2048)
def year_segments(zone_key: str, year: int) -> tuple[Segment, ...]:
    """The segments of UTC year ``year``: cut at every offset change and at the year's bounds."""
    zone = ZoneInfo(zone_key)
    lo, hi = datetime(year, 1, 1), datetime(year + 1, 1, 1)
    step = DAY  # offsets change at most a few times a year; two changes within a day are not seen
    cuts: list[tuple[datetime, timedelta]] = [(lo, offset_at(zone, lo))]
    t, off = lo, cuts[0][1]
    while t < hi:
        nxt = min(t + step, hi)
        nxt_off = offset_at(zone, nxt)
        if nxt_off != off:
            cut = transition_in(zone, t, nxt)
            if cut < hi:
                cuts.append((cut, nxt_off))
        t, off = nxt, nxt_off
    segments = []
    prev = offset_at(zone, lo - SECOND)
    for i, (start, offset) in enumerate(cuts):
        end = cuts[i + 1][0] if i + 1 < len(cuts) else hi
        segments.append(Segment(start, end, offset, prev))
        prev = offset
    return tuple(segments)


@lru_cache(maxsize=2048)
def segment_starts(zone_key: str, year: int) -> tuple[datetime, ...]:
    return tuple(s.start for s in year_segments(zone_key, year))


def segments_forward(zone_key: str, u: datetime) -> Iterator[Segment]:
    """Segments in time order, from the one containing ``u``."""
    year = u.year
    i = bisect.bisect_right(segment_starts(zone_key, year), u) - 1
    while year <= MAX_YEAR:
        yield from year_segments(zone_key, year)[i:]
        year, i = year + 1, 0


def segments_backward(zone_key: str, u: datetime) -> Iterator[Segment]:
    """Segments in reverse time order, from the one containing ``u``."""
    year = u.year
    stop = bisect.bisect_right(segment_starts(zone_key, year), u)
    yield from reversed(year_segments(zone_key, year)[:stop])
    for earlier in range(year - 1, MIN_YEAR - 1, -1):
        yield from reversed(year_segments(zone_key, earlier))


@lru_cache(maxsize=4096)
def gap_days(zone_key: str, year: int) -> frozenset[tuple[int, int]]:
    """(month, day) of the local dates of ``year`` on which the wall clock skips some time."""
    days: set[tuple[int, int]] = set()
    for y in (year - 1, year, year + 1):
        for seg in year_segments(zone_key, y):
            if seg.offset > seg.prev_offset:
                first = (seg.start + seg.prev_offset).date()
                last = (seg.start + seg.offset - timedelta(microseconds=1)).date()
                d = first
                while d <= last:
                    if d.year == year:
                        days.add((d.month, d.day))
                    d += timedelta(days=1)
    return frozenset(days)
