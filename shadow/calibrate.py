"""Noise calibration (Diffy's idea): how much does the legacy path differ from *itself*?

Before blaming Celery for a difference, measure what varies between two runs of the old path
alone. :func:`calibrate` (pure) takes a job's legacy executions in slot order, compares each
with the next one, and reports:

* **exit status noise**: how many consecutive pairs differ in exit status (or, when a run has
  none, in succeeded-vs-not), and which values occur;
* **output noise**: how many pairs differ in their output sample once the job's current
  ``clean`` regexes are applied;
* **proposed clean regexes**: detectors for the usual self-varying tokens (ISO timestamps,
  ``date(1)`` / syslog timestamps, UUIDs, clock times, dates, epoch numbers, durations, PIDs,
  hex ids, temp paths) tried from the most to the least specific; a detector is proposed when
  adding it to the clean list reduces the characters that differ between the pairs' samples.
  ``proposed_clean`` is the current clean list plus the proposals: paste it into the job's
  ``compare.clean``. A broad "any number" detector is reported separately (``broad``) and never
  added, since it would also hide real differences (row counts);
* **mismatches within the noise**: for each current ``outcome_mismatch`` verdict, whether every
  mismatching field is explained by the measured noise: an exit status the legacy path itself
  produced while its exit status varies, or output samples that become equal under
  ``proposed_clean``.

Samples are bounded (4 KiB head and tail, :data:`bridge.core.runs.SAMPLE_LIMIT`), so output noise
is measured on what the samples show.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from itertools import groupby, pairwise

from bridge.core.runs import Path, RunRecord, Status, clean_text
from shadow.compare import SlotVerdict, Verdict, fold_executions

MAX_PAIRS = 50

DETECTORS: tuple[tuple[str, str], ...] = (
    ("iso-timestamp",
     r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"),
    ("ctime-timestamp",
     r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),? +)?(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov"
     r"|Dec) +\d{1,2},? +\d{2}:\d{2}:\d{2}(?: +[A-Z]{2,5})?(?: +\d{4})?"),
    ("uuid", r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
    ("clock-time", r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"),
    ("date", r"\b\d{4}-\d{2}-\d{2}\b"),
    ("epoch", r"\b1\d{9}(?:\d{3}|\d{6})?(?:\.\d+)?\b"),
    ("duration",
     r"\b(?:\d+h)?(?:\d+m)?\d+(?:\.\d+)? ?(?:ns|us|µs|ms|s|secs?|seconds?|mins?|minutes?)\b"),
    ("pid", r"(?i)\bpid[ =:#]*\d+|\[\d+\]"),
    ("hex-id", r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,64}\b"),
    ("temp-path", r"/tmp/[\w.+-]+"),
)
BROAD = ("number", r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class FieldNoise:
    field: str  # "exit_status" | "output"
    pairs: int  # consecutive pairs where both runs had the field
    differing: int
    values: tuple[str, ...]  # exit statuses seen (exit_status only)

    @property
    def rate(self) -> float:
        return self.differing / self.pairs if self.pairs else 0.0


@dataclass(frozen=True)
class Proposal:
    name: str
    pattern: str
    example: str  # a text it matched in a differing sample
    broad: bool = False


@dataclass(frozen=True)
class MismatchNoise:
    slot: str  # ISO 8601
    fields: tuple[str, ...]
    within_noise: bool
    why: str


@dataclass(frozen=True)
class Calibration:
    job_id: str
    runs: int  # legacy executions considered (one per slot)
    exit_status: FieldNoise
    output: FieldNoise  # with the job's current clean regexes
    output_differing_after: int  # pairs still differing under proposed_clean
    proposals: tuple[Proposal, ...]
    proposed_clean: tuple[str, ...]
    residual: tuple[tuple[str, str], ...]  # (a, b) differing lines left, a few examples
    mismatches: tuple[MismatchNoise, ...]


def legacy_runs(observations: Sequence[RunRecord]) -> list[RunRecord]:
    """One finished legacy execution per slot (the final attempt), in slot order."""
    runs = [o for o in observations if o.path is Path.LEGACY and o.executed
            and o.status is not Status.RUNNING]
    runs.sort(key=lambda o: o.slot)
    out = []
    for _, group in groupby(runs, key=lambda o: o.slot):
        folded = fold_executions(list(group))
        if folded:
            out.append(folded[-1])
    return out


def _exit_value(o: RunRecord) -> str:
    return str(o.exit_status) if o.exit_status is not None else o.status.value


def exit_noise(pairs: Sequence[tuple[RunRecord, RunRecord]]) -> FieldNoise:
    differing = sum(1 for a, b in pairs if _exit_value(a) != _exit_value(b))
    values = sorted({_exit_value(o) for pair in pairs for o in pair})
    return FieldNoise("exit_status", len(pairs), differing, tuple(values))


def _diff_cost(a: str, b: str) -> int:
    """Characters that differ between two texts (line diff, then character diff per block)."""
    if a == b:
        return 0
    la, lb = a.splitlines(), b.splitlines()
    cost = 0
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, la, lb, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        x, y = "\n".join(la[i1:i2]), "\n".join(lb[j1:j2])
        blocks = SequenceMatcher(None, x, y, autojunk=False).get_matching_blocks()
        same = sum(m.size for m in blocks)
        cost += max(len(x), len(y)) - same
    return cost


def _cost(samples: Sequence[tuple[str, str]], clean: Sequence[str]) -> int:
    return sum(_diff_cost(clean_text(a, clean), clean_text(b, clean)) for a, b in samples)


def _example(pattern: str, samples: Sequence[tuple[str, str]]) -> str:
    for a, b in samples:
        for text in (a, b):
            m = re.search(pattern, text)
            if m:
                return m.group(0)
    return ""


def propose(samples: Sequence[tuple[str, str]], clean: Sequence[str]) -> list[Proposal]:
    """Detectors that reduce the differences between pairs, most specific first (greedy)."""
    chosen: list[str] = list(clean)
    proposals = []
    cost = _cost(samples, chosen)
    for name, pattern in DETECTORS:
        if cost == 0:
            break
        trial = _cost(samples, [*chosen, pattern])
        if trial < cost:
            chosen.append(pattern)
            proposals.append(Proposal(name, pattern, _example(pattern, samples)))
            cost = trial
    if cost and _cost(samples, [*chosen, BROAD[1]]) < cost:
        proposals.append(Proposal(BROAD[0], BROAD[1], _example(BROAD[1], samples), broad=True))
    return proposals


def _residual(samples: Sequence[tuple[str, str]], clean: Sequence[str],
              limit: int = 3) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for a, b in samples:
        la, lb = clean_text(a, clean).splitlines(), clean_text(b, clean).splitlines()
        for tag, i1, i2, j1, j2 in SequenceMatcher(None, la, lb, autojunk=False).get_opcodes():
            if tag != "equal" and len(out) < limit:
                out.append(("\n".join(la[i1:i2]), "\n".join(lb[j1:j2])))
    return out


def _output_pairs(pairs: Sequence[tuple[RunRecord, RunRecord]]) -> list[tuple[str, str]]:
    return [(a.output_sample, b.output_sample) for a, b in pairs
            if a.output_sample is not None and b.output_sample is not None]


def mismatch_noise(v: SlotVerdict, exits: FieldNoise, clean: Sequence[str]) -> MismatchNoise:
    """Is every mismatching field of ``v`` within the legacy path's own noise?"""
    reasons, within = [], True
    for name in v.mismatched:
        if name == "exit_status":
            value = _exit_value(v.celery) if v.celery else None
            ok = exits.differing > 0 and value in exits.values
            reasons.append(f"exit {value} {'is' if ok else 'is not'} among legacy's own "
                           f"varying values {list(exits.values)}")
        else:
            a = v.legacy.output_sample if v.legacy else None
            b = v.celery.output_sample if v.celery else None
            ok = a is not None and b is not None and clean_text(a, clean) == clean_text(b, clean)
            reasons.append("outputs equal under the proposed clean" if ok
                           else "outputs differ beyond the measured noise")
        within = within and ok
    return MismatchNoise(v.slot.isoformat(), v.mismatched, within, "; ".join(reasons))


