"""Publishing many ``bridge.run_job`` messages fast, as standard Celery protocol 2 messages.

``app.send_task`` per message costs about 0.5-0.7 ms here: routing, ``saferepr``, two
``maybe_declare`` calls, ``Producer.publish`` bookkeeping, and one broker round trip for the
message plus one for its ``task-sent`` event. :class:`BatchPublisher` keeps the wire format and
cuts the overhead to about 20 us of CPU per message, event included (``bench/dispatch.py``):

* the message is built by Celery itself once per batch (``app.amqp.as_task_v2``: the headers,
  properties and body ``send_task`` produces, so a stock worker consumes it, plus the
  ``celery_beat_task`` header Celery's beat always adds); each message copies it with its own
  task id, arguments, ``argsrepr`` and ``eta``, the only fields ``as_task_v2`` would change;
* on the bridge's Redis transport (``push_encoded``), the message is written in its final wire
  form, the JSON envelope kombu's ``_put`` would push, from a text template cut at the fields
  each message changes (task id, arguments, ``eta``, queue, body, delivery tag), and every
  queue's messages of the batch go out in one ``LPUSH``, 1,000 messages per round trip;
* on any other transport, or when someone listens to ``before_task_publish`` /
  ``after_task_publish`` (the signals are then sent for each message), each message is
  serialized and wrapped by the channel as ``Producer.publish`` does (``kombu.serialization.dumps``
  then ``channel.prepare_message``) and handed to the transport's publish batch
  (``channel.create_publish_batch``, the session ``Producer.batch()`` uses, kombu >= 5.7): on
  Redis, pipelined commands, 1,000 per round trip; a transport without batches gets one
  ``basic_publish`` per message;
* every queue (and the event exchange) is declared once per batch, not once per message;
* the ``task-sent`` events (``task_send_sent_event``, for Flower) go in the same batch, grouped
  100 to a message (routing key ``task.multi``, a JSON list: Celery's own grouped event form,
  which Celery workers emit and ``EventReceiver``/Flower read).

A failed batch raises (delivery of that batch is uncertain); the scheduler then keeps the entries
due and publishes again on the next tick (duplicates are suppressed by the worker's claim).
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import Celery, signals
from celery.events import Event
from celery.utils.time import utcoffset
from kombu.common import maybe_declare
from kombu.serialization import dumps
from kombu.utils.json import dumps as json_dumps

from bridge.adapters.redbeat_entries import TASK_NAME
from bridge.core.dispatch import slot_iso

BATCH_COMMANDS = 1000
EVENT_GROUP = 100  # task-sent events per grouped event message
TEMPLATE_ID = "00000000-0000-4000-8000-000000000000"  # replaced in every message
VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # RFC 4122 variant bits
ARGS_MARK = ["\x00bridge-args\x00"]  # where each message's arguments go in the body


@dataclass(frozen=True)
class SlotMessage:
    """One message to publish: the slot travels in the message, ``eta`` only when jittered."""

    job_id: str
    slot: datetime
    queue: str
    eta: datetime | None = None


def random_uuids() -> tuple[str, str]:
    """Two random (version 4) UUIDs as text, from one ``os.urandom`` call: a task id and a
    delivery tag, what ``uuid.uuid4()`` gives at a third of the cost."""
    h = os.urandom(32).hex()
    return (f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{VARIANT[h[16]]}{h[17:20]}-{h[20:32]}",
            f"{h[32:40]}-{h[40:44]}-4{h[45:48]}-{VARIANT[h[48]]}{h[49:52]}-{h[52:64]}")


def _listening(signal: Any) -> bool:
    return bool(getattr(signal, "receivers", None))


class BatchPublisher:
    """Publishes :class:`SlotMessage` lists through one producer (see the module doc)."""

    def __init__(self, app: Celery, task_name: str = TASK_NAME) -> None:
        self.app = app
        self.task_name = task_name
        self.origin = f"beat@{socket.gethostname()}"
        self.sent_events = bool(app.conf.task_send_sent_event)
        self.ignore_result = bool(app.conf.task_ignore_result)
        self._evd: Any = None

    def publish(self, producer: Any, firings: Sequence[SlotMessage]) -> int:
        """Publish every firing through ``producer``'s channel; raises on a broker error."""
        if not firings:
            return 0
        channel = producer.channel
        self._declare(channel, {f.queue for f in firings})
        session = _batch_session(channel)
        send = session.publish if session is not None else channel.basic_publish
        batch = _Batch(self, channel, send)
        try:
            for firing in firings:
                batch.publish_one(firing)
            batch.flush_direct()
            batch.flush_events()
            if session is not None:
                session.flush()
        except BaseException:
            if session is not None:
                session.discard()
            raise
        finally:
            if session is not None:
                session.close()
        return len(firings)

    def _declare(self, channel: Any, queues: set[str]) -> None:
        amqp = self.app.amqp
        for name in sorted(queues):
            maybe_declare(amqp.queues[name], channel)
        if self.sent_events:
            maybe_declare(self.dispatcher().exchange, channel)

    def dispatcher(self) -> Any:
        if self._evd is None:
            self._evd = self.app.events.Dispatcher(enabled=False)
        return self._evd


