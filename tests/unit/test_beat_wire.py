"""Beat's message text (bridge.beat.wire): what it writes is what json/repr/uuid4 would write
(pure, no broker)."""

from __future__ import annotations

import json
import uuid

import pytest

from bridge.beat.wire import Cut, EventText, MessageTemplate, arguments, random_uuids
from bridge.celery_app import make_app


@pytest.mark.parametrize("job_id", ["etc-cron.d-backup-3", "alice@host:1", 'quote"d', "back\\slash",
                                    "it's", "tab\there", "üñï"])
def test_arguments_are_written_as_json_and_repr_write_them(job_id: str) -> None:
    args, args_json, argsrepr, argsrepr_json = arguments(job_id, "2026-03-08T07:00:00Z")
    assert args == [job_id, "2026-03-08T07:00:00Z"]
    assert json.loads(args_json) == args and argsrepr == repr(args)
    assert json.loads(argsrepr_json) == repr(args)


def test_random_uuids_are_distinct_version_4_uuids() -> None:
    seen = set()
    for _ in range(500):
        for text in random_uuids():
            parsed = uuid.UUID(text)
            assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text
            seen.add(text)
    assert len(seen) == 1000


def test_a_cut_refuses_a_template_that_lost_a_field() -> None:
    with pytest.raises(RuntimeError, match="missing"):
        Cut(("a", "b"), lambda mark: json.dumps({"a": mark["a"]}))
    cut = Cut(("a", "b"), lambda mark: json.dumps({"a": mark["a"], "n": [mark["b"]],
                                                   "p": "100%s", "q": mark["a"]}))
    assert json.loads(cut.fill({"a": '"x"', "b": "12.5"})) == \
        {"a": "x", "n": [12.5], "p": "100%s", "q": "x"}


def test_an_event_reads_back_with_each_message_s_fields() -> None:
    app = make_app()
    try:
        template = MessageTemplate(app, "bridge.run_job", "beat@h", True, sent_event=True)
    finally:
        app.close()
    events = EventText(template, "beat@h", 0)
    _, _, argsrepr, argsrepr_json = arguments("j'1", "2026-03-08T07:00:00Z")
    text = events.event("id-1", argsrepr_json, None, "q1", 7, 1772953200.25)
    [event] = json.loads(events.group([text]))
    assert event["type"] == "task-sent" and event["name"] == "bridge.run_job"
    assert (event["uuid"], event["root_id"], event["args"], event["eta"]) == \
        ("id-1", "id-1", argsrepr, None)
    assert (event["queue"], event["routing_key"], event["clock"], event["timestamp"]) == \
        ("q1", "q1", 7, 1772953200.25)