def calibrate(
    job_id: str,
    observations: Sequence[RunRecord],
    clean: Sequence[str] = (),
    mismatches: Sequence[SlotVerdict] = (),
    *,
    max_pairs: int = MAX_PAIRS,
) -> Calibration:
    """Measure legacy-vs-legacy noise over the newest ``max_pairs`` consecutive run pairs."""
    runs = legacy_runs(observations)
    pairs = list(pairwise(runs))[-max_pairs:]
    exits = exit_noise(pairs)
    samples = _output_pairs(pairs)
    differing = [(a, b) for a, b in samples if clean_text(a, clean) != clean_text(b, clean)]
    proposals = propose(differing, clean)
    proposed = (*clean, *(p.pattern for p in proposals if not p.broad))
    after = [(a, b) for a, b in differing if clean_text(a, proposed) != clean_text(b, proposed)]
    outcome = [v for v in mismatches if v.verdict is Verdict.OUTCOME_MISMATCH]
    return Calibration(
        job_id=job_id,
        runs=len(runs),
        exit_status=exits,
        output=FieldNoise("output", len(samples), len(differing), ()),
        output_differing_after=len(after),
        proposals=tuple(proposals),
        proposed_clean=tuple(proposed),
        residual=tuple(_residual(after, proposed)),
        mismatches=tuple(mismatch_noise(v, exits, proposed) for v in outcome),
    )
