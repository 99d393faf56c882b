"""``bridge legacy``: the legacy side — route crontab lines through the shim, check drift."""

from __future__ import annotations

import os
import shutil
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import typer

from bridge.cli.context import STATE, emit_json, err, out, read_input, write_output
from bridge.core.audit import current_actor
from bridge.core.errors import InputError
from bridge.store.audit import AuditRepo
from bridge.store.repos import JobRepo
from legacy_wrappers.rewrite import DEFAULT_SHIM, check, rewrite

app = typer.Typer(
    help="The legacy side: rewrite crontabs to run through the shim, check them for drift.",
    no_args_is_help=True,
)


@app.command("rewrite")
def rewrite_cmd(
    path: str = typer.Argument(None, help="The crontab file, as it was imported."),
    out_file: str = typer.Option(
        None, "--out", help="Write here (default: stdout). Use the installed path to replace it."
    ),
    shim: str = typer.Option(
        None,
        "--shim",
        help="Absolute path of the bridge-cron-shell shim (default: its fast launcher, written "
        "or refreshed under <prefix>/libexec/cron-bridge/, where pip never rewrites it).",
    ),
    check_only: bool = typer.Option(
        False, "--check", help="Verify an installed file against the registry (exit 1 on drift)."
    ),
    system: bool = typer.Option(
        False,
        "--system",
        help="The file has a user field (cron.d format); otherwise inferred "
        "from the path, as on import.",
    ),
    user: str = typer.Option(None, "--user", help="Owner of a user crontab, as on import."),
    source: str = typer.Option(
        None,
        "--source",
        help="The path the jobs were imported from, when checking a copy installed elsewhere.",
    ),
    inventory: str = typer.Option(
        None, "--inventory", help="A fleet's inventory tree (as imported): rewrite every host's "
        "files into --out OUTDIR/<host>/<path>, with the host's authority files."
    ),
    hosts: list[str] = typer.Option(
        None, "--host", help="With --inventory: only this host (repeat for more)."
    ),
    authority_dir: str = typer.Option(
        None, "--authority-dir", help="With --inventory: the shim's authority directory on the "
        "hosts (default: the authority_dir setting); its files go to OUTDIR/<host>/<dir>."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON report."),
) -> None:
    """Insert the shim's environment lines before each imported job line.

    Every original line stays byte-for-byte unchanged (so `%` stdin and MAILTO behave exactly as
    before); re-running is idempotent. With --check, report drift between the installed file and
    the registry: edited commands or schedules, jobs no longer routed through the shim, jobs
    missing from the file. With --inventory DIR --out OUTDIR: every host of a fleet at once."""
    if inventory is not None:
        if path is not None or check_only or source or system or user or out_file is None:
            raise InputError("--inventory takes --out OUTDIR (and --shim, --host, "
                             "--authority-dir), no path, --check, --source, --system or --user")
        from bridge.cli.fleet_legacy import rewrite_inventory

        rewrite_inventory(inventory, out_file, shim or DEFAULT_SHIM, hosts,
                          authority_dir or STATE.settings.authority_dir, as_json)
        return
    if path is None:
        raise InputError("give the crontab file (or --inventory DIR --out OUTDIR)")
    absolute, text = read_input(path)
    origin = os.path.abspath(source) if source else absolute
    with STATE.registry().session() as s:
        jobs = {j.id: j.spec for j in JobRepo(s).list(source_file=origin)}
    zone = next(iter(jobs.values())).schedule.timezone if jobs else STATE.settings.timezone
    kind: str | None = "cron.d" if system else None
    if jobs and not system and user is None:  # read the file the way it was imported
        from bridge.cli.retire_cmd import imported_as

        kind, user = imported_as(next(iter(jobs.values())))
    if check_only:
        result = check(text, file=origin, registry=jobs, timezone=zone, kind=kind, user=user)
        if as_json:
            emit_json(
                {
                    "file": absolute,
                    "ok": result.ok,
                    "drift": [
                        {"job_id": d.job_id, "line": d.line, "what": d.what} for d in result.drift
                    ],
                }
            )
        else:
            for d in result.drift:
                out.print(f"drift: {d}", markup=False, highlight=False)
            out.print("no drift" if result.ok else f"{len(result.drift)} drift finding(s)")
        raise typer.Exit(0 if result.ok else 1)
    if not jobs:
        raise InputError(
            f"no registry jobs were imported from {origin}",
            hint="run `bridge import crontab` on it first",
        )
    shim_path = shim or _default_shim()
    if not os.path.isabs(shim_path):
        raise InputError(f"--shim must be an absolute path, got '{shim_path}'")
    result_ = rewrite(
        text, file=origin, managed_ids=jobs, timezone=zone, shim=shim_path, kind=kind, user=user
    )
    write_output(result_.text, out_file)
    with STATE.registry().session() as s:
        AuditRepo(s).append(
            "rewrite",
            actor=STATE.actor or current_actor(),
            reason=origin,
            after={"file": out_file or "-", "managed": list(result_.managed)},
        )
    summary = {
        "file": absolute,
        "out": out_file,
        "shim": shim_path,
        "managed": list(result_.managed),
        "unmanaged_lines": list(result_.unmanaged_lines),
    }
    if as_json:
        emit_json(summary)
    elif out_file:
        out.print(f"wrote {out_file}: {len(result_.managed)} job(s) routed through {shim_path}")


def _default_shim() -> str:
    """The shim's fast launcher at :func:`legacy_wrappers.launcher.default_target` (written or
    refreshed now: a path pip never rewrites). When it cannot be written there (a read-only
    prefix), pip's console script next to this bridge (one install's console scripts share a
    directory), else on PATH, else :data:`DEFAULT_SHIM` (as ``--help`` says), with a warning:
    those start slower."""
    from legacy_wrappers import launcher

    try:
        return launcher.ensure()
    except (OSError, ValueError) as e:
        err.print(f"warning: cannot write the shim's fast launcher ({e}); using the console "
                  "script (slower start per cron job)", markup=False, highlight=False)
    bases = [os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv and sys.argv[0] else "",
             os.path.dirname(sys.executable)]
    for base in bases:
        candidate = os.path.join(base, "bridge-cron-shell") if base else ""
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("bridge-cron-shell")
    return os.path.abspath(found) if found else DEFAULT_SHIM


# --- the spool: records the shim wrote while the registry was unreachable ---------------------


def _upload(spool_dir: str, archive: str | None, as_json: bool) -> None:
    from legacy_wrappers.spool_flush import flush

    report = flush(STATE.registry(), spool_dir, archive_dir=archive)
    if as_json:
        emit_json(report.to_json())
    else:
        out.print(
            f"{spool_dir}: {report.files} file(s), {report.uploaded} record(s) uploaded, "
            f"{report.duplicates} already stored, {report.rejected} rejected, "
            f"{len(report.kept_partial)} kept with a partial line, {len(report.busy)} busy",
            markup=False,
            highlight=False,
        )
        for line in report.rejections:
            out.print(f"rejected: {line}", markup=False, highlight=False)
    raise typer.Exit(1 if report.rejected else 0)


@app.command("flush")
def flush_cmd(
    spool: str = typer.Option(
        None, "--spool", help="The spool directory (default: the spool_dir setting)."
    ),
    archive: str = typer.Option(
        None, "--archive", help="Move uploaded files here instead of deleting them."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the flush report as JSON."),
) -> None:
    """Upload the shim's spooled records to the registry, exactly once.

    Complete lines are uploaded idempotently (a re-flush adds nothing), then the file is
    removed; a half-written last line is kept for the next run; invalid lines are moved to
    rejected/ (exit 1). Registry unreachable: exit 3, the spool is left as it was."""
    _upload(spool or STATE.settings.spool_dir, archive, as_json)


@app.command("ingest")
def ingest_cmd(
    cron_spool: str = typer.Option(
        None, "--cron-spool", help="A spool directory written by bridge-cron-shell."
    ),
    quartz_spool: str = typer.Option(
        None,
        "--quartz-spool",
        help="A spool directory written by the Quartz plugin (cronbridge.quartz.BridgePlugin).",
    ),
    archive: str = typer.Option(
        None,
        "--archive",
        help="Move uploaded files here instead of deleting them "
        "(--quartz-spool: default DIR/archive).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Ingest legacy-side records from a spool directory (e.g. copied from another host).

    --cron-spool: same code path and guarantees as `bridge legacy flush`. --quartz-spool: the
    same upload (idempotent, a half-written last line kept), then the files are archived and
    the plugin's count of records it had to drop (DIR/.dropped) is reported and reset."""
    if (cron_spool is None) == (quartz_spool is None):
        raise InputError("give exactly one of --cron-spool DIR or --quartz-spool DIR")
    if cron_spool is not None:
        _upload(cron_spool, archive, as_json)
    _ingest_quartz(quartz_spool, archive, as_json)


def _ingest_quartz(spool_dir: str, archive: str | None, as_json: bool) -> None:
    from legacy_wrappers.quartz_ingest import ingest

    if not os.path.isdir(spool_dir):
        raise InputError(f"{spool_dir}: not a directory")
    report = ingest(STATE.registry(), spool_dir, archive_dir=archive)
    f = report.flush
    if as_json:
        emit_json(report.to_json())
    else:
        dropped = "unknown (no .dropped counter)" if report.dropped is None else report.dropped
        out.print(
            f"{spool_dir}: {f.files} file(s), {f.uploaded} record(s) uploaded, "
            f"{f.duplicates} already stored, {f.rejected} rejected, "
            f"{len(f.kept_partial)} kept with a partial line, {len(f.busy)} busy; "
            f"dropped by the plugin since the last ingest: {dropped}",
            markup=False,
            highlight=False,
        )
        for line in f.rejections:
            out.print(f"rejected: {line}", markup=False, highlight=False)
    raise typer.Exit(1 if f.rejected or report.dropped else 0)


# --- the generic record API: for legacy schedulers without a shim or plugin -------------------


class RecordStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"
    STOOD_DOWN = "stood-down"


def _instant(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise InputError(f"{option}: not an ISO-8601 time: '{text}'") from e
    if t.tzinfo is None:
        raise InputError(f"{option}: '{text}' has no UTC offset (add Z or +HH:MM)")
    return t


@app.command("record")
def record_cmd(
    job: str = typer.Option(..., "--job", help="The bridge job id."),
    slot: str = typer.Option(
        ...,
        "--slot",
        help="The slot (ISO 8601 with offset); a time up to 90 s after a slot is snapped to it.",
    ),
    status: RecordStatus = typer.Option(..., "--status", help="ok | failed | stood-down."),
    exit_code: int = typer.Option(None, "--exit-code", help="The run's exit code."),
    started: str = typer.Option(None, "--started", help="When the run started (ISO 8601)."),
    finished: str = typer.Option(None, "--finished", help="When it finished (ISO 8601)."),
    output_file: str = typer.Option(
        None, "--output-file", help="The run's output (digested and sampled; '-' = stdin)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Record one run of a legacy scheduler the bridge has no shim or plugin for.

    Idempotent: recording the same job, slot and status again adds nothing."""
    from legacy_wrappers.legacy_record import record_legacy_run

    when = _instant(slot, "--slot")
    assert when is not None
    output = None
    if output_file is not None:
        if output_file == "-":
            import sys

            output = sys.stdin.buffer.read().decode("utf-8", "replace")
        else:
            try:
                output = Path(output_file).read_bytes().decode("utf-8", "replace")
            except OSError as e:
                raise InputError(f"{output_file}: cannot read: {e.strerror}") from e
    result = record_legacy_run(
        STATE.registry(),
        job,
        when,
        status.value,
        exit_code=exit_code,
        started=_instant(started, "--started"),
        finished=_instant(finished, "--finished"),
        output=output,
    )
    if as_json:
        emit_json(result.to_json())
    else:
        what = "recorded" if result.added else "already recorded"
        out.print(
            f"{result.job_id} {result.slot.isoformat()}: {what} ({result.role}, {result.status})",
            markup=False,
            highlight=False,
        )


@app.command("owner")
def owner_cmd(
    job: str = typer.Option(..., "--job", help="The bridge job id."),
    at: str = typer.Option(
        None, "--at", help="The slot, or a time up to 90 s after it (default: now)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print slot and owner as JSON."),
) -> None:
    """Print who owns the job's slot (`legacy` or `celery`): a wrapper runs or stands down."""
    from legacy_wrappers.legacy_record import slot_owner

    when = _instant(at, "--at") or datetime.now(UTC)
    slot, owner = slot_owner(STATE.registry(), job, when)
    if as_json:
        emit_json({"job_id": job, "slot": slot.isoformat().replace("+00:00", "Z"), "owner": owner})
    else:
        out.print(
            f"{owner} {slot.isoformat().replace('+00:00', 'Z')}", markup=False, highlight=False
        )
