"""The import-contract test must not silence the bridge's loggers for the tests after it."""

from __future__ import annotations

import logging

import pytest

from tests.architecture import test_architecture as contracts


def test_running_the_import_contracts_leaves_existing_loggers_enabled(
        capfd: pytest.CaptureFixture[str]) -> None:
    import bridge.services.alerts  # noqa: F401  (creates the logger before the lint runs)

    logger = logging.getLogger("bridge.services.alerts")
    assert not logger.disabled
    contracts.test_import_contracts_of_pyproject_hold(capfd)
    assert not logger.disabled, "import-linter's dictConfig disabled the bridge's loggers"
