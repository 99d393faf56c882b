"""Regenerate ``docs/benchmarks.md`` and ``docs/benchmarks.png`` from ``bench/results/*.json``.

    .venv/bin/python bench/report.py

Pure reporting: reads whatever result files exist (a missing one becomes a "not run" line), writes
one table per benchmark with the bridge and the stock counterpart side by side where one exists,
and a PNG (matplotlib, Agg backend) with dispatch throughput (bridge vs stock RedBeat), the soak's
fire lag percentiles and beat's CPU / RSS over the soak. Figures are copied as measured; the
machine (CPUs, load average at measurement time) is stated next to each table.
"""

from __future__ import annotations

import itertools
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
PNG = ROOT / "docs" / "benchmarks.png"


def load(name: str) -> Any:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def mtime(name: str) -> str:
    """When a result was measured: its file's time when it changed since the last commit,
    else the commit that recorded it (a fresh clone's file times say nothing)."""
    import subprocess

    path = RESULTS / name
    if not path.exists():
        return "—"
    when = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    git = ["git", "-C", str(RESULTS)]
    dirty = subprocess.run([*git, "status", "--porcelain", "--", name],
                           capture_output=True, text=True).stdout.strip()
    committed = subprocess.run([*git, "log", "-1", "--format=%ct", "--", name],
                               capture_output=True, text=True).stdout.strip()
    if committed and not dirty:
        when = datetime.fromtimestamp(int(committed), UTC)
    return when.strftime("%Y-%m-%d %H:%M UTC")


def f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(head: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(f(c) if not isinstance(c, str) else c for c in r) + " |"
            for r in rows]
    return "\n".join(out)


def dispatch_section() -> str:
    parts = ["## Dispatch: N entries due in the same second (`bench/dispatch.py`)", ""]
    for name, label in (("dispatch.json", "standard run"), ("dispatch-100k.json", "with 100k")):
        d = load(name)
        if not d:
            continue
        env = d.get("env", {})
        parts.append(f"*{label}* — `{name}`, measured {env.get('when', mtime(name))}, "
                     f"{env.get('cpus', '?')} CPUs, Celery {env.get('celery', '?')}, "
                     f"redis {env.get('redis_server', '?')}. Medians of {d['rows'][0]['runs']} "
                     "run(s).")
        parts.append("")
        parts.append(table(
            ["N", "stock RedBeat s", "stock msg/s", "bridge s", "bridge msg/s", "speed-up",
             "stock CPU s", "bridge CPU s", "CPU speed-up", "Redis ceiling msg/s",
             "bridge share of ceiling"],
            [[r["n"], r["stock_s"], r["stock_msg_s"], r["bridge_s"], r["bridge_msg_s"],
              f"{r['speedup']}x", r["stock_cpu_s"], r["bridge_cpu_s"], f"{r['cpu_speedup']}x",
              r.get("ceiling_msg_s"),
              f"{100 * r['bridge_of_ceiling']:.0f} %" if "bridge_of_ceiling" in r else "—"]
             for r in d["rows"]]))
        checks = d.get("checks", {})
        if checks:
            ok = all(c.get("messages") == c.get("distinct_job_slot") for c in checks.values())
            parts.append("")
            parts.append(f"Every queued bridge message decoded and checked (one per job and slot, "
                         f"all for the current slot, protocol 2, the headers `send_task` writes): "
                         f"{'yes' if ok else 'NO'}. Redis ceiling: the same messages "
                         f"({next(iter(checks.values())).get('message_bytes', '?')} bytes each) "
                         "pushed by pipelined LPUSH, 1,000 per round trip, in the same run.")
        parts.append("")
    return "\n".join(parts)


def import_section() -> str:
    d = load("import.json")
    if not d:
        return "## Import (`bench/import.py`)\n\nnot run\n"
    rows = [[r["lines"], r["bridge"]["parse_s"], r["bridge"]["plan_apply_sync_s"],
             r["bridge"]["total_s"], round(r["bridge_lines_per_s"]), r["bridge"]["peak_rss_mb"],
             r["python_crontab"]["total_s"], round(r["stock_lines_per_s"]),
             r["python_crontab"]["peak_rss_mb"]] for r in d["rows"]]
    return "\n".join([
        "## Import of big cron.d files (`bench/import.py`)", "",
        f"`import.json`, {mtime('import.json')}, `.venv/bin/python bench/import.py --big`. The "
        "bench fails unless every job line is created in the registry and in RedBeat and "
        "python-crontab counts the same jobs. The bridge parses with Debian's rules, plans "
        "against the registry, applies in one SQL transaction (SQLite) and syncs RedBeat; "
        "python-crontab only parses. Not like for like: the stock column is the floor of "
        "parsing alone.", "",
        table(["lines", "bridge parse s", "bridge plan+apply+sync s", "bridge total s",
               "bridge lines/s", "bridge peak MiB", "python-crontab s", "python-crontab lines/s",
               "python-crontab peak MiB"], rows), "", notes("import")])


