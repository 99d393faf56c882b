"""Secret-looking environment values are masked by name (bridge.core.secrets, pure)."""

from __future__ import annotations

import json
import logging

import pytest

from bridge.core.config import load_settings
from bridge.core.errors import ConfigError
from bridge.core.secrets import DEFAULT_PATTERNS, MASK, is_secret, mask_env, mask_spec, patterns


@pytest.mark.parametrize("name", ["PGPASSWORD", "db_password", "AWS_SECRET_ACCESS_KEY",
                                  "GITHUB_TOKEN", "api_key", "SSH_KEYFILE", "MySecret"])
def test_names_matching_the_default_patterns_are_secret_case_insensitively(name: str) -> None:
    assert is_secret(name)


@pytest.mark.parametrize("name", ["PATH", "HOME", "MAILTO", "SHELL", "PGUSER", "CRON_TZ"])
def test_ordinary_names_are_not_secret(name: str) -> None:
    assert not is_secret(name)


def test_mask_env_masks_values_of_secret_names_only_and_keeps_order() -> None:
    env = [("PATH", "/bin"), ("PGPASSWORD", "hunter2"), ("EMPTY_TOKEN", "")]
    assert mask_env(env) == {"PATH": "/bin", "PGPASSWORD": MASK, "EMPTY_TOKEN": ""}
    assert list(mask_env(dict(env))) == ["PATH", "PGPASSWORD", "EMPTY_TOKEN"]


def test_mask_spec_masks_env_and_job_data_at_any_depth_without_mutating() -> None:
    spec = {"handler": {"env": [["PGPASSWORD", "hunter2"], ["PATH", "/bin"]],
                        "job_data": {"dbPassword": "x", "region": "us"}}, "id": "j"}
    masked = mask_spec(spec)
    assert masked["handler"]["env"] == [["PGPASSWORD", MASK], ["PATH", "/bin"]]
    assert masked["handler"]["job_data"] == {"dbPassword": MASK, "region": "us"}
    assert spec["handler"]["env"][0][1] == "hunter2"  # type: ignore[index]


def test_the_setting_adds_patterns_to_the_defaults() -> None:
    settings = load_settings({"BRIDGE_SECRET_ENV_PATTERNS": "*DSN*, CREDS"})
    assert settings.secret_patterns == (*DEFAULT_PATTERNS, "*DSN*", "CREDS")
    assert is_secret("SENTRY_DSN", settings.secret_patterns)
    assert is_secret("creds", settings.secret_patterns)
    assert patterns(["x*"]) == (*DEFAULT_PATTERNS, "X*")
    with pytest.raises(ConfigError, match="BRIDGE_SECRET_ENV_PATTERNS"):
        load_settings({"BRIDGE_SECRET_ENV_PATTERNS": "a b"})


def test_a_failing_webhook_is_logged_without_its_password(caplog: pytest.LogCaptureFixture) -> None:
    from bridge.services.alerts import Alert, Severity, WebhookSink
    from tests.support import free_port

    sink = WebhookSink(f"http://ops:hunter2@127.0.0.1:{free_port()}/hook", secret="s3cret",
                       attempts=1, timeout=2)
    alert = Alert("k", "missed", Severity.WARNING, "j missed", "detail")
    # The handler sits on the alerts logger itself: what it emits is captured whatever another
    # test (same xdist worker) did to the root logger's configuration.
    logger = logging.getLogger("bridge.services.alerts")
    assert not logger.disabled, "something disabled the alerts logger: failures would be silent"
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level("WARNING", logger="bridge.services.alerts"):
            assert sink.send(alert) is False
    finally:
        logger.removeHandler(caplog.handler)
    assert "webhook http://ops:***@127.0.0.1" in caplog.text
    assert "hunter2" not in caplog.text and "s3cret" not in caplog.text
    assert "s3cret" not in json.dumps(alert.to_json())
