"""The shadow report as one self-contained HTML page (inline CSS and JS, no network fetch).

Per job a card: readiness badge, verdict counts, a **timeline** (legacy firings above, the
schedule's expected slots in the middle, Celery firings below; each mark sits at its actual
fire time, coloured by the slot's verdict; hollow marks are stand-downs / observe-only records;
hover for details in UTC and in the job's zone), the readiness reasons, the last unresolved
mismatch with both sides side by side, and a table of recent mismatches. A filter box (substring
or glob over job ids) and verdict checkboxes filter jobs, timeline marks and table rows.

The page renders its text server-side (it reads fine without JS); the timelines are drawn by
the inline script from a JSON island. :func:`render_html` is pure.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bridge.core.runs import RunRecord
from shadow.compare import COUNT_KEYS, SlotVerdict, Verdict
from shadow.report_model import JobReport, Report, schedule_text

VERDICT_ORDER = [v.value for v in Verdict]
LABELS = {
    "match": "match", "missing_celery": "missing celery", "missing_legacy": "missing legacy",
    "late": "late", "duplicate": "duplicate", "outcome_mismatch": "outcome mismatch",
    "pending": "pending", "unexpected_slot": "unexpected slot", "ignored": "ignored",
    "before_import": "before import", "lost": "lost (outcome unknown)",
}

CSS = """
:root{--bg:#f4f5f7;--card:#fff;--ink:#1f2328;--muted:#656d76;--line:#d0d7de;
--match:#2f9e44;--pending:#adb5bd;--late:#f08c00;--missing_celery:#e8590c;
--missing_legacy:#c2255c;--outcome_mismatch:#e03131;--duplicate:#ae3ec9;
--unexpected_slot:#6741d9;--ignored:#868e96;--before_import:#ced4da;--lost:#212529}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
.top{background:#1f2937;color:#f9fafb;padding:18px 28px}
.top h1{margin:0 0 4px;font-size:20px;font-weight:650}
.top .meta{color:#cbd5e1;font-size:13px}
.summary{display:flex;gap:10px;flex-wrap:wrap;margin-top:12px}
.stat{background:#374151;border-radius:8px;padding:6px 12px;font-size:13px}
.stat b{font-size:17px;margin-right:4px}
.stat.bad{background:#7f1d1d}.stat.good{background:#14532d}
.controls{position:sticky;top:0;z-index:5;background:#fff;border-bottom:1px solid var(--line);
padding:10px 28px;display:flex;gap:14px;flex-wrap:wrap;align-items:center}
.controls input[type=search]{padding:6px 10px;border:1px solid var(--line);border-radius:6px;
min-width:260px;font:inherit}
.controls label{display:inline-flex;align-items:center;gap:5px;font-size:13px;cursor:pointer}
.shown{color:var(--muted);font-size:13px;margin-left:auto}
main{padding:18px 28px;display:grid;gap:16px}
.job{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 18px;
box-shadow:0 1px 2px rgba(0,0,0,.04)}
.job.bad{border-left:5px solid var(--outcome_mismatch)}.job.good{border-left:5px solid var(--match)}
.job h2{margin:0;font-size:16px;font-family:ui-monospace,SFMono-Regular,Menlo,monospace}
.head{display:flex;gap:12px;align-items:baseline;flex-wrap:wrap}
.sched{color:var(--muted);font-size:13px}.sched code{background:#f1f3f5;padding:1px 5px;
border-radius:4px}
.badge{font-size:12px;font-weight:600;padding:2px 9px;border-radius:999px;color:#fff}
.badge.ready{background:var(--match)}.badge.notready{background:#6c757d}
.badge.owner{background:#1c7ed6}
.counts{display:flex;gap:6px;flex-wrap:wrap;margin:10px 0 6px}
.chip{display:inline-flex;align-items:center;gap:5px;font-size:12px;border:1px solid var(--line);
border-radius:999px;padding:1px 9px;background:#fff}
.chip i{width:9px;height:9px;border-radius:50%;display:inline-block}
.chip.zero{opacity:.45}
.timeline svg{display:block;width:100%;height:96px}
.timeline .lbl{font-size:10px;fill:var(--muted)}
.omitted{font-size:12px;color:var(--muted)}
.reasons{margin:6px 0;color:#8a3b12;font-size:13px}.reasons li{margin:1px 0}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:10px;margin:8px 0}
.side{border:1px solid var(--line);border-radius:8px;padding:8px 10px;font-size:12.5px}
.side h4{margin:0 0 4px;font-size:12px;text-transform:uppercase;letter-spacing:.04em;
color:var(--muted)}
.side pre{max-height:140px;overflow:auto;background:#f8f9fa;padding:6px;border-radius:6px;
margin:4px 0 0;white-space:pre-wrap;font-size:11.5px}
table{border-collapse:collapse;width:100%;font-size:12.5px;margin-top:6px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eef0f2;vertical-align:top}
th{color:var(--muted);font-weight:600}
td.v span{font-weight:600}
tr.ignored td{color:var(--muted)}
details summary{cursor:pointer;color:var(--muted);font-size:13px;margin-top:6px}
.empty{color:var(--muted);font-style:italic}
"""

JS = r"""
(function(){
const data = JSON.parse(document.getElementById('report-data').textContent);
const ORDER = data.verdicts;
const css = getComputedStyle(document.documentElement);
const color = v => css.getPropertyValue('--' + v).trim() || '#999';
const NS = 'http://www.w3.org/2000/svg';
const filterBox = document.getElementById('job-filter');
const boxes = [...document.querySelectorAll('input.vf')];
const onlyBad = document.getElementById('only-bad');
const cards = [...document.querySelectorAll('article.job')];
function el(name, attrs, parent){const e=document.createElementNS(NS,name);
  for(const k in attrs) e.setAttribute(k, attrs[k]); if(parent) parent.appendChild(e); return e;}
function fmt(t, tz){const d=new Date(t*1000);
  let s=d.toISOString().replace('.000Z','Z');
  try{s+=' ('+d.toLocaleString('en-US',{timeZone:tz,hourCycle:'h23',timeZoneName:'short'})+')';}
  catch(e){}
  return s;}
function implicated(v, side, lag, tol){
  if(v==='late') return lag!=null && Math.abs(lag)>tol;
  if(v==='outcome_mismatch') return side==='celery';
  return v==='duplicate' || v==='unexpected_slot' || v==='lost';}
function hollow(word){return word && !/succeeded|failed|interrupted|running/.test(word);}
function draw(card, checked){
  const job = data.jobs[+card.dataset.index]; const box = card.querySelector('.timeline');
  if(!box) return; box.textContent='';
  const pts = job.points;
  if(!pts.length){box.innerHTML='<p class="empty">no slot in the window</p>';return;}
  const W = Math.max(box.clientWidth || 1100, 300), H = 96, L = 58, R = 12;
  const t0 = job.omitted ? pts[0][0] : Math.min(job.since, pts[0][0]);
  const t1 = Math.max(job.until, pts[pts.length-1][0]);
  const x = t => L + (W-L-R) * (t1===t0 ? 0.5 : (t-t0)/(t1-t0));
  const svg = el('svg', {viewBox:`0 0 ${W} ${H}`, role:'img',
    'aria-label': 'timeline of ' + job.id}, box);
  const rows = {legacy:20, slots:46, celery:72};
  for(const [name,y] of Object.entries(rows)){
    el('line',{x1:L,x2:W-R,y1:y,y2:y,stroke:'#e9ecef'},svg);
    el('text',{x:4,y:y+3,class:'lbl'},svg).textContent = name==='slots'?'expected':name;}
  for(const f of [0,.25,.5,.75,1]){const t=t0+(t1-t0)*f;
    const tx=el('text',{x:Math.min(Math.max(x(t),L),W-R-60),y:H-2,class:'lbl'},svg);
    tx.textContent=new Date(t*1000).toISOString().slice(5,16).replace('T',' ')+'Z';}
  const r = pts.length > 600 ? 2 : pts.length > 150 ? 3 : 4;
  let drawn = 0;
  for(const p of pts){
    const [slot, vi, ign, llag, clag, lw, cw, detail] = p; const v = ORDER[vi];
    const key = ign ? 'ignored' : v; if(!checked.has(key)) continue; drawn++;
    const c = color(key), bad = v!=='match' && v!=='pending' && v!=='before_import';
    const tip = fmt(slot, job.tz) + ' · ' + v.replace('_',' ') + (ign?' (ignored)':'') +
      (detail ? ' · ' + detail : '');
    if(v==='unexpected_slot'){
      const d=el('path',{d:`M${x(slot)} ${rows.slots-6}l6 6l-6 6l-6 -6z`,fill:c},svg);
      el('title',{},d).textContent=tip;}
    else{const tk=el('line',{x1:x(slot),x2:x(slot),y1:rows.slots-(bad?9:6),
      y2:rows.slots+(bad?9:6),stroke:c,'stroke-width':bad?2.5:1.5},svg);
      el('title',{},tk).textContent=tip;}
    const sides = [['legacy',lw,llag,rows.legacy],['celery',cw,clag,rows.celery]];
    for(const [side, word, lag, y] of sides){
      if(!word){
        if(v==='missing_'+side || (v==='missing_legacy' && !lw && !cw)){
          const m=el('path',{d:`M${x(slot)-4} ${y-4}l8 8m0 -8l-8 8`,stroke:c,'stroke-width':2},svg);
          el('title',{},m).textContent = tip + ' · no ' + side + ' firing';}
        continue;}
      const blamed = implicated(v, side, lag, job.tol);
      const dc = blamed ? c : (v==='pending' ? color('pending') : color('match'));
      const fx = x(slot + (lag||0));
      if(Math.abs(fx-x(slot))>1.5) el('line',{x1:x(slot),x2:fx,y1:rows.slots,y2:y,
        stroke:dc,'stroke-dasharray':'2 2'},svg);
      const h = hollow(word);
      const m = el('circle',{cx:fx,cy:y,r:blamed?r+1.5:r,fill:h?'#fff':dc,stroke:dc,
        'stroke-width':h?1.5:0},svg);
      el('title',{},m).textContent = tip + ' · ' + word + (lag!=null?` · lag ${lag}s`:'');}
  }
  svg.dataset.marks = drawn; box.dataset.rendered = '1';}
function globRe(q){if(!/[*?]/.test(q)) return null;
  return new RegExp('^'+q.replace(/[.+^${}()|\\]/g,'\\$&').replace(/\*/g,'.*')
    .replace(/\?/g,'.')+'$');}
function apply(){
  const q = filterBox.value.trim(); const re = globRe(q);
  const checked = new Set(boxes.filter(b=>b.checked).map(b=>b.value));
  let shown = 0;
  for(const card of cards){
    const id = card.dataset.job; const vs = card.dataset.verdicts.split(' ').filter(Boolean);
    let ok = !q || (re ? re.test(id) : id.includes(q));
    if(onlyBad.checked && card.dataset.unresolved!=='1') ok = false;
    if(vs.length && !vs.some(v=>checked.has(v))) ok = false;
    card.hidden = !ok; if(!ok) continue; shown++;
    for(const row of card.querySelectorAll('tr[data-verdict]'))
      row.hidden = !checked.has(row.dataset.verdict);
    draw(card, checked);}
  document.getElementById('shown').textContent = `${shown} of ${cards.length} jobs shown`;
  document.body.dataset.ready = '1';}
filterBox.addEventListener('input', apply); onlyBad.addEventListener('change', apply);
boxes.forEach(b=>b.addEventListener('change', apply));
let t; window.addEventListener('resize',()=>{clearTimeout(t);t=setTimeout(apply,150);});
apply();
})();
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _epoch(t: datetime) -> int:
    return int(t.timestamp())


def _utc(t: datetime | None) -> str:
    return "-" if t is None else t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _local(t: datetime, zone: str) -> str:
    return t.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def _job_data(i: int, job: JobReport, report: Report) -> dict[str, Any]:
    index = {v: n for n, v in enumerate(VERDICT_ORDER)}
    points = [
        [_epoch(p.slot), index[p.verdict.value], int(p.ignored), p.legacy_lag, p.celery_lag,
         p.legacy, p.celery, p.detail]
        for p in job.timeline
    ]
    return {"index": i, "id": job.spec.id, "tz": job.spec.schedule.timezone,
            "since": _epoch(report.since), "until": _epoch(report.until),
            "omitted": job.timeline_omitted, "tol": job.spec.compare.tolerance_seconds,
            "points": points}


def _chip(key: str, n: int | None = None) -> str:
    count = "" if n is None else f" <b>{n}</b>"
    zero = " zero" if n == 0 else ""
    return (f'<span class="chip{zero}"><i style="background:var(--{key})"></i>'
            f"{_e(LABELS[key])}{count}</span>")


def _side_html(title: str, obs: RunRecord | None, lag: float | None) -> str:
    if obs is None:
        return f'<div class="side"><h4>{title}</h4><p class="empty">no record</p></div>'
    rows = [
        ("role / status", f"{obs.role.value} / {obs.status.value}"),
        ("exit status", obs.exit_status), ("fired at", _utc(obs.fire_time)),
        ("lag", None if lag is None else f"{lag:g} s"), ("attempts", obs.attempts),
        ("host", obs.host), ("output digest", (obs.output_digest or "")[:16] or None),
        ("error", obs.error),
    ]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows if v is not None)
    sample = f"<pre>{_e(obs.output_sample)}</pre>" if obs.output_sample else ""
    return f'<div class="side"><h4>{title}</h4><table>{body}</table>{sample}</div>'


def _last_mismatch(job: JobReport) -> str:
    v = job.summary.last_mismatch
    if v is None:
        return ""
    return (f'<details open><summary>Last unresolved mismatch: <b>{_e(LABELS[v.verdict.value])}'
            f"</b> at {_e(_utc(v.slot))} ({_e(_local(v.slot, job.spec.schedule.timezone))}) - "
            f'{_e(v.detail)}</summary><div class="pair">'
            f"{_side_html('legacy', v.legacy, v.legacy_lag)}"
            f"{_side_html('celery', v.celery, v.celery_lag)}</div></details>")


def _row(v: SlotVerdict, zone: str) -> str:
    key = "ignored" if v.ignored_by else v.verdict.value
    cls = ' class="ignored"' if v.ignored_by else ""
    ignored = (f"<br><small>ignored by <code>{_e(v.ignored_by)}</code></small>"
               if v.ignored_by else "")
    return (f'<tr data-verdict="{key}"{cls}><td>{_e(_utc(v.slot))}<br><small>'
            f"{_e(_local(v.slot, zone))}</small></td>"
            f'<td class="v"><span style="color:var(--{v.verdict.value})">'
            f"{_e(LABELS[v.verdict.value])}</span>{ignored}</td><td>{_e(v.detail)}</td>"
            f"<td>{_e(_brief(v.legacy))}</td><td>{_e(_brief(v.celery))}</td></tr>")


def _brief(obs: RunRecord | None) -> str:
    if obs is None:
        return "-"
    exit_ = f" exit {obs.exit_status}" if obs.exit_status is not None else ""
    return f"{obs.role.value}/{obs.status.value}{exit_}"


def _mismatch_table(job: JobReport) -> str:
    if not job.mismatches:
        return ""
    rows = "".join(_row(v, job.spec.schedule.timezone) for v in reversed(job.mismatches))
    return (f"<details><summary>{len(job.mismatches)} recent mismatch(es)</summary><table>"
            "<tr><th>slot</th><th>verdict</th><th>detail</th><th>legacy</th><th>celery</th>"
            f"</tr>{rows}</table></details>")


def _readiness_badge(job: JobReport) -> str:
    r = job.readiness
    if job.owner.value == "celery":
        return '<span class="badge ready">flipped</span>'
    basis = f" ({r.basis.value})" if r.basis.value == "timing-only" else ""
    if r.ready:
        return f'<span class="badge ready">ready to flip{_e(basis)}</span>'
    return f'<span class="badge notready">not ready{_e(basis)}</span>'


def _card(i: int, job: JobReport) -> str:
    s, spec = job.summary, job.spec
    present = [k for k in COUNT_KEYS if s.counts.get(k)]
    chips = "".join(_chip(k, s.counts.get(k, 0)) for k in COUNT_KEYS if s.counts.get(k))
    reasons = "".join(f"<li>{_e(r)}</li>" for r in job.readiness.reasons)
    omitted = (f'<p class="omitted">{job.timeline_omitted} older slot(s) not drawn</p>'
               if job.timeline_omitted else "")
    state = "bad" if job.unresolved else "good"
    return (
        f'<article class="job {state}" data-index="{i}" data-job="{_e(spec.id)}" '
        f'data-unresolved="{int(job.unresolved)}" data-verdicts="{" ".join(present)}">'
        f'<div class="head"><h2>{_e(spec.id)}</h2>{_readiness_badge(job)}'
        f'<span class="badge owner">owner: {_e(job.owner.value)}</span>'
        f'<span class="sched"><code>{_e(schedule_text(spec.schedule))}</code> '
        f"{_e(spec.schedule.dialect.value)} · {_e(spec.schedule.timezone)} · "
        f"{job.expected} expected slot(s) · {s.unresolved} unresolved</span></div>"
        f'<div class="counts">{chips or "<span class=empty>no slot in the window</span>"}</div>'
        f'<div class="timeline"></div>{omitted}'
        f'{f"<ul class=reasons>{reasons}</ul>" if reasons else ""}'
        f"{_last_mismatch(job)}{_mismatch_table(job)}</article>"
    )


def _header(report: Report) -> str:
    t = report.totals()
    status = ("good", "no unresolved mismatch") if report.ok else (
        "bad", f"{t['jobs_with_unresolved']} job(s) with unresolved mismatches")
    return (
        '<header class="top"><h1>cron-bridge · shadow report</h1>'
        f'<div class="meta">window {_e(_utc(report.since))} → {_e(_utc(report.until))} · '
        f"generated {_e(_utc(report.generated_at))}</div><div class=summary>"
        f'<span class="stat {status[0]}"><b>{"OK" if report.ok else "!"}</b>{_e(status[1])}</span>'
        f'<span class="stat"><b>{t["jobs"]}</b>jobs</span>'
        f'<span class="stat"><b>{t["expected_slots"]}</b>expected slots</span>'
        f'<span class="stat"><b>{t["counts"]["match"]}</b>matched</span>'
        f'<span class="stat"><b>{t["unresolved"]}</b>unresolved</span>'
        f'<span class="stat"><b>{t["ready"]}</b>ready to flip</span></div></header>'
    )


def _controls(report: Report) -> str:
    t = report.totals()["counts"]
    boxes = "".join(
        f'<label><input type="checkbox" class="vf" value="{k}" checked>{_chip(k, t[k])}</label>'
        for k in COUNT_KEYS
    )
    return ('<section class="controls"><input type="search" id="job-filter" '
            'placeholder="filter jobs (text or glob)" aria-label="filter jobs">'
            f'{boxes}<label><input type="checkbox" id="only-bad">only unresolved</label>'
            '<span class="shown" id="shown"></span></section>')


def render_html(report: Report) -> str:
    """The whole page as one string."""
    data = {"verdicts": VERDICT_ORDER,
            "jobs": [_job_data(i, j, report) for i, j in enumerate(report.jobs)]}
    island = json.dumps(data, separators=(",", ":"))
    island = island.replace("</", "<\\/").replace("<!--", "<\\!--")
    cards = "".join(_card(i, j) for i, j in enumerate(report.jobs)) or (
        '<p class="empty">no job selected</p>')
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>cron-bridge shadow report</title><style>{CSS}</style></head><body>"
        f"{_header(report)}{_controls(report)}<main id=jobs>{cards}</main>"
        f'<script id="report-data" type="application/json">{island}</script>'
        f"<script>{JS}</script></body></html>\n"
    )
