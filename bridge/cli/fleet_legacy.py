"""``bridge legacy rewrite|retire --inventory DIR --out OUTDIR``: the legacy side of a fleet.

Reads the same inventory tree as ``bridge import crontab --inventory`` (each host's files at
their real paths) and writes one tree per host, ``OUTDIR/<host>/<path on the host>``, ready to
ship back (``rsync -a OUTDIR/web-01/ root@web-01:/``): every crontab file of the host that has
registry jobs, rewritten (or retired) exactly as the single-file commands do, read in the host's
own cron dialect and zone; ``rewrite`` also writes the host's authority files under
``OUTDIR/<host>/<authority dir>`` (the shim's offline cache on that host). Files are written
mode 0644 (``/etc/crontab``, ``/etc/cron.d``) or 0600 (user crontabs), as cron wants them; a
host whose folder cannot be read stops the command before anything is written (exit 2).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from bridge.cli.context import STATE, emit_json, err, out
from bridge.core.audit import current_actor
from bridge.core.authority import AuthorityEvent
from bridge.core.errors import InputError
from bridge.core.hosts import is_qualified
from bridge.core.spec import JobSpec, SourceKind
from bridge.services import authority_files
from bridge.store.audit import AuditRepo
from bridge.store.db import Session
from bridge.store.repos import AuthorityRepo, JobRepo
from crontab_import import inventory as inv
from crontab_import.inventory_fs import read_inventory
from legacy_wrappers import retire as retiring
from legacy_wrappers.rewrite import rewrite

MAX_LINES = 2_000_000
MAX_BYTES = 256 * 1024 * 1024


@dataclass
class HostOutput:
    host: str
    files: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    authority: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "files": self.files, "skipped": self.skipped,
                "authority": self.authority}


def _inventory(root: str, hosts: list[str] | None) -> inv.Inventory:
    inventory = read_inventory(root, check_owner=False, max_bytes=MAX_BYTES, max_lines=MAX_LINES,
                               default_zone=STATE.settings.timezone,
                               only=frozenset(hosts) if hosts else None)
    if inventory.errors:
        for error in inventory.errors:
            err.print(f"error: {error}", markup=False, highlight=False)
        raise InputError(f"{root}: {len(inventory.errors)} host folder error(s): nothing written",
                         hint="fix them, or leave those hosts out with --host")
    return inventory


def _host_jobs(host: str) -> dict[str, dict[str, JobSpec]]:
    """The host's registry jobs by source file."""
    with STATE.registry().session() as s:
        jobs = JobRepo(s).list(host=host)
    by_file: dict[str, dict[str, JobSpec]] = {}
    for j in jobs:
        by_file.setdefault(j.spec.source.file, {})[j.id] = j.spec
    return by_file


def _read_as(specs: dict[str, JobSpec], host: str) -> tuple[str, str | None, str | None]:
    """How the file was imported: kind, user of a user crontab, and the host its ids carry
    (None when the registry holds them bare: imported on the host before fleets)."""
    first = next(iter(specs.values()))
    user = getattr(first.handler, "user", None)
    kind = first.source.kind
    qualified = all(is_qualified(host, i) for i in specs)
    return kind.value, user if kind is SourceKind.USER_CRONTAB else None, (
        host if qualified else None)


def _write(out_dir: Path, host: str, path: str, text: str) -> str:
    target = out_dir / host / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = 0o600 if inv.kind_of(path) is SourceKind.USER_CRONTAB else 0o644
    tmp = target.with_name(f".{target.name}.bridge-tmp")
    try:
        tmp.write_bytes(text.encode("utf-8", errors="surrogateescape"))
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as e:
        raise InputError(f"cannot write {target}: {e.strerror}") from e
    return str(target)


def _each_file(
    inventory: inv.Inventory,
    work: Callable[[inv.HostFacts, inv.HostFile, dict[str, JobSpec], HostOutput], None],
) -> list[HostOutput]:
    outputs = []
    for reading in inventory.hosts:
        facts = reading.facts
        assert facts is not None  # _inventory refused unreadable hosts
        output = HostOutput(reading.host)
        by_file = _host_jobs(reading.host)
        for f in reading.files:
            specs = by_file.get(f.path)
            if not specs:
                output.skipped.append({"file": f.path, "reason": "no registry jobs from it"})
                continue
            work(facts, f, specs, output)
        outputs.append(output)
    return outputs