class _Template:
    """One batch's message as Celery builds it (``app.amqp.as_task_v2``: the headers, properties
    and body ``send_task`` produces, plus beat's ``celery_beat_task`` header), built once; each
    message is a copy with its own task id, arguments, ``argsrepr`` and ``eta``: what
    ``as_task_v2`` would change for it, at a fraction of the cost."""

    def __init__(self, publisher: BatchPublisher, sent_event: bool) -> None:
        msg = publisher.app.amqp.as_task_v2(
            TEMPLATE_ID, publisher.task_name, ARGS_MARK, {}, argsrepr="", kwargsrepr="{}",
            origin=publisher.origin, ignore_result=publisher.ignore_result,
            create_sent_event=sent_event,
        )
        self.headers: dict[str, Any] = {**msg.headers, "celery_beat_task": True}
        self.properties: dict[str, Any] = {**msg.properties, "delivery_mode": 2}
        self.embed = msg.body[2]
        self.content_type, self.encoding, text = dumps(msg.body, serializer="json")
        head, mark, tail = text.partition(json.dumps(ARGS_MARK))
        if not mark:
            raise RuntimeError(f"cannot find the arguments in Celery's message body {text!r}")
        self.body_head, self.body_tail = head, tail
        self.sent_event: dict[str, Any] | None = msg.sent_event

    def body(self, args: list[str]) -> str:
        """The JSON body ``[args, {}, {callbacks, errbacks, chain, chord}]``."""
        return self.body_head + json.dumps(args) + self.body_tail


class _Wire:
    """The batch's message in its final wire form, as text cut at the fields each message
    changes, for a transport that takes encoded messages in bulk (``push_encoded``: one
    ``LPUSH`` of many messages per queue, what kombu's ``_put`` does for one).

    The template message goes through kombu's own steps once (``prepare_message``, then what
    ``basic_publish`` adds: the body encoding, a delivery tag, the route) and is serialized by
    kombu's JSON; each message then fills in its task id, arguments, ``eta``, queue, body and a
    fresh delivery tag, each written as JSON text."""

    FIELDS = ("id", "argsrepr", "eta", "body", "queue", "tag")

    def __init__(self, template: _Template, channel: Any, push: Any) -> None:
        if channel.body_encoding != "base64":
            raise RuntimeError(f"unexpected body encoding {channel.body_encoding!r}")
        self.template = template
        self.client_of = channel.conn_or_acquire
        self.push = push
        nonce = uuid.uuid4().hex
        mark = {name: f"@bridge-{name}-{nonce}@" for name in self.FIELDS}
        headers = {**template.headers, "id": mark["id"], "root_id": mark["id"],
                   "argsrepr": mark["argsrepr"], "eta": mark["eta"]}
        properties = {**template.properties, "correlation_id": mark["id"]}
        message = channel.prepare_message(mark["body"], 0, template.content_type,
                                          template.encoding, headers, properties)
        message["properties"].update(body_encoding="base64", delivery_tag=mark["tag"])
        message["properties"]["delivery_info"].update(exchange="", routing_key=mark["queue"])
        cut = re.split(f'"@bridge-({"|".join(self.FIELDS)})-{nonce}@"', json_dumps(message))
        self.literals: list[str] = cut[0::2]
        self.fields: list[str] = cut[1::2]
        self.queues: dict[str, list[str]] = {}
        self.routes: dict[str, str] = {}
        self.size = 0

    def envelope(self, task_id: str, tag: str, args: list[str], argsrepr: str, eta: str | None,
                 queue: str) -> str:
        body = base64.b64encode(self.template.body(args).encode()).decode()
        route = self.routes.get(queue)
        if route is None:
            route = self.routes[queue] = json.dumps(queue)
        value = {"id": f'"{task_id}"', "argsrepr": json.dumps(argsrepr),
                 "eta": "null" if eta is None else json.dumps(eta), "body": f'"{body}"',
                 "queue": route, "tag": f'"{tag}"'}
        out = [self.literals[0]]
        for name, literal in zip(self.fields, self.literals[1:], strict=True):
            out += (value[name], literal)
        return "".join(out)

    def add(self, queue: str, payload: str) -> None:
        self.queues.setdefault(queue, []).append(payload)
        self.size += 1

    def flush(self) -> None:
        """Push every queued message (one command per queue), in one round trip."""
        if not self.size:
            return
        with self.client_of() as client, client.pipeline(transaction=False) as pipe:
            for queue, payloads in self.queues.items():
                self.push(pipe, queue, payloads)
            pipe.execute()
        self.queues, self.size = {}, 0


