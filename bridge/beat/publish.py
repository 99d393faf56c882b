"""Publishing many ``bridge.run_job`` messages fast, as standard Celery protocol 2 messages.

``app.send_task`` per message costs about 0.5-0.7 ms here: routing, ``saferepr``, two
``maybe_declare`` calls, ``Producer.publish`` bookkeeping, and one broker round trip for the
message plus one for its ``task-sent`` event. :class:`BatchPublisher` keeps the wire format and
cuts the overhead to about 20 us of CPU per message, event included (``bench/dispatch.py``):

* the message is built by Celery itself once per batch (``app.amqp.as_task_v2``: the headers,
  properties and body ``send_task`` produces, so a stock worker consumes it, plus the
  ``celery_beat_task`` header Celery's beat always adds); each message copies it with its own
  task id, arguments, ``argsrepr`` and ``eta``, the only fields ``as_task_v2`` would change
  (:mod:`bridge.beat.wire`);
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
* the ``task-sent`` events (``task_send_sent_event``, for Flower; from the event Celery builds,
  as text cut at the fields each message changes) go in the same batch, grouped 100 to a
  message (routing key ``task.multi``, a JSON list: Celery's own grouped event form,
  which Celery workers emit and ``EventReceiver``/Flower read).

A failed batch raises (delivery of that batch is uncertain); the scheduler then keeps the entries
due and publishes again on the next tick (duplicates are suppressed by the worker's claim).
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import Celery, signals
from celery.utils.time import utcoffset
from kombu.common import maybe_declare

from bridge.adapters.redbeat_entries import TASK_NAME
from bridge.beat.wire import EventText, MessageTemplate, Wire, arguments, random_uuids
from bridge.core.dispatch import slot_iso

BATCH_COMMANDS = 1000
EVENT_GROUP = 100  # task-sent events per grouped event message


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
        if self.sent_events and app.conf.event_serializer != "json":
            raise ValueError("beat writes task-sent events as JSON: event_serializer must be "
                             f"'json', not {app.conf.event_serializer!r}")
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


class _Batch:
    """Per-batch constants (looked up once, not once per message) and the per-message work."""

    def __init__(self, publisher: BatchPublisher, channel: Any, send: Any) -> None:
        self.p = publisher
        self.channel = channel
        self.send = send
        self.clock = publisher.app.clock
        self.evd: Any = publisher.dispatcher() if publisher.sent_events else None
        self.template = MessageTemplate(publisher.app, publisher.task_name, publisher.origin,
                                        publisher.ignore_result, self.evd is not None)
        self.events = (EventText(self.template, self.evd.hostname, utcoffset())
                       if self.evd is not None else None)
        self.pending: list[str] = []
        self.before = _listening(signals.before_task_publish)
        self.after = _listening(signals.after_task_publish)
        self.slot_texts: dict[datetime, str] = {}
        push = getattr(channel, "push_encoded", None)
        self.wire = (Wire(self.template, channel, push)
                     if push is not None and not (self.before or self.after) else None)

    def publish_one(self, f: SlotMessage) -> None:
        args, args_json, argsrepr, argsrepr_json = arguments(f.job_id, self.slot_text(f.slot))
        eta = f.eta.isoformat() if f.eta is not None else None
        if self.wire is not None:
            task_id, tag = random_uuids()
            self.wire.add(f.queue, task_id, tag, args_json, argsrepr_json, eta)
            if self.wire.size >= BATCH_COMMANDS:
                self.wire.flush()
        else:
            task_id = str(uuid.uuid4())
            self.through_kombu(f.queue, task_id, args, args_json, argsrepr, eta)
        if self.events is not None:
            self.pending.append(self.events.event(task_id, argsrepr_json, eta, f.queue,
                                                  self.clock.forward(), time.time()))
            if len(self.pending) >= EVENT_GROUP:
                self.flush_events()

    def through_kombu(self, queue: str, task_id: str, args: list[str], args_json: str,
                      argsrepr: str, eta: str | None) -> None:
        """One message through the channel, as ``Producer.publish`` sends it (signals too)."""
        t = self.template
        headers = {**t.headers, "id": task_id, "root_id": task_id, "argsrepr": argsrepr,
                   "eta": eta}
        properties = {**t.properties, "correlation_id": task_id}
        if self.before:
            signals.before_task_publish.send(
                sender=self.p.task_name, body=(args, {}, t.embed), exchange="",
                routing_key=queue, headers=headers, properties=properties, declare=[],
                retry_policy=None,
            )
        message = self.channel.prepare_message(t.body(args_json), 0, t.content_type,
                                               t.encoding, headers, properties)
        self.send(message, exchange="", routing_key=queue)
        if self.after:
            signals.after_task_publish.send(
                sender=self.p.task_name, body=(args, {}, t.embed), headers=headers,
                exchange="", routing_key=queue,
            )

    def slot_text(self, slot: datetime) -> str:
        """``slot_iso``, once per distinct slot of the batch (most share one)."""
        text = self.slot_texts.get(slot)
        if text is None:
            text = self.slot_texts[slot] = slot_iso(slot)
        return text

    def flush_direct(self) -> None:
        if self.wire is not None:
            self.wire.flush()

    def flush_events(self) -> None:
        """Publish the gathered ``task-sent`` events as one ``task.multi`` message: a JSON list
        of events, the grouped form Celery's own workers use and every ``EventReceiver``
        (Flower) reads."""
        if not self.pending or self.events is None:
            return
        evd = self.evd
        message = self.channel.prepare_message(
            self.events.group(self.pending), 0, self.events.content_type, self.events.encoding,
            dict(evd.headers or {}), {"delivery_mode": evd.delivery_mode},
        )
        self.send(message, exchange=evd.exchange.name, routing_key="task.multi")
        self.pending = []


def _batch_session(channel: Any) -> Any:
    """The transport's publish batch (what ``Producer.batch()`` uses), or None if unsupported."""
    create = getattr(channel, "create_publish_batch", None)
    if create is None or not getattr(channel, "supports_batch_publish", True):
        return None
    return create(max_size=BATCH_COMMANDS)
