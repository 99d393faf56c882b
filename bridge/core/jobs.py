"""Jobs as the registry knows them: the stored spec and the source a job id belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bridge.core.spec import JobSpec


@dataclass(frozen=True)
class SourceOwner:
    """The source a job id belongs to: the import of (host, file, kind) that created it."""

    host: str | None
    file: str
    kind: str

    def same_source(self, other: SourceOwner) -> bool:
        hosts_match = self.host is None or other.host is None or self.host == other.host
        return hosts_match and self.file == other.file and self.kind == other.kind

    def to_json(self) -> dict[str, str | None]:
        return {"host": self.host, "file": self.file, "kind": self.kind}


@dataclass(frozen=True)
class StoredJob:
    spec: JobSpec
    spec_hash: str
    paused: bool
    paused_reason: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def host(self) -> str | None:
        """The host the job belongs to (``spec.host``; see :mod:`bridge.core.hosts`)."""
        return self.spec.host