class _Batch:
    """Per-batch constants (looked up once, not once per message) and the per-message work."""

    def __init__(self, publisher: BatchPublisher, channel: Any, send: Any) -> None:
        self.p = publisher
        self.channel = channel
        self.send = send
        self.clock = publisher.app.clock
        self.evd: Any = publisher.dispatcher() if publisher.sent_events else None
        self.template = _Template(publisher, self.evd is not None)
        self.event_fields: dict[str, Any] = {}
        if self.evd is not None:
            self.event_fields = Event(
                "task-sent", hostname=self.evd.hostname, utcoffset=utcoffset(), pid=os.getpid(),
                exchange="", **(self.template.sent_event or {}),
            )
        self.events: list[dict[str, Any]] = []
        self.before = _listening(signals.before_task_publish)
        self.after = _listening(signals.after_task_publish)
        self.slot_texts: dict[datetime, str] = {}
        push = getattr(channel, "push_encoded", None)
        self.wire = (_Wire(self.template, channel, push)
                     if push is not None and not (self.before or self.after) else None)

    def publish_one(self, f: SlotMessage) -> None:
        if self.wire is not None:
            self.publish_direct(f)
            return
        t = self.template
        task_id = str(uuid.uuid4())
        args = [f.job_id, slot_iso(f.slot)]
        argsrepr = repr(args)
        eta = f.eta.isoformat() if f.eta is not None else None
        headers = {**t.headers, "id": task_id, "root_id": task_id, "argsrepr": argsrepr,
                   "eta": eta}
        properties = {**t.properties, "correlation_id": task_id}
        if self.before:
            signals.before_task_publish.send(
                sender=self.p.task_name, body=(args, {}, t.embed), exchange="",
                routing_key=f.queue, headers=headers, properties=properties, declare=[],
                retry_policy=None,
            )
        message = self.channel.prepare_message(t.body(args), 0, t.content_type, t.encoding,
                                               headers, properties)
        self.send(message, exchange="", routing_key=f.queue)
        if self.after:
            signals.after_task_publish.send(
                sender=self.p.task_name, body=(args, {}, t.embed), headers=headers,
                exchange="", routing_key=f.queue,
            )
        self.sent(task_id, argsrepr, eta, f.queue)

    def publish_direct(self, f: SlotMessage) -> None:
        """The message as kombu's ``_put`` would push it, queued for one ``LPUSH`` per queue."""
        wire = self.wire
        assert wire is not None
        task_id, tag = random_uuids()
        args = [f.job_id, self.slot_text(f.slot)]
        argsrepr = repr(args)
        eta = f.eta.isoformat() if f.eta is not None else None
        wire.add(f.queue, wire.envelope(task_id, tag, args, argsrepr, eta, f.queue))
        if wire.size >= BATCH_COMMANDS:
            self.flush_direct()
        self.sent(task_id, argsrepr, eta, f.queue)

    def slot_text(self, slot: datetime) -> str:
        """``slot_iso``, once per distinct slot of the batch (most share one)."""
        text = self.slot_texts.get(slot)
        if text is None:
            text = self.slot_texts[slot] = slot_iso(slot)
        return text

    def flush_direct(self) -> None:
        if self.wire is not None:
            self.wire.flush()

    def sent(self, task_id: str, argsrepr: str, eta: str | None, queue: str) -> None:
        """Queue the ``task-sent`` event ``send_task`` would publish for this message."""
        if self.evd is None:
            return
        self.events.append({
            **self.event_fields, "uuid": task_id, "root_id": task_id, "args": argsrepr,
            "eta": eta, "queue": queue, "routing_key": queue, "clock": self.clock.forward(),
            "timestamp": time.time(),
        })
        if len(self.events) >= EVENT_GROUP:
            self.flush_events()

    def flush_events(self) -> None:
        """Publish the queued ``task-sent`` events (the ones ``send_task`` would publish) as one
        ``task.multi`` message: a JSON list of events, the grouped form Celery's own workers
        use and every ``EventReceiver`` (Flower) reads."""
        if not self.events:
            return
        evd = self.evd
        content_type, encoding, body = dumps(self.events, serializer=evd.serializer)
        message = self.channel.prepare_message(
            body, 0, content_type, encoding, dict(evd.headers or {}),
            {"delivery_mode": evd.delivery_mode},
        )
        self.send(message, exchange=evd.exchange.name, routing_key="task.multi")
        self.events = []


def _batch_session(channel: Any) -> Any:
    """The transport's publish batch (what ``Producer.batch()`` uses), or None if unsupported."""
    create = getattr(channel, "create_publish_batch", None)
    if create is None or not getattr(channel, "supports_batch_publish", True):
        return None
    return create(max_size=BATCH_COMMANDS)