def fleet_section() -> str:
    d = load("fleet.json")
    if not d:
        return "## Fleet import (`bench/fleet.py`)\n\nnot run\n"
    env = d.get("env", {})
    rows = [[d["hosts"], d["jobs"], d["read_s"], d["plan_s"], d["apply_s"], d["import_s"],
             d["sync_s"], d["reimport_s"], d["report_s"], d["peak_rss_mb"]]]
    return "\n".join([
        "## Fleet import: 500 hosts x 20 lines (`bench/fleet.py`)", "",
        f"`fleet.json`, measured {env.get('when', mtime('fleet.json'))}, {env.get('cpus', '?')} "
        f"CPUs, load {env.get('load', '?')}, `.venv/bin/python bench/fleet.py`. An inventory "
        "tree (one folder per host: Debian and Rocky hosts, four zones, a cron.d file shared by "
        "every host and a user crontab of each host's own) read and parsed in each host's "
        "dialect, planned, applied in one SQL transaction (SQLite), synced to RedBeat; then "
        "imported again (every job unchanged) and a shadow report over every job for the last "
        f"hour ({d['report_slots']:,} slots, legacy and Celery observations recorded for each). "
        "The bench fails unless every job line is created in the registry and in RedBeat, the "
        "plan spans every host, the re-import changes nothing and the report matches every "
        "slot.", "",
        table(["hosts", "jobs", "read+parse s", "plan s", "apply s", "import s", "sync s",
               "re-import s", "report s", "peak MiB"], rows), "", notes("fleet")])


def overhead_section() -> str:
    d = load("overhead.json")
    if not d:
        return "## Wrapper overhead (`bench/overhead.py`)\n\nnot run\n"
    w, b = d["wrapper"], d["bare"]
    return "\n".join([
        "## Per-run overhead of the idempotent wrapper (`bench/overhead.py`)", "",
        f"`overhead.json`, measured {d['measured_at']}, {d['host']['cpus']} CPUs, load "
        f"{f(d['host']['load_average_1m'])}, registry {d['database']}, worker {d['worker']}, "
        f"{d['runs']} runs each, interleaved.", "",
        table(["task", "p50 ms", "p99 ms", "mean ms"],
              [["`bridge.run_job` (claim, authority, runner, record)", w["p50_ms"], w["p99_ms"],
                w["mean_ms"]],
               ["bare Celery task (`subprocess.run(['/bin/sh','-c','true'])`)", b["p50_ms"],
                b["p99_ms"], b["mean_ms"]],
               ["**added by the wrapper** (per pair: i-th wrapper run minus i-th bare run)",
                d["overhead_p50_ms"], d["overhead_p99_ms"], d.get("overhead_mean_ms", "—")]]),
        "", "The added row is the percentiles of the per-pair differences, not p99(wrapper) - "
        "p99(bare).", ""])


def shim_section() -> str:
    d = load("shim.json")
    if not d:
        return "## Legacy SHELL shim (`bench/shim.py`)\n\nnot run\n"
    rows = [[f"`{k}`", v["p50_ms"], v["p99_ms"], v["added_p50_ms"]] for k, v in d["cases"].items()]
    return "\n".join([
        "## Latency the SHELL shim adds to a legacy cron job (`bench/shim.py`)", "",
        f"`shim.json`, measured {d['measured_at']}, {d['host']['cpus']} CPUs, load "
        f"{f(d['host']['load_average_1m'])}, {d['runs_per_case']} runs per case; `plain_sh` is "
        "cron without the bridge.", "",
        table(["case", "p50 ms", "p99 ms", "added p50 ms vs plain sh"], rows), ""])


