"""The HTML report rendered by a real headless Chromium: content after JS, and a screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from bridge.core.authority import AuthorityEvent, Owner
from shadow.compare import compare_job
from shadow.report_html import render_html
from shadow.report_model import Report, job_report
from tests.shadow.helpers import make_obs, make_spec, utc

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.integration,  # a real chromium renders the page
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"),
]

SINCE, UNTIL = utc("2026-03-07T00:00:00Z"), utc("2026-03-10T00:00:00Z")
NOW = utc("2026-03-10T00:30:00Z")


def dst_job():  # type: ignore[no-untyped-def]
    """vixie 30 2 * * * in New York, translated through Celery's crontab: wrong on 03-08."""
    spec = make_spec("30 2 * * *", job_id="etc-cron.d-nightly-1", tz="America/New_York")
    legacy = [make_obs("legacy", s, job_id=spec.id)
              for s in ("2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z")]
    celery = [make_obs("celery", s, job_id=spec.id, lag=4)
              for s in ("2026-03-07T07:30:00Z", "2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z")]
    return spec, legacy, celery, ()


def hourly_job():  # type: ignore[no-untyped-def]
    """Hourly, observe-only shadow, all on time except one late celery firing."""
    spec = make_spec("15 * * * *", job_id="etc-crontab-rotate-2", mode="observe")
    slots = [SINCE + timedelta(hours=h, minutes=15) for h in range(72)]
    legacy = [make_obs("legacy", s, job_id=spec.id, lag=1 + (h % 5)) for h, s in enumerate(slots)]
    celery = [make_obs("celery", s, job_id=spec.id, role="observe", status="observed",
                       exit_status=None, lag=95 if h == 40 else 2) for h, s in enumerate(slots)]
    return spec, legacy, celery, ()


def flipped_job():  # type: ignore[no-untyped-def]
    """Every 6 hours; flipped to Celery on 03-08 12:00: legacy stands down from then on."""
    spec = make_spec("0 */6 * * *", job_id="quartz-billing-export", mode="dry-run",
                     fields=("exit_status", "output_digest"))
    flip = utc("2026-03-08T12:00:00Z")
    history = [AuthorityEvent(spec.id, flip, Owner.CELERY, "ops", "ready", False, flip)]
    legacy, celery = [], []
    for h in range(0, 72, 6):
        s = SINCE + timedelta(hours=h)
        if s < flip:
            legacy.append(make_obs("legacy", s, job_id=spec.id, output_digest="a" * 64))
            digest = "b" * 64 if h == 18 else "a" * 64
            celery.append(make_obs("celery", s, job_id=spec.id, output_digest=digest,
                                   output_sample="rows=12\n" if h == 18 else None))
        else:
            legacy.append(make_obs("legacy", s, job_id=spec.id, role="stand-down",
                                   status="stood-down", exit_status=None))
            celery.append(make_obs("celery", s, job_id=spec.id, role="authoritative"))
    return spec, legacy, celery, history


def build() -> Report:
    jobs = []
    for make in (dst_job, hourly_job, flipped_job):
        spec, legacy, celery, history = make()
        verdicts = compare_job(spec, SINCE, UNTIL, NOW, legacy, celery, history=history)
        owner = Owner.CELERY if history else Owner.LEGACY
        jobs.append(job_report(spec, verdicts, owner=owner,
                               expected=sum(1 for v in verdicts if v.verdict != "unexpected_slot")))
    jobs.sort(key=lambda j: j.spec.id)
    return Report(generated_at=NOW, since=SINCE, until=UNTIL, jobs=tuple(jobs))


def chromium(tmp_path: Path, *args: str) -> str:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=3000", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_report_page_renders_jobs_counts_and_timelines_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(build()), encoding="utf-8")
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert 'data-ready="1"' in dom  # the inline script ran to the end
    for job in ("etc-cron.d-nightly-1", "etc-crontab-rotate-2", "quartz-billing-export"):
        assert f'data-job="{job}"' in dom
    assert "3 of 3 jobs shown" in dom
    # per-job verdict counts, rendered as chips
    nightly = dom.split('data-job="etc-cron.d-nightly-1"', 1)[1].split("</article>", 1)[0]
    assert re.search(r"missing celery <b>1</b>", nightly)
    assert re.search(r"unexpected slot <b>1</b>", nightly)
    assert re.search(r"match <b>2</b>", nightly)
    assert "not ready" in nightly
    rotate = dom.split('data-job="etc-crontab-rotate-2"', 1)[1].split("</article>", 1)[0]
    assert re.search(r"match <b>71</b>", rotate) and re.search(r"late <b>1</b>", rotate)
    assert "ready to flip (timing-only)" in rotate
    billing = dom.split('data-job="quartz-billing-export"', 1)[1].split("</article>", 1)[0]
    assert "owner: celery" in billing and "outcome mismatch" in billing
    # the timelines were drawn by the script: one svg per job with its marks
    marks = [int(m) for m in re.findall(r'<svg[^>]*data-marks="(\d+)"', dom)]
    assert len(marks) == 3 and sorted(marks) == [4, 12, 72]
    assert "2026-03-08 03:30 EDT" in nightly and "2026-03-08 03:00 EDT" in nightly
    assert "03:30:00 EDT" in nightly  # the timeline tooltips carry the job's local time too
    shot = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,900", page.as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000


def test_filters_are_applied_from_the_inline_script(tmp_path: Path) -> None:
    """The same page with a filter typed in: checked by running the script's own apply()."""
    html = render_html(build()).replace(
        'id="job-filter" ', 'id="job-filter" value="quartz-*" ')
    page = tmp_path / "filtered.html"
    page.write_text(html, encoding="utf-8")
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert "1 of 3 jobs shown" in dom
    hidden = re.findall(r'<article class="job[^"]*"[^>]*data-job="([^"]+)"[^>]*hidden', dom)
    assert sorted(hidden) == ["etc-cron.d-nightly-1", "etc-crontab-rotate-2"]
