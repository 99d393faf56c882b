"""Publishing many ``bridge.run_job`` messages fast, as standard Celery protocol 2 messages.

``app.send_task`` per message costs about 0.5-0.7 ms here: routing, ``saferepr``, two
``maybe_declare`` calls, ``Producer.publish`` bookkeeping, and one broker round trip for the
message plus one for its ``task-sent`` event. :class:`BatchPublisher` keeps the wire format and
cuts the overhead (about 60 us per message, event included, measured by ``bench/dispatch.py``):

* each message is built by Celery itself (``app.amqp.as_task_v2``: the headers, properties and
  body ``send_task`` produces, so a stock worker consumes it), with ``argsrepr`` and ``origin``
  computed cheaply and the ``celery_beat_task`` header Celery's beat always adds;
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

import os
import socket
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


class _Batch:
    """Per-batch constants (looked up once, not once per message) and the per-message work."""

    def __init__(self, publisher: BatchPublisher, channel: Any, send: Any) -> None:
        self.p = publisher
        self.channel = channel
        self.send = send
        self.as_task = publisher.app.amqp.as_task_v2
        self.clock = publisher.app.clock
        self.evd: Any = publisher.dispatcher() if publisher.sent_events else None
        self.utcoffset = utcoffset()
        self.pid = os.getpid()
        self.events: list[dict[str, Any]] = []
        self.before = _listening(signals.before_task_publish)
        self.after = _listening(signals.after_task_publish)

    def publish_one(self, f: SlotMessage) -> None:
        p = self.p
        args = [f.job_id, slot_iso(f.slot)]
        msg = self.as_task(
            str(uuid.uuid4()), p.task_name, args, {}, eta=f.eta, argsrepr=repr(args),
            kwargsrepr="{}", origin=p.origin, ignore_result=p.ignore_result,
            create_sent_event=self.evd is not None,
        )
        headers = msg.headers
        headers["celery_beat_task"] = True
        properties = msg.properties
        properties["delivery_mode"] = 2
        if self.before:
            signals.before_task_publish.send(
                sender=p.task_name, body=msg.body, exchange="", routing_key=f.queue,
                headers=headers, properties=properties, declare=[], retry_policy=None,
            )
        content_type, encoding, body = dumps(msg.body, serializer="json")
        message = self.channel.prepare_message(body, 0, content_type, encoding, headers,
                                               properties)
        self.send(message, exchange="", routing_key=f.queue)
        if self.after:
            signals.after_task_publish.send(
                sender=p.task_name, body=msg.body, headers=headers, exchange="",
                routing_key=f.queue,
            )
        if msg.sent_event is not None:
            self.publish_sent_event(msg.sent_event, f.queue)

    def publish_sent_event(self, fields: dict[str, Any], queue: str) -> None:
        """Queue the ``task-sent`` event ``send_task`` would publish; sent in groups."""
        evd = self.evd
        self.events.append(Event(
            "task-sent", hostname=evd.hostname, utcoffset=self.utcoffset, pid=self.pid,
            clock=self.clock.forward(), queue=queue, exchange="", routing_key=queue, **fields,
        ))
        if len(self.events) >= EVENT_GROUP:
            self.flush_events()

    def flush_events(self) -> None:
        """Publish the queued events as one ``task.multi`` message: a JSON list of events, the
        grouped form Celery's own workers use and every ``EventReceiver`` (Flower) reads."""
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