def observations_section() -> str:
    d = load("observations.json")
    if not d:
        return "## RunRecord store (`bench/observations.py`)\n\nnot run\n"
    return "\n".join([
        "## RunRecord store queries (`bench/observations.py`)", "",
        f"`observations.json`, {mtime('observations.json')}: {f(d['rows'])} rows "
        f"({d['jobs']} jobs) in SQLite, loaded in {d['load_seconds']} s; plan: `{d['plan']}`.",
        "",
        table(["query", "median ms", "p95 ms", "rows"],
              [["one job, 24 h", d["per_job_day"]["median_ms"], d["per_job_day"]["p95_ms"],
                d["per_job_day"]["rows_median"]],
               ["one job, whole history", d["per_job_full"]["median_ms"],
                d["per_job_full"]["p95_ms"], d["per_job_full"]["rows_median"]],
               ["one job, whole history, lean", d["per_job_full_lean"]["median_ms"],
                d["per_job_full_lean"]["p95_ms"], d["per_job_full_lean"]["rows_median"]],
               ["every job, 24 h (one pass)", f"{d['all_jobs_day']['seconds'] * 1000:.1f}",
                "—", d["all_jobs_day"]["rows"]]]), ""])


def notes(name: str) -> str:
    """Hand-written analysis kept next to the generated tables (bench/notes/NAME.md)."""
    path = Path(__file__).with_name("notes") / f"{name}.md"
    return path.read_text().strip() + "\n" if path.exists() else ""


def compare_section() -> str:
    parts = ["## Shadow diff (`bench/compare.py`)", ""]
    d = load("compare.json")
    if not d:
        return "\n".join([*parts, "not run", ""])
    gen = d["results"][0].get("generated", {})
    parts.append(f"`compare.json`, {mtime('compare.json')}, `.venv/bin/python bench/compare.py`: "
                 f"{d['jobs']} jobs x {d['slots_per_job']} slots, every job imported a day "
                 f"before the window, {d['cpus']} CPUs, load {f(d['load_average_1m'])}. No "
                 "stock counterpart exists (Celery has no shadow comparison). Target: under "
                 "10 s and 500 MB.")
    parts.append("")
    if gen:
        parts.append("Workload as generated (the bench exits non-zero unless the report finds "
                     "exactly these verdicts, `jobs x slots` expected slots and matches > 0): "
                     + ", ".join(f"{k} {f(v)}" for k, v in sorted(gen.items())) + ". Peak MB "
                     "is the whole process tree, sampled every 50 ms.")
        parts.append("")
    parts.append(table(
        ["backend", "observation rows", "expected slots", "matches", "processes", "seconds",
         "CPU s", "peak MB", "within target"],
        [[r["backend"], r["rows"], r.get("slots", "—"), r["counts"].get("match", 0),
          r["workers"], r["seconds"], r["cpu_seconds"], r["peak_rss_mb"],
          "yes" if r["within_target"] else "no"] for r in d["results"]]))
    parts.append("")
    parts.append(notes("compare"))
    return "\n".join(parts)


def firelag_section() -> str:
    title = "## Start lag: the real cron daemon vs the bridge, same jobs (`bench/firelag.py`)"
    names = sorted(p.name for p in RESULTS.glob("firelag*.json"))
    if not names:
        return f"{title}\n\nnot run\n"
    return "\n".join([title, ""] + [firelag_run(name, load(name)) for name in names])


def firelag_run(name: str, d: dict[str, Any]) -> str:
    rows = []
    for r in d["rows"]:
        for side in ("cron", "bridge"):
            s = r[side]
            how = (f"Debian cron `{s.get('daemon', 'cron')} -f`" if side == "cron"
                   else f"beat + `{s['worker']}` x{s['workers']}, registry {s['registry']}")
            rows.append([r["n"], how, s["runs"], s["p50_s"], s["p99_s"], s["max_s"]])
        rows.append([r["n"], "**ratio bridge / cron**", "—", f"{r['ratio_p50']}x",
                     f"{r['ratio_p99']}x", "—"])
    parts = [f"`{name}`, measured {d['measured_at']}, {d['host']['cpus']} CPUs, load "
             f"{f(d['host']['load_average_1m'])} at the end. N every-minute jobs, each "
             f"`{d['command']}`; the figure is the command's own clock reading minus the minute it "
             "was due for. cron and the bridge run one after the other in the same run, each with "
             "the machine to itself; every job must start exactly once in every measured minute "
             "(the bench fails otherwise).", "",
             table(["N", "side", "runs", "p50 s", "p99 s", "max s"], rows), ""]
    for r in d["rows"]:
        b = r["bridge"].get("breakdown") or {}
        if not b:
            continue
        pub = b.get("beat_published_s") or []
        task, spawn = b.get("task_start_minus_slot"), b.get("command_started_minus_task_start")
        parts.append(
            f"Where the bridge's lag goes at N = {r['n']:,}: beat published "
            + (", ".join(f"{p['messages']:,} messages at +{p['first']} s" for p in pub) or "—")
            + (f"; the task started (worker took the message) p50 {task['p50_s']} s, p99 "
               f"{task['p99_s']} s after the minute" if task else "")
            + (f"; its command started p50 {spawn['p50_s']} s, p99 {spawn['p99_s']} s after the "
               "task (claim in SQL + spawn)" if spawn else "") + ".")
        parts.append("")
    return "\n".join(parts)


