"""Fixtures shared by the wrapper tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bridge.store.db import Registry
from tests.support.shim import add_job


@pytest.fixture
def registry(db_url: str) -> Iterator[Registry]:
    """A registry (SQLite and PostgreSQL: ``db_url``) holding the shim's test job, every minute."""
    reg = Registry(db_url)
    add_job(reg, "* * * * *")
    yield reg
    reg.dispose()
