"""The plugin jar and the test classes, built once per session (tests/quartz_plugin only)."""

from __future__ import annotations

import pytest

from tests.quartz_plugin import harness


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> harness.Built:
    reason = harness.unavailable_reason()
    if reason is not None:
        pytest.skip(f"Quartz plugin tests need Java: {reason}")
    return harness.compile_all(tmp_path_factory.mktemp("quartz-build"))
