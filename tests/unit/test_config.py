from __future__ import annotations

from pathlib import Path

import pytest

from bridge.core.config import load_settings, mask_url
from bridge.core.errors import ConfigError


def test_defaults_use_local_redis_and_per_user_sqlite(isolated_env: Path) -> None:
    s = load_settings({})
    assert s.redis_url == "redis://localhost:6379/0"
    assert (
        s.database_url == f"sqlite:///{isolated_env / 'xdg-data' / 'cron-bridge' / 'registry.db'}"
    )


def test_environment_overrides_file(isolated_env: Path) -> None:
    (isolated_env / "bridge.toml").write_text(
        '[bridge]\nredis_url = "redis://file:6379/1"\nvisibility_timeout = 100\n'
    )
    s = load_settings({"BRIDGE_VISIBILITY_TIMEOUT": "200"})
    assert s.redis_url == "redis://file:6379/1"
    assert s.visibility_timeout == 200


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BRIDGE_REDIS_URL": "http://x"}, "invalid value for 'BRIDGE_REDIS_URL': must start with"),
        ({"BRIDGE_DATABASE_URL": "mysql://x"}, "invalid value for 'BRIDGE_DATABASE_URL'"),
        ({"BRIDGE_TIMEZONE": "Mars/Olympus"}, "unknown IANA timezone 'Mars/Olympus'"),
        ({"BRIDGE_VISIBILITY_TIMEOUT": "-5"}, "must be a positive integer"),
        ({"BRIDGE_VISIBILITY_TIMEOUT": "soon"}, "invalid value for 'BRIDGE_VISIBILITY_TIMEOUT'"),
        ({"BRIDGE_REDIS_ULR": "redis://x"}, "unknown setting 'BRIDGE_REDIS_ULR'"),
        ({"BRIDGE_CONFIG": "/nonexistent.toml"}, "not a file"),
    ],
)
def test_invalid_settings_name_the_key_and_why(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(env)
    assert message in str(e.value)


def test_unknown_key_in_file_is_an_error(isolated_env: Path) -> None:
    (isolated_env / "bridge.toml").write_text('[bridge]\nredis_ulr = "redis://x"\n')
    with pytest.raises(ConfigError, match=r"unknown setting '.*bridge.toml: redis_ulr'"):
        load_settings({})


def test_broken_toml_is_an_error_naming_the_file(isolated_env: Path) -> None:
    (isolated_env / "bridge.toml").write_text("[bridge\n")
    with pytest.raises(ConfigError, match=r"bridge\.toml: invalid TOML"):
        load_settings({})


def test_runtime_variables_are_not_settings() -> None:
    # The shim's per-run variables are accepted (no "unknown setting" error) and change nothing.
    runtime = {"BRIDGE_JOB": "x", "BRIDGE_SHELL": "/bin/sh", "BRIDGE_SHADOW": "1"}
    assert load_settings(runtime) == load_settings({})


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://user:s3cret@host:6380/0", "rediss://user:***@host:6380/0"),
        ("postgresql+psycopg://bridge:pw@db/reg", "postgresql+psycopg://bridge:***@db/reg"),
        (
            "sentinel://:pw@a:26379;sentinel://:pw@b:26379",
            "sentinel://:***@a:26379;sentinel://:***@b:26379",
        ),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_passwords_are_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert "s3cret" not in mask_url(url) and ":pw@" not in mask_url(url)


def test_settings_public_view_masks_urls() -> None:
    s = load_settings(
        {
            "BRIDGE_REDIS_URL": "redis://:topsecret@h:1/0",
            "BRIDGE_DATABASE_URL": "postgresql://u:topsecret@h/db",
        }
    )
    assert "topsecret" not in str(s.public())
    assert s.database_url.startswith("postgresql+psycopg://")


def test_sentinel_and_tls_urls_configure_celery_and_redbeat() -> None:
    from bridge.celery_app import make_app

    s = load_settings(
        {
            "BRIDGE_REDIS_URL": "sentinel://:pw@10.0.0.1:26379/2;sentinel://10.0.0.2:26380/2",
            "BRIDGE_REDIS_SENTINEL_MASTER": "main",
        }
    )
    conf = make_app(s).conf
    assert conf.broker_transport_options["master_name"] == "main"
    assert conf.redbeat_redis_url == "redis-sentinel://"
    assert conf.redbeat_redis_options["sentinels"] == [["10.0.0.1", 26379], ["10.0.0.2", 26380]]
    assert conf.redbeat_redis_options["db"] == 2
    tls = make_app(
        load_settings({"BRIDGE_REDIS_URL": "rediss://:pw@h:6380/0?ssl_cert_reqs=required"})
    )
    assert tls.conf.broker_url.startswith("rediss://")
    assert tls.conf.redbeat_redis_url.startswith("rediss://")


def test_celery_app_is_json_only_and_acks_late() -> None:
    from bridge.celery_app import make_app

    conf = make_app(load_settings({})).conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_send_sent_event
    assert not conf.worker_send_task_events  # until Flower (or BRIDGE_TASK_EVENTS) enables them
    assert make_app(load_settings({"BRIDGE_TASK_EVENTS": "1"})).conf.worker_send_task_events
    assert conf.broker_transport_options["visibility_timeout"] == 43200
    assert conf.redbeat_key_prefix == "{bridge}:"
