"""Settings: environment variables over an optional ``bridge.toml``, validated once at start-up.

Precedence: ``BRIDGE_*`` environment variables > the TOML file > defaults. The file is the
one named by ``BRIDGE_CONFIG``, else ``./bridge.toml``, else
``$XDG_CONFIG_HOME/cron-bridge/bridge.toml`` (``~/.config/...``). Unknown keys (in the file,
or ``BRIDGE_*`` variables that are not settings)
and invalid values are :class:`ConfigError` naming the key and the reason. Every URL that is
printed goes through :func:`mask_url` first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.core.errors import ConfigError

# Variables the shim and the runner use at run time; they are not settings.
RUNTIME_VARIABLES = frozenset({"BRIDGE_CONFIG", "BRIDGE_JOB", "BRIDGE_SHELL", "BRIDGE_SHADOW"})


def data_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cron-bridge"


def config_home() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cron-bridge"


def default_database_url() -> str:
    return f"sqlite:///{data_home() / 'registry.db'}"


def local_timezone() -> str:
    """The IANA name of this machine's zone (TZ, /etc/timezone, /etc/localtime), else UTC."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and _valid_zone(tz):
        return tz
    try:
        name = Path("/etc/timezone").read_text().strip()
        if _valid_zone(name):
            return name
    except OSError:
        pass
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            name = target.split("zoneinfo/", 1)[1]
            if _valid_zone(name):
                return name
    except OSError:
        pass
    return "UTC"


def _valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
        return True
    except (ZoneInfoNotFoundError, ValueError):
        return False


def mask_url(url: str) -> str:
    """Replace the password of every URL in ``url`` (``;``-separated lists too) by ``***``."""
    return ";".join(_mask_one(part) for part in url.split(";"))


_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|pass|pwd|secret|token)=)[^&#]*")


def _mask_one(url: str) -> str:
    url = _QUERY_SECRET.sub(r"\1***", url)
    try:
        parts = urlsplit(url)
        password, port = parts.password, parts.port
    except ValueError:
        return re.sub(r"//([^@/:]*):[^@/]*@", r"//\1:***@", url)
    if password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}{f':{port}' if port else ''}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# --- validators -------------------------------------------------------------------------------


# Query parameters kombu / redis-py read from the URL itself: given twice they crash the client.
_REDIS_RESERVED_QUERY = frozenset(
    {"password", "username", "userid", "user", "hostname", "host", "port", "transport",
     "virtual_host"})
_REDIS_NUMERIC_QUERY = {
    "db": int, "socket_timeout": float, "socket_connect_timeout": float, "socket_read_size": int,
    "max_connections": int, "health_check_interval": int, "timeout": float, "protocol": int,
    "ssl_min_version": int}


def _network_parts(url: str, what: str) -> Any:
    """``urlsplit`` with a checked port (ValueError naming the problem, never a crash later)."""
    from urllib.parse import parse_qsl

    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a non-numeric or out-of-range port
    except ValueError as e:
        raise ValueError(f"{what} {mask_url(url)!r}: {e}") from e
    if any(ord(c) < 32 or c.isspace() for c in url):
        raise ValueError(f"{what} {mask_url(url)!r} contains blanks or control characters")
    return parts, parse_qsl(parts.query, keep_blank_values=True)


def _redis_url(value: str) -> str:
    schemes = ("redis://", "rediss://", "unix://", "sentinel://", "sentinels://")
    parts = [p.strip() for p in _text(value).split(";") if p.strip()]
    if not parts or not all(p.startswith(schemes) for p in parts):
        raise ValueError(f"must start with one of {', '.join(schemes)}")
    kinds = {p.split("://", 1)[0].rstrip("s") for p in parts}
    if len(parts) > 1 and kinds != {"sentinel"}:
        raise ValueError("only sentinel:// URLs may be listed with ';'")
    for part in parts:
        split, query = _network_parts(part, "URL")
        db = split.path.strip("/")
        if not part.startswith("unix://") and db and not db.isdigit():
            raise ValueError(f"database number {db!r} must be a non-negative integer")
        for key, item in query:
            if key.lower() in _REDIS_RESERVED_QUERY:
                raise ValueError(f"'{key}=' is not accepted in the query: put credentials in "
                                 "the URL's user-info part, before the host")
            if key in _REDIS_NUMERIC_QUERY:
                try:
                    _REDIS_NUMERIC_QUERY[key](item)
                except ValueError as e:
                    raise ValueError(f"query parameter {key}={item!r} must be a number") from e
    return ";".join(parts)


def _database_url(value: str) -> str:
    value = _text(value)
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
        raise ValueError("must be a sqlite:/// or postgresql:// URL")
    if value.startswith("postgresql"):
        split, _query = _network_parts(value, "URL")
        if not split.path.strip("/"):
            raise ValueError("names no database (postgresql://user:pw@host:port/DBNAME)")
    elif "\x00" in value:
        raise ValueError("contains a NUL character")
    if value.startswith("postgresql://"):
        value = "postgresql+psycopg://" + value[len("postgresql://") :]
    return value


def _zone(value: str) -> str:
    if not _valid_zone(value):
        raise ValueError(f"unknown IANA timezone '{value}'")
    return value


def _positive_int(value: Any) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive integer")
    return number


