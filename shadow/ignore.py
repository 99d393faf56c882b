"""Ignore rules (``compare.ignore``): grammar in :mod:`shadow.compare`'s docstring."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bridge.core.runs import Path, RunRecord
from shadow.verdicts import RESOLVED, IgnoreRuleError, SlotVerdict, Verdict


@dataclass(frozen=True)
class IgnoreRule:
    text: str
    verdicts: frozenset[Verdict] | None = None
    start: datetime | None = None
    end: datetime | None = None  # inclusive unless end_open
    end_open: bool = False
    fields: frozenset[str] = frozenset()
    sides: tuple[tuple[Path, str], ...] = ()
    max_lag: float | None = None

    def matches(self, v: SlotVerdict) -> bool:
        if v.verdict in RESOLVED:
            return False
        if self.verdicts is not None and v.verdict not in self.verdicts:
            return False
        if self.start is not None and v.slot < self.start:
            return False
        if self.end is not None and (v.slot >= self.end if self.end_open else v.slot > self.end):
            return False
        if self.fields and not self.fields <= set(v.mismatched):
            return False
        if self.max_lag is not None and any(
            abs(lag) > self.max_lag for lag in (v.legacy_lag, v.celery_lag) if lag is not None
        ):
            return False
        return all(_side_value(v.legacy if p is Path.LEGACY else v.celery, want)
                   for p, want in self.sides)


def _side_value(obs: RunRecord | None, want: str) -> bool:
    if obs is None:
        return want == "none"
    return want in (str(obs.exit_status), obs.status.value, obs.role.value)


def _instant(text: str, rule: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as e:
        raise IgnoreRuleError(f"ignore rule '{rule}': bad instant '{text}'") from e
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _slot_range(value: str, rule: str) -> dict[str, object]:
    if ".." not in value:
        start = _instant(value, rule)
        if len(value) == 10:  # a date: that whole UTC day
            return {"start": start, "end": start + timedelta(days=1), "end_open": True}
        return {"start": start, "end": start}
    lo, hi = value.split("..", 1)
    return {"start": _instant(lo, rule) if lo else None, "end": _instant(hi, rule) if hi else None}


FIELD_WORDS = frozenset({"exit_status", "output_digest"})


def parse_ignore(rule: str) -> IgnoreRule:
    """Parse one ignore rule (grammar in the module docstring)."""
    parts: dict[str, object] = {}
    fields_: set[str] = set()
    sides: list[tuple[Path, str]] = []
    for term in rule.split():
        key, sep, value = term.partition("<=") if "<=" in term else term.partition("=")
        if not sep and term in FIELD_WORDS:
            fields_.add(term)
        elif key == "verdict" and value:
            try:
                parts["verdicts"] = frozenset(Verdict(x) for x in value.split(","))
            except ValueError as e:
                raise IgnoreRuleError(f"ignore rule '{rule}': unknown verdict in '{term}'") from e
        elif key == "slots" and value:
            parts.update(_slot_range(value, rule))
        elif key == "field" and value in FIELD_WORDS:
            fields_.add(value)
        elif key in ("legacy", "celery") and value:
            sides.append((Path(key), value))
        elif key == "lag" and sep == "<=" and value.replace(".", "", 1).isdigit():
            parts["max_lag"] = float(value)
        else:
            raise IgnoreRuleError(f"ignore rule '{rule}': unknown term '{term}'")
    if not (parts or fields_ or sides):
        raise IgnoreRuleError(f"ignore rule '{rule}' has no terms")
    return IgnoreRule(text=rule, fields=frozenset(fields_), sides=tuple(sides), **parts)  # type: ignore[arg-type]



def apply_ignore(v: SlotVerdict, rules: Sequence[IgnoreRule]) -> SlotVerdict:
    if v.verdict in RESOLVED:
        return v
    for rule in rules:
        if rule.matches(v):
            return SlotVerdict(v.slot, v.verdict, v.legacy, v.celery, v.detail, rule.text,
                               v.basis, v.mismatched, v.legacy_lag, v.celery_lag)
    return v
