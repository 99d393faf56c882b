"""Whether a decoded broker queue item is a kombu message (the fields kombu reads), so the
bridge transport can drop foreign items instead of letting kombu stop or reconnect the consumer
(:mod:`bridge.adapters.transport`, found by ``tests/fuzz``)."""

from __future__ import annotations

from typing import Any


def not_a_message(item: Any) -> str | None:
    """Why a decoded queue item is not a kombu message, or None (the fields kombu reads)."""
    if not isinstance(item, dict):
        return f"a JSON {type(item).__name__}, not an object"
    props = item.get("properties")
    if not isinstance(props, dict) or "delivery_tag" not in props:
        return "no properties.delivery_tag"
    for key in ("headers", "delivery_info"):
        value = item.get(key) if key == "headers" else props.get(key)
        if value is not None and not isinstance(value, dict):
            return f"{key} is not an object"
    body, encoding = item.get("body"), props.get("body_encoding")
    if body is not None and not isinstance(body, str | bytes):
        return "body is not a string"
    if encoding not in (None, "base64", "utf-8") and body:
        return f"unknown body_encoding {str(encoding)[:40]!r}"
    if encoding == "base64" and body:
        import base64
        import binascii

        try:
            base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return "body is not valid base64"
    return None
