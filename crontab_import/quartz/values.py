"""Values of a Quartz document read the way Quartz's Java code reads them.

``xs_datetime`` (``DatatypeConverter.parseDateTime`` with the JVM's default zone for local
times), ``java_int`` (``Integer.parseInt``/``Long.parseLong``) and ``collapsed`` (the schema's
white-space collapsing).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

_DATETIME_RE = re.compile(
    r"(-?)([0-9]{4,})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?"
)
INT_RE = re.compile(r"[+-]?[0-9]+")


def collapsed(text: str) -> str:
    return " ".join(part for part in re.split(r"[ \t\n\r]+", text) if part)


class OutOfRange(ValueError):
    """A valid xs:dateTime Python's datetime cannot hold."""


def xs_datetime(value: str, default_zone: ZoneInfo | timezone) -> datetime:
    """An ``xs:dateTime`` as Java's DatatypeConverter reads it (local times: default zone), in
    UTC; ValueError when it is not one (or not representable)."""
    m = _DATETIME_RE.fullmatch(value)
    if not m:
        raise ValueError("expected YYYY-MM-DDThh:mm:ss[.fff][Z|+hh:mm]")
    sign, year_s, mo, d, h, mi, s, frac, tz = m.groups()
    if sign or year_s == "0000" or (len(year_s) > 4 and year_s[0] == "0"):
        raise ValueError(f"year {sign}{year_s} is not an XML Schema year")
    if int(year_s) > 9999:
        raise OutOfRange("outside the years 0001..9999 (UTC) the bridge supports")
    micro = int((frac[1:] + "000")[:3]) * 1000 if frac else 0
    midnight = (h, mi, s) == ("24", "00", "00") and not micro
    try:
        wall = datetime(
            int(year_s), int(mo), int(d), 0 if midnight else int(h), int(mi), int(s), micro
        ) + timedelta(days=midnight)
        local = (
            _java_local(wall, default_zone) if tz is None else wall.replace(tzinfo=_offset_zone(tz))
        )
        return local.astimezone(UTC)
    except OverflowError:
        raise OutOfRange("outside the years 0001..9999 (UTC) the bridge supports") from None


def _offset_zone(tz: str) -> timezone:
    if tz == "Z":
        return UTC
    hours, minutes = int(tz[1:3]), int(tz[4:6])
    if minutes > 59 or hours * 60 + minutes > 14 * 60:
        raise ValueError(f"offset {tz} is outside -14:00..+14:00")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if tz[0] == "-" else delta)


def _java_local(wall: datetime, zone: ZoneInfo | timezone) -> datetime:
    """A wall time of ``zone`` as Java's GregorianCalendar resolves it.

    Ambiguous (autumn) times are the later, standard-time instant; times in a spring gap are
    read with the offset before the gap (so 02:30 becomes 03:30 on a 1-hour jump).
    """
    later = wall.replace(tzinfo=zone, fold=1)
    if later.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return later
    return wall.replace(tzinfo=zone, fold=0)


def java_int(text: str, bits: int) -> int:
    """``Integer.parseInt``/``Long.parseLong``: ASCII digits, optional sign, bounded."""
    if not INT_RE.fullmatch(text):
        raise ValueError(f"'{text}' is not a number")
    value = int(text)
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise ValueError(f"'{text}' does not fit a Java {'int' if bits == 32 else 'long'}")
    return value
