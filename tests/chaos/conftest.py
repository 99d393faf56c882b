"""The chaos tests' world as a fixture: :class:`tests.chaos.harness.Chaos` on the test's Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.harness import Chaos


@pytest.fixture
def chaos(tmp_path: Path, redis_url: str) -> Iterator[Chaos]:
    """Registry file, Celery client, processes (closed after the test); visibility timeout
    3600 s: a dead worker's message is not redelivered during a test unless it says so."""
    c = Chaos(tmp_path, redis_url)
    yield c
    c.close()
