"""The audit trail's values: who did what to which job, and the actor running this process."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any


def current_actor() -> str:
    """The OS user running this process (``--actor`` overrides it in the CLI)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    job_id: str | None
    reason: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    job_host: str | None = None  # the job's host when the record was written

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "job_id": self.job_id,
            "host": self.job_host,
            "reason": self.reason,
            "before": self.before,
            "after": self.after,
        }
