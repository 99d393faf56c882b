"""The plugin's pure parts against their Python counterparts, in one JVM: the authority file
reader (bridge.services.authority_files), the job id rule
(crontab_import.quartz.items.safe_job_id) and the hand-written JSON (json.loads)."""

from __future__ import annotations

import json
import random
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.services import authority_files
from crontab_import.quartz.items import safe_job_id
from tests.quartz_plugin import harness

REASON = harness.unavailable_reason()
pytestmark = [
    pytest.mark.java,
    pytest.mark.integration,
    pytest.mark.skipif(REASON is not None, reason=f"Quartz plugin tests need Java: {REASON}"),
]
BASE = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def probe(built: harness.Built, requests: list[str]) -> list[str]:
    cmd = ["java", "-Xshare:auto", "-cp", built.classpath(), "cronbridge.quartz.Probe"]
    proc = subprocess.run(cmd, input="\n".join(requests) + "\n", capture_output=True, text=True,
                          encoding="utf-8", timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("\n")[:-1]



def test_java_answers_like_the_registry_for_every_slot_and_every_history(
    built: harness.Built, tmp_path: Path
) -> None:
    rng = random.Random(7)
    requests, expected = [], []
    for n in range(40):
        job_id = f"quartz.job-{n}"
        events: list[tuple[datetime | None, str]] = [
            (None if rng.random() < 0.2 else BASE + timedelta(seconds=rng.randrange(0, 100)),
             rng.choice(["legacy", "celery"])) for _ in range(rng.randrange(0, 6))]
        authority = authority_files.resolve(job_id, events, {"dialect": "quartz"})
        authority_files.write(tmp_path, authority)
        for second in range(-2, 103, 3):
            slot = BASE + timedelta(seconds=second)
            requests.append(f"owner\t{tmp_path}\t{job_id}\t{int(slot.timestamp())}")
            expected.append(authority.owner_at(slot))
    requests.append(f"owner\t{tmp_path}\tno.file\t{int(BASE.timestamp())}")
    expected.append("legacy")
    (tmp_path / "bad.authority").write_text("cron-bridge-authority 2\njob bad\ninitial celery\n")
    requests.append(f"owner\t{tmp_path}\tbad\t{int(BASE.timestamp())}")
    expected.append("legacy")  # an unknown version is not trusted: legacy keeps the slot
    (tmp_path / "other.authority").write_text("cron-bridge-authority 1\njob someone-else\n"
                                              "initial celery\n")
    requests.append(f"owner\t{tmp_path}\tother\t{int(BASE.timestamp())}")
    expected.append("legacy")
    assert probe(built, requests) == expected


def test_java_job_ids_are_the_importers(built: harness.Built) -> None:
    raw = ["DEFAULT.nightly", "billing.invoice run", "..hidden.job", "grp.ünïcödé.名前",
           "grp.emoji\U0001f600x", "g." + "x" * 250, "___", "a@b.c-d_e"]
    assert probe(built, [f"sanitize\t{r}" for r in raw]) == [safe_job_id(r) for r in raw]


def test_java_json_strings_decode_to_the_original_text(built: harness.Built) -> None:
    texts = ['plain', 'q"uote', "back\\slash", "ctl\x01\x1f\x7f", "é\u2028\U0001f600", "/ </"]
    answers = probe(built, [f"json\t{t}" for t in texts])
    assert [json.loads(a) for a in answers] == texts
    assert all(a.isascii() for a in answers)
