"""What beat's batch publisher puts on the broker is what ``app.send_task`` puts there: the same
envelope, headers, properties and body, field by field (ids aside), and the same ``task-sent``
events, read raw from a real Redis."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from bridge.beat.publish import EVENT_GROUP, BatchPublisher, SlotMessage
from bridge.celery_app import make_app
from bridge.core.config import load_settings

pytestmark = pytest.mark.integration

SLOT = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
IDS = ("id", "root_id")


def _decoded(raw: bytes) -> dict[str, Any]:
    envelope = json.loads(raw)
    envelope["body"] = json.loads(base64.b64decode(envelope["body"]))
    return envelope


def _without_ids(envelope: dict[str, Any]) -> dict[str, Any]:
    headers = {k: v for k, v in envelope["headers"].items() if k not in IDS}
    properties = {k: v for k, v in envelope["properties"].items()
                  if k not in ("correlation_id", "delivery_tag")}
    return {**envelope, "headers": headers, "properties": properties}


def test_a_batch_message_is_the_message_send_task_makes(redis_url: str) -> None:
    app = make_app(load_settings({"BRIDGE_REDIS_URL": redis_url}))
    client = redis.Redis.from_url(redis_url)
    eta = datetime(2026, 3, 8, 7, 0, 7, tzinfo=UTC)
    try:
        with app.producer_or_acquire() as producer:
            assert callable(producer.channel.push_encoded)  # the bulk path is the one tested
            sent = BatchPublisher(app).publish(producer, [
                SlotMessage("job-a", SLOT, "q1"), SlotMessage("job-b", SLOT, "q2", eta=eta)])
        for job, queue, when in (("job-a", "q1", None), ("job-b", "q2", eta)):
            app.send_task("bridge.run_job", [job, "2026-03-08T07:00:00Z"], queue=f"ref-{queue}",
                          eta=when, headers={"celery_beat_task": True})
        assert sent == 2
        for queue in ("q1", "q2"):
            [ours] = client.lrange(queue, 0, -1)
            [theirs] = client.lrange(f"ref-{queue}", 0, -1)
            mine, ref = _decoded(ours), _decoded(theirs)
            assert mine["headers"]["id"] == mine["headers"]["root_id"] \
                == mine["properties"]["correlation_id"] != ref["headers"]["id"]
            assert mine["properties"]["delivery_info"]["routing_key"] == queue
            ref["properties"]["delivery_info"]["routing_key"] = queue
            ref["properties"]["delivery_mode"] = 2  # beat publishes persistent messages
            assert ref["headers"]["origin"] != mine["headers"]["origin"] == "beat@" + \
                mine["headers"]["origin"].split("@", 1)[1]
            ref["headers"]["origin"] = mine["headers"]["origin"]
            ref["headers"]["ignore_result"] = mine["headers"]["ignore_result"]
            assert mine["properties"]["reply_to"] == ""  # beat expects no reply
            ref["properties"]["reply_to"] = ""
            assert _without_ids(mine) == _without_ids(ref)
        eta_header = _decoded(client.lrange("q2", 0, -1)[0])["headers"]["eta"]
        assert eta_header == eta.isoformat()
    finally:
        client.close()
        app.close()


def test_task_sent_events_go_out_grouped_with_each_message_s_fields(redis_url: str) -> None:
    app = make_app(load_settings({"BRIDGE_REDIS_URL": redis_url}))
    client = redis.Redis.from_url(redis_url)
    listener = client.pubsub()
    listener.psubscribe("*celeryev*")
    listener.get_message(timeout=1.0)  # the subscription's confirmation
    count = EVENT_GROUP + 5
    try:
        with app.producer_or_acquire() as producer:
            BatchPublisher(app).publish(producer, [SlotMessage(f"job-{i}", SLOT, "bridge")
                                                   for i in range(count)])
        queued = {_decoded(raw)["headers"]["id"]: _decoded(raw)["body"][0]
                  for raw in client.lrange("bridge", 0, -1)}
        events: list[dict[str, Any]] = []
        while (note := listener.get_message(timeout=2.0)) is not None:
            if note["type"] == "pmessage":
                envelope = json.loads(note["data"])
                events += json.loads(base64.b64decode(envelope["body"]))
    finally:
        listener.close()
        client.close()
        app.close()
    assert len(events) == count and len(queued) == count
    for event in events:
        assert event["type"] == "task-sent" and event["name"] == "bridge.run_job"
        assert event["queue"] == event["routing_key"] == "bridge"
        args = queued[event["uuid"]]  # every event names a queued message, with its arguments
        assert event["args"] == repr(args) and event["root_id"] == event["uuid"]
    clocks = [e["clock"] for e in events]
    assert clocks == sorted(clocks) and len(set(clocks)) == count


def test_publish_signal_listeners_see_every_message_and_the_wire_form_is_unchanged(
        redis_url: str) -> None:
    """With a ``before_task_publish`` listener beat publishes message by message through kombu
    (the listener may look at each one); what lands on the queue is the same."""
    from celery import signals

    app = make_app(load_settings({"BRIDGE_REDIS_URL": redis_url}))
    client = redis.Redis.from_url(redis_url)
    seen: list[str] = []

    def listener(sender: str, headers: dict[str, Any], **_: Any) -> None:
        seen.append(headers["id"])

    firings = [SlotMessage(f"job-{i}", SLOT, "bridge") for i in range(3)]
    try:
        with app.producer_or_acquire() as producer:
            BatchPublisher(app).publish(producer, firings)
            direct = [_decoded(raw) for raw in client.lrange("bridge", 0, -1)]
            client.delete("bridge")
            signals.before_task_publish.connect(listener, weak=False)
            try:
                BatchPublisher(app).publish(producer, firings)
            finally:
                signals.before_task_publish.disconnect(listener)
            routed = [_decoded(raw) for raw in client.lrange("bridge", 0, -1)]
    finally:
        client.close()
        app.close()
    assert sorted(seen) == sorted(m["headers"]["id"] for m in routed) and len(seen) == 3
    assert [_without_ids(m) for m in routed] == [_without_ids(m) for m in direct]
