"""The bridge's Celery application: ``celery -A bridge.celery_app worker|beat``.

``app`` is built by the factory (:func:`bridge.adapters.celery_app.make_app`, settings from the
environment) on first access, not at import: importing this module, or any module that
registers tasks (``legacy_wrappers.tasks`` uses ``shared_task``), builds no app. Code that
needs its own app (other settings, a CLI command publishing one message) calls
:func:`make_app`.
"""

from __future__ import annotations

import threading
from typing import Any

from bridge.adapters.celery_app import make_app

BUILD_LOCK = threading.Lock()


def __getattr__(name: str) -> Any:
    """``app``: built once, on first access (then a plain module attribute)."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with BUILD_LOCK:
        built = globals().get("app")
        if built is None:
            built = make_app()
            globals()["app"] = built
        return built
