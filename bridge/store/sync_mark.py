"""The ``sync_pending`` mark in ``registry_meta``: an import whose RedBeat sync has not completed.

The import writes it in its own transaction (:func:`mark`); only a RedBeat sync that completes,
and began after the mark was written, removes it (:func:`clear_before`). See
:mod:`bridge.services.sync`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bridge.store.models import RegistryMetaRow

PENDING_KEY = "sync_pending"


def mark(session: Session, info: Mapping[str, Any]) -> None:
    """Record, in the caller's transaction, that RedBeat must still be synced."""
    row = session.get(RegistryMetaRow, PENDING_KEY)
    value = json.dumps(dict(info), sort_keys=True)
    if row is None:
        session.add(RegistryMetaRow(key=PENDING_KEY, value=value))
    else:
        row.value = value


def read(session: Session) -> dict[str, Any] | None:
    """The mark's document, if there is one (unreadable text comes back as ``{"raw": ...}``)."""
    row = session.get(RegistryMetaRow, PENDING_KEY)
    if row is None:
        return None
    try:
        doc = json.loads(row.value)
    except ValueError:
        doc = {"raw": row.value}
    return doc if isinstance(doc, dict) else {"raw": doc}


def clear_before(session: Session, started: datetime) -> None:
    """Remove the mark unless it was written after ``started`` (a later import's)."""
    row = session.get(RegistryMetaRow, PENDING_KEY)
    if row is None:
        return
    try:
        marked = datetime.fromisoformat(json.loads(row.value)["marked_at"])
    except (ValueError, KeyError, TypeError):
        marked = None
    if marked is None or marked <= started:
        session.delete(row)
