"""Per-job execution policies ``on_lost`` (skip | rerun) and ``repair`` (auto | alert-only):
defaults, the spec's JSON (existing specs keep their hash), the crontab directive, the Quartz
job-data key, ``bridge jobs set`` (audited) and ``bridge jobs show``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.core.errors import SpecError
from bridge.core.spec import (
    CommandHandler,
    Dialect,
    JobSpec,
    LostPolicy,
    Policies,
    RepairPolicy,
    ScheduleSpec,
)
from crontab_import.crontab import parse_crontab
from crontab_import.quartz.xml_file import parse_quartz_xml

NS = "http://www.quartz-scheduler.org/xml/JobSchedulingData"


def spec(**policies: Any) -> JobSpec:
    return JobSpec(id="j", schedule=ScheduleSpec(dialect=Dialect.VIXIE, expression="* * * * *"),
                   handler=CommandHandler(command="true"), policies=Policies(**policies))


def test_defaults_are_skip_and_auto_and_leave_existing_spec_hashes_alone() -> None:
    plain = spec()
    assert (plain.policies.on_lost, plain.policies.repair) == (LostPolicy.SKIP, RepairPolicy.AUTO)
    assert "on_lost" not in plain.to_json()["policies"]  # the document of version 1 unchanged
    assert "repair" not in plain.to_json()["policies"]
    chosen = spec(on_lost="rerun", repair="alert-only")
    doc = chosen.to_json()["policies"]
    assert (doc["on_lost"], doc["repair"]) == ("rerun", "alert-only")
    assert JobSpec.from_json(chosen.to_json()) == chosen
    assert chosen.spec_hash() != plain.spec_hash()
    with pytest.raises(SpecError, match="'maybe' is not a valid LostPolicy"):
        spec(on_lost="maybe")


def test_a_crontab_directive_sets_the_policies_of_the_line_below() -> None:
    text = ("# bridge: id=billing on-lost=rerun\n# bridge: repair=alert-only\n"
            "0 2 * * * /opt/billing\n15 3 * * * /opt/other\n")
    result = parse_crontab(text, file="/var/spool/cron/crontabs/alice", timezone="UTC")
    assert not result.errors
    first, second = (item.job for item in result.items)
    assert first is not None and second is not None
    assert first.id == "billing"
    assert (first.policies.on_lost, first.policies.repair) == ("rerun", "alert-only")
    assert (second.policies.on_lost, second.policies.repair) == ("skip", "auto")
    bad = parse_crontab("# bridge: on-lost=twice\n0 2 * * * x\n",
                        file="/var/spool/cron/crontabs/alice", timezone="UTC")
    assert [(e.line, e.message) for e in bad.errors] == [
        (1, "bad on-lost value in 'on-lost=twice' (expected on-lost=skip|rerun)")]


def quartz(entries: str) -> bytes:
    return (
        f'<?xml version="1.0"?>\n<job-scheduling-data xmlns="{NS}" version="2.0"><schedule>\n'
        "<job><name>n</name><group>g</group><job-class>com.acme.J</job-class>\n"
        f"<job-data-map>{entries}</job-data-map></job>\n"
        "<trigger><cron><name>t</name><job-name>n</job-name><job-group>g</job-group>"
        "<cron-expression>0 0 2 * * ?</cron-expression></cron></trigger>\n"
        "</schedule></job-scheduling-data>\n"
    ).encode()


def entry(key: str, value: str) -> str:
    return f"<entry><key>{key}</key><value>{value}</value></entry>"


def test_a_quartz_job_data_key_sets_the_policies() -> None:
    now = datetime(2026, 12, 4, tzinfo=UTC)
    result = parse_quartz_xml(quartz(entry("bridge.on-lost", "rerun")
                                     + entry("bridge.repair", "alert-only")),
                              file="jobs.xml", now=now, default_timezone="UTC")
    [item] = result.items
    assert item.job is not None and not result.errors
    assert (item.job.policies.on_lost, item.job.policies.repair) == ("rerun", "alert-only")
    default = parse_quartz_xml(quartz(entry("region", "eu")), file="jobs.xml", now=now,
                               default_timezone="UTC")
    assert default.items[0].job is not None
    assert default.items[0].job.policies.on_lost is LostPolicy.SKIP
    bad = parse_quartz_xml(quartz(entry("bridge.on-lost", "often")), file="jobs.xml", now=now,
                           default_timezone="UTC")
    assert ["bridge.on-lost 'often' is not one of skip | rerun" in e.message
            for e in bad.errors] == [True]


def test_jobs_set_changes_the_policies_audited_and_jobs_show_displays_them(cli: Any) -> None:
    from bridge.store.audit import AuditRepo
    from bridge.store.db import Registry
    from bridge.store.repos import JobRepo

    url = "sqlite:///registry.db"
    env = {"BRIDGE_DATABASE_URL": url}
    registry = Registry(url)
    with registry.session() as s:
        JobRepo(s).upsert(spec())
    shown = cli("jobs", "show", "j", "--json", env=env)
    assert (shown.json()["on_lost"], shown.json()["repair"]) == ("skip", "auto")  # type: ignore[index]
    result = cli("--actor", "ops", "jobs", "set", "j", "--on-lost", "rerun", "--repair",
                 "alert-only", "--reason", "idempotent export", "--json", env=env)
    assert result.code == 0, result.err
    assert result.json() == {"job_id": "j", "on_lost": "rerun", "repair": "alert-only",
                             "placement": "host", "queue": "bridge", "changed": True}
    text = cli("jobs", "show", "j", env=env)
    assert "on-lost rerun  repair alert-only" in text.out
    with registry.session() as s:
        stored = JobRepo(s).require("j")
        [audit] = [a for a in AuditRepo(s).query(job_id="j") if a.action == "jobs.set"]
    assert stored.spec.policies.on_lost is LostPolicy.RERUN
    assert (audit.actor, audit.reason) == ("ops", "idempotent export")
    assert audit.before == {"on_lost": "skip", "repair": "auto", "placement": "host",
                            "queue": "bridge"}
    assert audit.after == {"on_lost": "rerun", "repair": "alert-only", "placement": "host",
                           "queue": "bridge"}
    bad = cli("jobs", "set", "j", "--on-lost", "sometimes", env=env)
    assert bad.code == 2 and "--on-lost 'sometimes': expected skip | rerun" in bad.err
    assert "\n" not in bad.err.strip()
    nothing = cli("jobs", "set", "j", env=env)
    assert nothing.code == 2 and "nothing to set" in nothing.err
    registry.dispose()