def rewrite_inventory(root: str, out_dir: str, shim: str, hosts: list[str] | None,
                      authority_dir: str, as_json: bool) -> None:
    if not os.path.isabs(authority_dir):
        raise InputError(f"--authority-dir must be an absolute path (on the hosts), got "
                         f"'{authority_dir}'")
    inventory = _inventory(root, hosts)
    base = Path(out_dir)
    audit: list[dict[str, Any]] = []

    def one(facts: inv.HostFacts, f: inv.HostFile, specs: dict[str, JobSpec],
            output: HostOutput) -> None:
        kind, user, qualified = _read_as(specs, facts.host)
        result = rewrite(f.data.decode("utf-8", errors="surrogateescape"), file=f.path,
                         managed_ids=specs, timezone=facts.zone.name, shim=shim, kind=kind,
                         user=user, dialect=facts.family.dialect, host=qualified)
        written = _write(base, facts.host, f.path, result.text)
        output.files.append({"file": f.path, "out": written, "managed": list(result.managed),
                             "unmanaged_lines": list(result.unmanaged_lines)})
        audit.append({"action": "rewrite", "job_id": None, "job_host": facts.host,
                      "reason": f"{facts.host}:{f.path}", "before": None,
                      "after": {"file": written, "managed": list(result.managed)}})

    outputs = _each_file(inventory, one)
    for output in outputs:
        output.authority = _export_authority(base, output.host, authority_dir)
    with STATE.registry().session() as s:
        AuditRepo(s).append_many(audit, actor=STATE.actor or current_actor())
    _render(inventory, out_dir, outputs, as_json, "rewrote", {"shim": shim})


def _export_authority(base: Path, host: str, authority_dir: str) -> dict[str, Any]:
    """The host's jobs' authority files, under OUTDIR/<host>/<authority dir>."""
    directory = base / host / authority_dir.lstrip("/")
    with STATE.registry().session() as s:
        jobs = JobRepo(s).list(host=host)
        histories = AuthorityRepo(s).histories([j.id for j in jobs])
    for job in jobs:
        events = [(e.effective_slot, e.owner.value) for e in histories.get(job.id, [])]
        authority_files.write(
            directory, authority_files.resolve(job.id, events, job.spec.to_json()["schedule"])
        )
    return {"dir": str(directory), "jobs": len(jobs)}


Eligible = Callable[[Session, JobSpec, list[AuthorityEvent], datetime, timedelta],
                    retiring.Eligibility]


def retire_inventory(root: str, out_dir: str, hosts: list[str] | None, stable_days: int,
                     do_restore: bool, as_json: bool, eligible: Eligible) -> None:
    """``eligible``: the single-file command's decision for one job (the same evidence)."""
    inventory = _inventory(root, hosts)
    base = Path(out_dir)
    now = datetime.now(UTC).replace(microsecond=0)
    stable = timedelta(days=stable_days)
    audit: list[dict[str, Any]] = []
    kept: list[retiring.Eligibility] = []

    def one(facts: inv.HostFacts, f: inv.HostFile, specs: dict[str, JobSpec],
            output: HostOutput) -> None:
        text = f.data.decode("utf-8", errors="surrogateescape")
        if do_restore:
            result = retiring.restore(text)
        else:
            kind, user, qualified = _read_as(specs, facts.host)
            lines = retiring.job_lines(text, file=f.path, timezone=facts.zone.name, kind=kind,
                                       user=user, dialect=facts.family.dialect, host=qualified)
            with STATE.registry().session() as s:
                histories = AuthorityRepo(s).histories(list(specs))
                decisions = [eligible(s, specs[i], histories.get(i, []), now, stable)
                             for i in sorted(specs) if i in lines]
            kept.extend(d for d in decisions if not d.eligible)
            chosen = {d.job_id: lines[d.job_id] for d in decisions if d.eligible}
            result = retiring.retire(text, chosen, now.date())
        written = _write(base, facts.host, f.path, result.text)
        key = "restored" if do_restore else "retired"
        output.files.append({"file": f.path, "out": written,
                             key: [{"job_id": j, "line": n} for j, n in result.retired]})
        audit.extend({"action": "legacy.restore" if do_restore else "legacy.retire",
                      "job_id": j, "job_host": facts.host, "reason": f"{facts.host}:{f.path}",
                      "before": None, "after": {"file": written, "line": n}}
                     for j, n in result.retired)

    outputs = _each_file(inventory, one)
    with STATE.registry().session() as s:
        AuditRepo(s).append_many(audit, actor=STATE.actor or current_actor())
    extra = {"kept": [{"job_id": d.job_id, "reason": d.reason} for d in kept]}
    _render(inventory, out_dir, outputs, as_json, "restored" if do_restore else "retired", extra)
    if any(d.reason.startswith("unfinished slot") for d in kept):
        raise typer.Exit(1)


def _render(inventory: inv.Inventory, out_dir: str, outputs: list[HostOutput], as_json: bool,
            verb: str, extra: dict[str, Any]) -> None:
    if as_json:
        emit_json({"inventory": inventory.root, "out": os.path.abspath(out_dir), **extra,
                   "hosts": [o.to_json() for o in outputs]})
        return
    for o in outputs:
        jobs = sum(len(f.get("managed", f.get("retired", f.get("restored", []))))
                   for f in o.files)
        authority = f"; {o.authority['jobs']} authority file(s)" if o.authority else ""
        out.print(f"{o.host}: {verb} {len(o.files)} file(s), {jobs} job(s){authority}; "
                  f"{len(o.skipped)} file(s) without registry jobs left out",
                  markup=False, highlight=False)
    for k in extra.get("kept", []):
        out.print(f"kept {k['job_id']}: {k['reason']}", markup=False, highlight=False)
    out.print(f"wrote {os.path.abspath(out_dir)}/<host>/...", markup=False, highlight=False)
