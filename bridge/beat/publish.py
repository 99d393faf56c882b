"""Publishing many ``bridge.run_job`` messages fast, as standard Celery protocol 2 messages.

``app.send_task`` per message costs about 0.5-0.7 ms here: routing, ``saferepr``, two
``maybe_declare`` calls, ``Producer.publish`` bookkeeping, and one broker round trip for the
message plus one for its ``task-sent`` event. :class:`BatchPublisher` keeps the wire format and
cuts the overhead (about 60 us per message, event included, measured by ``bench/dispatch.py``):

* the message is built by Celery itself once per batch (``app.amqp.as_task_v2``: the headers,
  properties and body ``send_task`` produces, so a stock worker consumes it, plus the
  ``celery_beat_task`` header Celery's beat always adds); each message copies it with its own
  task id, arguments, ``argsrepr`` and ``eta``, the only fields ``as_task_v2`` would change;
* it is serialized (JSON) and wrapped by the channel exactly as ``Producer.publish`` does
  (``kombu.serialization.dumps`` then ``channel.prepare_message``), then handed to the transport's
  publish batch (``channel.create_publish_batch``, the session ``Producer.batch()`` uses, kombu >=
  5.7): on Redis, pipelined LPUSH / PUBLISH, 1,000 commands per round trip. A transport without
  batches gets one ``basic_publish`` per message on the same channel;
* every queue (and the event exchange) is declared once per batch, not once per message;
* the ``task-sent`` events (``task_send_sent_event``, for Flower) go in the same batch, grouped
  100 to a message (routing key ``task.multi``, a JSON list: Celery's own grouped event form,
  which Celery workers emit and ``EventReceiver``/Flower read);
* ``before_task_publish`` / ``after_task_publish`` signals are sent only when someone listens.

A failed batch raises (delivery of that batch is uncertain); the scheduler then keeps the entries
due and publishes again on the next tick (duplicates are suppressed by the worker's claim).
"""

from __future__ import annotations

import json
import os
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

from bridge.adapters.redbeat_entries import TASK_NAME
from bridge.core.dispatch import slot_iso

BATCH_COMMANDS = 1000
EVENT_GROUP = 100  # task-sent events per grouped event message
TEMPLATE_ID = "00000000-0000-4000-8000-000000000000"  # replaced in every message
ARGS_MARK = ["\x00bridge-args\x00"]  # where each message's arguments go in the body


@dataclass(frozen=True)
class SlotMessage:
    """One message to publish: the slot travels in the message, ``eta`` only when jittered."""

    job_id: str
    slot: datetime
    queue: str
    eta: datetime | None = None


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

    def publish_one(self, f: SlotMessage) -> None:
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
        if self.evd is not None:
            self.events.append({
                **self.event_fields, "uuid": task_id, "root_id": task_id, "args": argsrepr,
                "eta": eta, "queue": f.queue, "routing_key": f.queue,
                "clock": self.clock.forward(), "timestamp": time.time(),
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
