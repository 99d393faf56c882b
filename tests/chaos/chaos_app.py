"""The bridge's real worker app (``legacy_wrappers.tasks``) with a faster unacked-message sweep.

Kombu's Redis transport re-queues a message left unacknowledged by a dead worker only when a
periodic sweep finds it older than the visibility timeout; the sweep runs about every
``unacked_restore_interval * unacked_restore_throttle`` s (10 x 10 by default). The chaos tests
use a 5 s visibility timeout, so they sweep every second; nothing else differs from production.
"""

from __future__ import annotations

from legacy_wrappers.tasks import app

app.conf.broker_transport_options = {
    **(app.conf.broker_transport_options or {}),
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}

__all__ = ["app"]
