"""Redis connections for the bridge's own use (sync, status, scheduler), one URL grammar.

Accepted forms (the same Celery and RedBeat accept, see :mod:`bridge.celery_app`):
``redis://[:password@]host:port/db``, ``rediss://...`` (TLS), ``unix:///path.sock?db=N`` and a
Sentinel list ``sentinel://[:password@]host:26379/db;sentinel://host2:26379/db`` with the master
name in the ``redis_sentinel_master`` setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import redis
from redis.sentinel import Sentinel

from bridge.core.config import Settings, mask_url
from bridge.core.errors import InfraError


@dataclass(frozen=True)
class SentinelTarget:
    hosts: tuple[tuple[str, int], ...]
    password: str | None
    db: int
    ssl: bool


def parse_sentinel(url: str) -> SentinelTarget:
    hosts: list[tuple[str, int]] = []
    password: str | None = None
    db = 0
    ssl = False
    for part in url.split(";"):
        parts = urlsplit(part.strip())
        ssl = ssl or parts.scheme == "sentinels"
        hosts.append((parts.hostname or "localhost", parts.port or 26379))
        password = password or parts.password
        if parts.path.strip("/").isdigit():
            db = int(parts.path.strip("/"))
    return SentinelTarget(tuple(hosts), password, db, ssl)


def is_sentinel(url: str) -> bool:
    return url.startswith(("sentinel://", "sentinels://"))


def client(settings: Settings, *, timeout: float = 5.0) -> redis.Redis:
    url = settings.redis_url
    if is_sentinel(url):
        target = parse_sentinel(url)
        sentinel = Sentinel(
            list(target.hosts),
            socket_timeout=timeout,
            sentinel_kwargs={"password": target.password, "ssl": target.ssl},
            password=target.password,
            ssl=target.ssl,
        )
        return sentinel.master_for(
            settings.redis_sentinel_master,
            db=target.db,
            decode_responses=True,
            socket_timeout=timeout,
        )
    return redis.Redis.from_url(
        url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout
    )


def unreachable(url: str, err: Exception) -> InfraError:
    return InfraError(
        f"Redis unreachable at {mask_url(url)}: {err}",
        url=mask_url(url),
        hint="is redis-server running and BRIDGE_REDIS_URL right?",
    )


def ping(settings: Settings) -> str:
    """Return the Redis server version; raise InfraError naming the masked URL."""
    try:
        conn = client(settings, timeout=3.0)
        info = conn.info("server")
        return str(info.get("redis_version", "?"))
    except (redis.RedisError, OSError) as e:
        raise unreachable(settings.redis_url, e) from e
