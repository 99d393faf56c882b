"""A shadow report as JSON (pure): ``bridge shadow report --format json``.

JSON document (``--format json``; field names are stable, new fields may be added)::

    schema            "cron-bridge.shadow-report/1"
    generated_at      ISO 8601 UTC instant the report was made ("now")
    window            {since, until}: slots s with since < s <= until (ISO 8601 UTC)
    ok                false when any job has an unresolved mismatch (the CLI then exits 1)
    totals            {jobs, expected_slots, compared, unresolved, jobs_with_unresolved,
                       ready, counts}
    hosts             {host: the same totals over that host's jobs}; jobs bound to no host
                       (Quartz, manual) are under ""
    jobs[]            one object per job, ordered by job id:
      job_id          the registry id
      host            the job's host (bridge.core.hosts), null when bound to none
      dialect         vixie | cronie | quartz | quartz-simple | calendar-interval | interval
      schedule        the expression (or "every N unit" for interval dialects)
      timezone        IANA zone of the schedule
      mapped          false for a Quartz job class without a mapping (never executed by Celery)
      shadow_mode     observe | dry-run | execute
      owner           legacy | celery: who owns the window's last instant (authority history)
      expected_slots  slots the legacy schedule designates in the window
      compared        verdicts: expected slots + unexpected firings
      counts          {match, missing_celery, missing_legacy, late, duplicate, outcome_mismatch,
                       pending, unexpected_slot, before_import, lost, ignored}: an ignored slot
                       counts only under "ignored" (its real verdict stays in mismatches[]);
                       before_import (a firing at or before the job's import) is not a
                       finding, lost (a run whose outcome is unknown) is
      ignored_rules   {rule text: slots it explained}
      unresolved      slots whose verdict is not match/pending/before_import and not ignored
      first_slot, last_slot   ISO 8601 or null
      readiness       {ready, basis ("outcome" | "timing-only"), required, evidence (the slots
                       considered), reasons (why not ready)}
      last_mismatch   the newest unresolved slot verdict, or null
      mismatches      up to 50 newest slot verdicts other than match/pending/before_import
                      (ignored included)

    slot verdict      {slot, verdict, detail, basis ("outcome" | "timing" | "none"),
                       ignored_by (rule text or null), mismatched (fields), legacy, celery}
    legacy / celery   null or an observation: {path, role, status, fired_at, started_at,
                       finished_at, lag_seconds, exit_status, task_state, attempts,
                       output_digest, output_sample, host, error, record_key}
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bridge.core.runs import RunRecord
from shadow.compare import SlotVerdict
from shadow.readiness import Readiness
from shadow.report_model import JobReport, Report, schedule_text

SCHEMA = "cron-bridge.shadow-report/1"


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def observation_json(obs: RunRecord | None, slot: datetime) -> dict[str, Any] | None:
    if obs is None:
        return None
    fire = obs.fire_time
    return {
        "path": obs.path.value, "role": obs.role.value, "status": obs.status.value,
        "fired_at": _iso(obs.fired_at), "started_at": _iso(obs.started_at),
        "finished_at": _iso(obs.finished_at),
        "lag_seconds": None if fire is None else (fire - slot).total_seconds(),
        "exit_status": obs.exit_status, "task_state": obs.task_state, "attempts": obs.attempts,
        "output_digest": obs.output_digest, "output_sample": obs.output_sample,
        "host": obs.host, "error": obs.error, "record_key": obs.record_key,
    }


def verdict_json(v: SlotVerdict) -> dict[str, Any]:
    return {
        "slot": _iso(v.slot), "verdict": v.verdict.value, "detail": v.detail,
        "basis": v.basis.value, "ignored_by": v.ignored_by, "mismatched": list(v.mismatched),
        "legacy": observation_json(v.legacy, v.slot),
        "celery": observation_json(v.celery, v.slot),
    }


def readiness_json(r: Readiness) -> dict[str, Any]:
    return {"ready": r.ready, "basis": r.basis.value, "required": r.required,
            "evidence": [_iso(s) for s in r.evidence], "reasons": list(r.reasons)}


def job_json(j: JobReport) -> dict[str, Any]:
    s, spec = j.summary, j.spec
    return {
        "job_id": spec.id, "host": spec.host, "dialect": spec.schedule.dialect.value,
        "schedule": schedule_text(spec.schedule), "timezone": spec.schedule.timezone,
        "mapped": spec.mapped, "shadow_mode": spec.policies.shadow_mode.value,
        "owner": j.owner.value, "expected_slots": j.expected, "compared": s.compared,
        "counts": dict(s.counts), "ignored_rules": dict(s.ignored_rules),
        "unresolved": s.unresolved, "first_slot": _iso(s.first_slot),
        "last_slot": _iso(s.last_slot), "readiness": readiness_json(j.readiness),
        "last_mismatch": verdict_json(s.last_mismatch) if s.last_mismatch else None,
        "mismatches": [verdict_json(v) for v in j.mismatches],
    }


def to_json(report: Report) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "generated_at": _iso(report.generated_at),
        "window": {"since": _iso(report.since), "until": _iso(report.until)},
        "ok": report.ok,
        "totals": report.totals(),
        "hosts": report.by_host(),
        "jobs": [job_json(j) for j in report.jobs],
    }
