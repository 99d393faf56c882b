"""Beat's messages and ``task-sent`` events as text, built from templates Celery and kombu made.

:class:`MessageTemplate` is one message as ``app.amqp.as_task_v2`` builds it (what
``send_task`` sends); each message copies it with its own task id, arguments, ``argsrepr`` and
``eta``, the only fields ``as_task_v2`` would change. For a transport that takes encoded messages
in bulk, :class:`Wire` goes further: the template goes through kombu's own steps once
(``prepare_message``, then what ``basic_publish`` adds: the body encoding, a delivery tag, the
route), kombu's JSON serializes it, and the text is cut at the fields each message changes
(:class:`Cut`); a message is then the literals joined with its values. :class:`EventText` does
the same for the ``task-sent`` event of each message.

Every value is written as JSON text: ids, base64 and slot texts need no escaping; a job id
with a character JSON or ``repr`` would escape takes ``json.dumps``/``repr`` (:func:`arguments`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from celery.events import Event
from kombu.serialization import dumps
from kombu.utils.json import dumps as json_dumps

TEMPLATE_ID = "00000000-0000-4000-8000-000000000000"  # replaced in every message
VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # RFC 4122 variant bits
ARGS_MARK = ["\x00bridge-args\x00"]  # where each message's arguments go in the body
PLAIN = re.compile(r"[A-Za-z0-9._@:+-]*\Z")  # text that JSON and repr() write as it is


def random_uuids() -> tuple[str, str]:
    """Two random (version 4) UUIDs as text, from one ``os.urandom`` call: a task id and a
    delivery tag, what ``uuid.uuid4()`` gives at a third of the cost."""
    h = os.urandom(32).hex()
    return (f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{VARIANT[h[16]]}{h[17:20]}-{h[20:32]}",
            f"{h[32:40]}-{h[40:44]}-4{h[45:48]}-{VARIANT[h[48]]}{h[49:52]}-{h[52:64]}")


def arguments(job_id: str, slot: str) -> tuple[list[str], str, str, str]:
    """``(args, args as JSON, repr(args), repr(args) as JSON)`` of ``bridge.run_job(job_id,
    slot)``."""
    args = [job_id, slot]
    if PLAIN.match(job_id) and PLAIN.match(slot):
        return (args, f'["{job_id}", "{slot}"]', f"['{job_id}', '{slot}']",
                f'"[\'{job_id}\', \'{slot}\']"')
    argsrepr = repr(args)
    return args, json.dumps(args), argsrepr, json.dumps(argsrepr)


def as_json(text: str) -> str:
    """``json.dumps(text)``, without the call for text that needs no escaping."""
    return f'"{text}"' if PLAIN.match(text) else json.dumps(text)


class MessageTemplate:
    """One batch's message as Celery builds it (``as_task_v2``: the headers, properties and body
    ``send_task`` produces, plus beat's ``celery_beat_task`` header), built once."""

    def __init__(self, app: Any, task_name: str, origin: str, ignore_result: bool,
                 sent_event: bool) -> None:
        msg = app.amqp.as_task_v2(
            TEMPLATE_ID, task_name, ARGS_MARK, {}, argsrepr="", kwargsrepr="{}", origin=origin,
            ignore_result=ignore_result, create_sent_event=sent_event,
        )
        self.headers: dict[str, Any] = {**msg.headers, "celery_beat_task": True}
        self.properties: dict[str, Any] = {**msg.properties, "delivery_mode": 2}
        self.embed = msg.body[2]
        self.content_type, self.encoding, text = dumps(msg.body, serializer="json")
        head, mark, tail = text.partition(json.dumps(ARGS_MARK))
        if not mark:
            raise RuntimeError(f"cannot find the arguments in Celery's message body {text!r}")
        self.body_head, self.body_tail = head, tail
        self.sent_event: dict[str, Any] = msg.sent_event or {}

    def body(self, args_json: str) -> str:
        """The JSON body ``[args, {}, {callbacks, errbacks, chain, chord}]``."""
        return self.body_head + args_json + self.body_tail