def worker_cpu_section() -> str:
    title = "## Worker CPU per run, a 1,000-message burst (`bench/worker_cpu.py`)"
    d = load("worker_cpu.json")
    if not d:
        return f"{title}\n\nnot run\n"
    rows = [[k, r["worker_cpu_ms_per_run"], r["commands_cpu_ms_per_run"], r["all_started_s"]]
            for k, r in enumerate(d["rounds"])]
    host = d.get("host", {})
    return "\n".join([
        title, "",
        f"`worker_cpu.json`, measured {d.get('measured_at', mtime('worker_cpu.json'))}, "
        f"{host.get('cpus', '?')} CPUs, load {f(host.get('load_average_1m'))} at the end, "
        f"registry {d['registry']}. One `{d.get('worker', 'bridge worker')}` "
        f"({d.get('processes', 1)} process(es)); each round publishes one message per job "
        f"({d['jobs']:,} jobs, the `bench/firelag.py` command) for a past minute while the "
        "worker is stopped (SIGSTOP), resumes it (the whole burst at once, as after beat's "
        "publish) and waits until every command has run exactly once (the bench fails "
        "otherwise). CPU of the worker process(es) and of their commands, per run; wall time "
        "from the resume to the last command's start. Round 0 warms up and is not counted.",
        "",
        table(["round", "worker CPU ms/run", "commands CPU ms/run", "all started s"], rows), "",
        f"Counted rounds: worker CPU {d['worker_cpu_ms_per_run']} ms per run, every command "
        f"started {d.get('all_started_s_median', '—')} s (median) after the burst was "
        "published. No stock counterpart: the stock Celery worker (kombu's `BRPOP`) has no "
        "claim, runner or record to cost.", ""])


def soak_section() -> str:
    d = load("soak.json")
    if not d:
        return "## Soak (`bench/soak.py`)\n\nnot run\n"
    lag, beat = d["lag_seconds"], d["beat"]
    rows = [[m["minute"], m["beat_cpu_pct"], m["beat_rss_mb"], m["worker_rss_mb"]]
            for m in d["per_minute"]]
    return "\n".join([
        "## Soak: real beat + real worker (`bench/soak.py`)", "",
        f"`soak.json`, measured {d['measured_at']}, {d['host']['cpus']} CPUs, load "
        f"{f(d['host']['load_average_1m'])} at the end; {d['jobs']} Celery-owned jobs "
        f"({d['per_second_jobs']} every second, the rest every minute; vixie and Quartz), "
        f"{d['minutes']} min window, registry {d['database']}, worker {d['worker']}, each run "
        "through the real `bridge.run_job` wrapper (claim in SQL).", "",
        table(["measure", "value"], [
            ["slots expected (each job's evaluator)", d["slots_expected"]],
            ["slots executed (authoritative, succeeded)", d["slots_executed"]],
            ["missing", d["missing"]],
            ["duplicate executions", d["duplicates"]],
            ["run rows by role/status", ", ".join(f"{k}: {v}" for k, v in d["run_rows"].items())],
            ["runs per second", d["throughput_runs_per_s"]],
            *[[f"fire lag, {label} jobs, p50 / p99 / max s ({f(part.get('n'))} runs)",
               f"{f(part['p50'], 3)} / {f(part['p99'], 3)} / {f(part['max'], 3)}"]
              for label, part in _soak_lags(lag)],
            ["beat CPU, mean over the window", f"{f(beat['cpu_pct_mean'])} %"],
            ["beat RSS first / last sample MiB", f"{f(beat['rss_mb_first'], 1)} / "
                                                 f"{f(beat['rss_mb_last'], 1)}"],
            ["beat RSS growth MiB", beat["rss_growth_mb"]],
            ["verdict", "ok" if d["ok"] else "**FAILED**"],
        ]), "", "Per minute of the window:", "",
        table(["minute", "beat CPU %", "beat RSS MiB", "worker RSS MiB (all processes)"], rows),
        "", "Fire lag is the wrapper's `fired_at` (the worker starts handling the message) minus "
        "the slot: it includes beat's dispatch, the broker and the queue behind the minute "
        "boundary, when every per-minute job is due in the same second.", ""])