def _non_negative_int(value: Any) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be >= 0")
    return number


def _prefix(value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise ValueError("must be non-empty without blanks")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _http_url(value: Any) -> str:
    text = _text(value)
    if text and not re.match(r"^https?://", text):
        raise ValueError("must be an http:// or https:// URL")
    return text


def _patterns(value: Any) -> str:
    items = value if isinstance(value, list) else _text(value).split(",")
    names = [str(p).strip() for p in items if str(p).strip()]
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9_*?\[\]!-]+", name):
            raise ValueError(f"pattern {name!r}: only letters, digits, _ and the globs * ? [ ]")
    return ",".join(names)


def _path(value: Any) -> str:
    return str(Path(str(value)).expanduser())


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://localhost:6379/0"
    redis_sentinel_master: str = "mymaster"
    database_url: str = ""
    redbeat_key_prefix: str = "{bridge}:"
    redbeat_lock_timeout: int = 300
    beat_max_interval: int = 1
    visibility_timeout: int = 43200
    default_queue: str = "bridge"
    timezone: str = ""
    authority_safety_margin: int = 120
    spool_dir: str = ""
    authority_dir: str = ""
    worker_shutdown_grace: int = 20
    task_events: bool = False  # workers send task events from the start (Flower turns them on)
    rehydrate_interval: int = 300
    health_interval: int = 60
    health_window: int = 7200
    health_grace: int = 300
    health_tolerance: int = 60
    health_beat_stale: int = 60
    health_repair: bool = True
    alert_webhook_url: str = ""
    alert_webhook_secret: str = ""
    alert_command: str = ""
    alert_dedupe_ttl: int = 604800
    metrics_port: int = 0
    metrics_address: str = "127.0.0.1"
    secret_env_patterns: str = ""  # added to bridge.core.secrets.DEFAULT_PATTERNS

    def __post_init__(self) -> None:
        if not self.database_url:
            object.__setattr__(self, "database_url", default_database_url())
        if not self.timezone:
            object.__setattr__(self, "timezone", local_timezone())
        if not self.spool_dir:
            object.__setattr__(self, "spool_dir", str(data_home() / "spool"))
        if not self.authority_dir:
            object.__setattr__(self, "authority_dir", str(data_home() / "authority"))

    @property
    def secret_patterns(self) -> tuple[str, ...]:
        """Names of environment variables whose values are masked in output (globs)."""
        from bridge.core.secrets import patterns

        return patterns(self.secret_env_patterns)

    @property
    def masked_redis_url(self) -> str:
        return mask_url(self.redis_url)

    @property
    def masked_database_url(self) -> str:
        return mask_url(self.database_url)

    def public(self) -> dict[str, Any]:
        """Every setting, URLs masked: safe to print."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["redis_url"] = self.masked_redis_url
        out["database_url"] = self.masked_database_url
        out["alert_webhook_url"] = mask_url(self.alert_webhook_url)
        if self.alert_webhook_secret:
            out["alert_webhook_secret"] = "***"
        return out


VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "redis_url": _redis_url,
    "redis_sentinel_master": _text,
    "database_url": _database_url,
    "redbeat_key_prefix": _prefix,
    "redbeat_lock_timeout": _positive_int,
    "beat_max_interval": _positive_int,
    "visibility_timeout": _positive_int,
    "default_queue": _prefix,
    "timezone": _zone,
    "authority_safety_margin": _non_negative_int,
    "spool_dir": _path,
    "authority_dir": _path,
    "worker_shutdown_grace": _non_negative_int,
    "task_events": _bool,
    "rehydrate_interval": _non_negative_int,
    "health_interval": _positive_int,
    "health_window": _positive_int,
    "health_grace": _non_negative_int,
    "health_tolerance": _non_negative_int,
    "health_beat_stale": _positive_int,
    "health_repair": _bool,
    "alert_webhook_url": _http_url,
    "alert_webhook_secret": _text,
    "alert_command": _text,
    "alert_dedupe_ttl": _positive_int,
    "metrics_port": _non_negative_int,
    "metrics_address": _text,
    "secret_env_patterns": lambda v: _patterns(v),
}


def config_file(env: Mapping[str, str]) -> Path | None:
    named = env.get("BRIDGE_CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"BRIDGE_CONFIG names '{path}', which is not a file")
        return path
    for candidate in (Path("bridge.toml"), config_home() / "bridge.toml"):
        if candidate.is_file():
            return candidate
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # only when a file exists: the shim loads settings on every legacy run

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from e
    section = data.get("bridge", data)
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [bridge] must be a table")
    return section


def _validated(key: str, value: Any, origin: str) -> Any:
    if key not in VALIDATORS:
        raise ConfigError(f"unknown setting '{origin}'")
    try:
        return VALIDATORS[key](value)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"invalid value for '{origin}': {e}") from e


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read, validate and return the settings (raises ConfigError)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = config_file(env)
    if path is not None:
        for key, value in _read_toml(path).items():
            values[key] = _validated(key, value, f"{path}: {key}")
    for name, value in env.items():
        if not name.startswith("BRIDGE_") or name in RUNTIME_VARIABLES:
            continue
        key = name[len("BRIDGE_") :].lower()
        values[key] = _validated(key, value, name)
    return Settings(**values)
