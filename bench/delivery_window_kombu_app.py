"""The bridge's worker app on kombu's own Redis transport (``BRPOP``), for
``bench/delivery_window.py``: the comparison baseline. Never use it in production."""

from __future__ import annotations

from legacy_wrappers.tasks import app

app.conf.broker_transport = "redis"

__all__ = ["app"]