def _soak_lags(lag: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if "every_minute" in lag:
        return [("every-second", lag["every_second"]), ("every-minute", lag["every_minute"])]
    return [("all (older file: every-second and every-minute mixed)", lag)]


def boundary_section() -> str:
    d = load("boundary.json")
    if not d:
        return "## Authority flips, exactly once (`bench/boundary.py`)\n\nnot run\n"
    scalars = [[f"`{k}`", json.dumps(v) if isinstance(v, (list, dict)) else v]
               for k, v in d.items() if not isinstance(v, list) or len(v) <= 8]
    return "\n".join([
        "## Authority flips, exactly once (`bench/boundary.py`)", "",
        f"`boundary.json`, {mtime('boundary.json')}: a per-second job flipped legacy -> Celery "
        "-> legacy inside the window, both paths live; every slot checked.", "",
        table(["field", "value"], scalars), ""])


def chart() -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (`pip install 'cron-bridge[bench]'`): no chart"
    dispatch, soak = load("dispatch-100k.json") or load("dispatch.json"), load("soak.json")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    if dispatch:
        ns = [r["n"] for r in dispatch["rows"]]
        x = range(len(ns))
        axes[0].bar([i - 0.2 for i in x], [r["stock_msg_s"] for r in dispatch["rows"]], 0.4,
                    label="stock RedBeat")
        axes[0].bar([i + 0.2 for i in x], [r["bridge_msg_s"] for r in dispatch["rows"]], 0.4,
                    label="BridgeScheduler")
        axes[0].set_xticks(list(x), [f"{n:,}" for n in ns])
        axes[0].set_xlabel("entries due in the same second")
        axes[0].set_ylabel("messages published per second")
        axes[0].set_title("Dispatch throughput")
        axes[0].legend()
    if soak:
        lag = dict(_soak_lags(soak["lag_seconds"]))
        lag = lag.get("every-minute") or next(iter(lag.values()))
        axes[1].bar(["p50", "p99", "max"], [lag["p50"] or 0, lag["p99"] or 0, lag["max"] or 0],
                    color=["#4c72b0", "#dd8452", "#c44e52"])
        axes[1].set_ylabel("seconds after the slot")
        axes[1].set_title(f"Every-minute fire lag, soak ({soak['jobs']} jobs)")
        samples = soak["samples"][1:]  # the first sample is the process starting up
        t = [s["t"] / 60 for s in samples]
        axes[2].plot(t, [s["beat_rss_mb"] for s in samples], label="beat RSS MiB")
        cpu = [0.0] + [100 * (b["beat_cpu_s"] - a["beat_cpu_s"]) / max(1e-9, b["t"] - a["t"])
                       for a, b in itertools.pairwise(samples)]
        ax2 = axes[2].twinx()
        ax2.plot(t, cpu, color="#dd8452", alpha=0.7, label="beat CPU %")
        ax2.set_ylabel("beat CPU %")
        axes[2].set_xlabel("minutes since start")
        axes[2].set_ylabel("beat RSS MiB")
        axes[2].set_ylim(bottom=0)
        axes[2].set_title("Beat over the soak")
        axes[2].legend(loc="lower left")
        ax2.legend(loc="lower right")
    fig.tight_layout()
    PNG.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PNG, dpi=90)
    return None


def main() -> None:
    note = chart()
    load_now = os.getloadavg()
    parts = [
        "# Benchmarks",
        "",
        "Generated by `bench/report.py` from `bench/results/*.json` (run everything with "
        "`bash bench/run_all.sh`). Every figure below was measured on this project's build "
        f"machine: {os.cpu_count()} CPUs shared with other jobs (load average when this page was "
        f"generated: {load_now[0]:.2f} / {load_now[1]:.2f} / {load_now[2]:.2f}; each section "
        "states the load its own run saw). Wall times on a shared machine are noisy; CPU "
        "times are given where the benchmark measures them.",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M UTC}.",
        "",
        "![dispatch throughput, soak fire lag, beat CPU and RSS](benchmarks.png)" if note is None
        else f"*{note}*",
        "",
        dispatch_section(), firelag_section(), worker_cpu_section(), soak_section(),
        overhead_section(), shim_section(), import_section(), fleet_section(),
        boundary_section(), compare_section(),
        observations_section(),
    ]
    DOC.write_text("\n".join(parts).rstrip() + "\n")
    print(f"wrote {DOC}" + ("" if note else f" and {PNG}"))


if __name__ == "__main__":
    main()