class Cut:
    """A JSON text cut at its marked fields: ``build(marks)`` writes the text with each field's
    mark (a string) where its value goes; :meth:`fill` puts JSON text in place of each mark,
    quotes included (one ``%``-format of the literals, done in C)."""

    def __init__(self, names: tuple[str, ...], build: Callable[[dict[str, str]], str]) -> None:
        nonce = uuid.uuid4().hex
        text = build({name: f"@bridge-{name}-{nonce}@" for name in names})
        pieces = re.split(f'"@bridge-({"|".join(names)})-{nonce}@"', text)
        if set(pieces[1::2]) != set(names):
            raise RuntimeError(f"a field is missing from the template {text!r}")
        literals = [p.replace("%", "%%") for p in pieces[0::2]]
        fields = [f"%({name})s" for name in pieces[1::2]]
        self.format = literals[0] + "".join(f + lit for f, lit in zip(fields, literals[1:],
                                                                       strict=True))

    def fill(self, values: Mapping[str, str]) -> str:
        return self.format % values


class Wire:
    """Messages in their final wire form, the JSON envelope kombu's ``_put`` pushes, gathered
    per queue for ``push(pipe, queue, payloads)`` (the transport's ``push_encoded``)."""

    FIELDS = ("id", "argsrepr", "eta", "body", "queue", "tag")

    def __init__(self, template: MessageTemplate, channel: Any, push: Any) -> None:
        if channel.body_encoding != "base64":
            raise RuntimeError(f"unexpected body encoding {channel.body_encoding!r}")
        self.template = template
        self.client_of = channel.conn_or_acquire
        self.push = push

        def build(mark: dict[str, str]) -> str:
            headers = {**template.headers, "id": mark["id"], "root_id": mark["id"],
                       "argsrepr": mark["argsrepr"], "eta": mark["eta"]}
            properties = {**template.properties, "correlation_id": mark["id"]}
            message = channel.prepare_message(mark["body"], 0, template.content_type,
                                              template.encoding, headers, properties)
            message["properties"].update(body_encoding="base64", delivery_tag=mark["tag"])
            message["properties"]["delivery_info"].update(exchange="", routing_key=mark["queue"])
            return str(json_dumps(message))

        self.cut = Cut(self.FIELDS, build)
        self.queues: dict[str, list[str]] = {}
        self.size = 0

    def add(self, queue: str, task_id: str, tag: str, args_json: str, argsrepr_json: str,
            eta: str | None) -> None:
        body = base64.b64encode(self.template.body(args_json).encode()).decode()
        self.queues.setdefault(queue, []).append(self.cut.fill({
            "id": f'"{task_id}"', "argsrepr": argsrepr_json,
            "eta": "null" if eta is None else as_json(eta), "body": f'"{body}"',
            "queue": as_json(queue), "tag": f'"{tag}"'}))
        self.size += 1

    def flush(self) -> None:
        """Push every gathered message (one command per queue), in one round trip."""
        if not self.size:
            return
        with self.client_of() as client, client.pipeline(transaction=False) as pipe:
            for queue, payloads in self.queues.items():
                self.push(pipe, queue, payloads)
            pipe.execute()
        self.queues, self.size = {}, 0


class EventText:
    """The ``task-sent`` event ``send_task`` would publish for a message, as JSON text: the
    event Celery builds (``celery.events.Event`` with the dispatcher's host name, this process's
    pid and UTC offset), cut at the fields each message changes."""

    FIELDS = ("uuid", "args", "eta", "queue", "clock", "timestamp")

    def __init__(self, template: MessageTemplate, hostname: str, utcoffset: int) -> None:
        def build(mark: dict[str, str]) -> str:
            event = Event("task-sent", hostname=hostname, utcoffset=utcoffset, pid=os.getpid(),
                          exchange="", **{**template.sent_event, "uuid": mark["uuid"],
                                          "root_id": mark["uuid"], "args": mark["args"],
                                          "eta": mark["eta"]})
            event.update(queue=mark["queue"], routing_key=mark["queue"], clock=mark["clock"],
                         timestamp=mark["timestamp"])
            return str(json_dumps(event))

        self.cut = Cut(self.FIELDS, build)
        self.content_type, self.encoding, _ = dumps([], serializer="json")

    def event(self, task_id: str, argsrepr_json: str, eta: str | None, queue: str, clock: int,
              timestamp: float) -> str:
        return self.cut.fill({
            "uuid": f'"{task_id}"', "args": argsrepr_json,
            "eta": "null" if eta is None else as_json(eta), "queue": as_json(queue),
            "clock": str(int(clock)), "timestamp": repr(float(timestamp))})

    @staticmethod
    def group(events: list[str]) -> str:
        """Events as one ``task.multi`` body: a JSON list."""
        return "[" + ", ".join(events) + "]"
