"""One RedBeat key prefix belongs to one registry, and Redis says which.

The first registry that syncs a prefix writes its id under ``<prefix>:bridge:registry``. A sync
(import, ``bridge sync``, beat's rebuild) from any other registry is refused before anything is
changed, so a second registry on the same Redis can never delete or overwrite the first one's
entries. ``bridge sync --take-over`` hands the prefix to the current registry on purpose (for a
registry that was moved or recreated).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bridge.core.errors import InputError


def owner_key(prefix: str) -> str:
    return prefix + ":bridge:registry"


@dataclass(frozen=True)
class PrefixOwner:
    registry_id: str
    url: str  # masked

    def encode(self) -> str:
        return json.dumps({"registry_id": self.registry_id, "url": self.url}, sort_keys=True)

    @classmethod
    def decode(cls, raw: str | bytes) -> PrefixOwner:
        text = raw.decode() if isinstance(raw, bytes) else raw
        try:
            data = json.loads(text)
            return cls(str(data["registry_id"]), str(data.get("url", "?")))
        except (ValueError, KeyError, TypeError):
            return cls(text, "?")


class PrefixOwnedError(InputError):
    """The RedBeat prefix is held by another registry. Exit 2 (a configuration conflict)."""

    def __init__(self, prefix: str, holder: PrefixOwner) -> None:
        super().__init__(
            f"RedBeat prefix '{prefix}' belongs to another registry ({holder.url}, "
            f"id {holder.registry_id[:12]}); refusing to change its entries",
            hint="give this registry its own BRIDGE_REDBEAT_KEY_PREFIX, or run "
            "`bridge sync --take-over` if that registry is gone",
        )
        self.prefix = prefix
        self.holder = holder


def holder(client: Any, prefix: str) -> PrefixOwner | None:
    raw = client.get(owner_key(prefix))
    return None if raw is None else PrefixOwner.decode(raw)


def check(client: Any, prefix: str, me: PrefixOwner) -> None:
    """Raise :class:`PrefixOwnedError` when another registry holds ``prefix`` (reads only)."""
    current = holder(client, prefix)
    if current is not None and current.registry_id != me.registry_id:
        raise PrefixOwnedError(prefix, current)


def claim(client: Any, prefix: str, me: PrefixOwner, *, take_over: bool = False) -> None:
    """Hold ``prefix`` for ``me`` (first come, first served), or take it over on purpose."""
    if take_over:
        client.set(owner_key(prefix), me.encode())
        return
    if client.set(owner_key(prefix), me.encode(), nx=True):
        return
    check(client, prefix, me)
    client.set(owner_key(prefix), me.encode())  # same registry: refresh its (masked) url
