"""Build inventory trees for tests: one folder per host, files at their real paths."""

from __future__ import annotations

import os
from pathlib import Path

DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
UBUNTU = 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n'
ROCKY = 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\n'
ALPINE = 'NAME="Alpine Linux"\nID=alpine\n'


def host(
    root: Path,
    name: str,
    *,
    os_release: str | None = DEBIAN,
    zone: str | None = "Europe/Paris",
    zone_as: str = "link",  # "link" (etc/localtime symlink), "file" (etc/timezone), "both"
    files: dict[str, str] | None = None,
) -> Path:
    """``root/name`` holding ``files`` ({"etc/cron.d/backup": text, ...})."""
    folder = root / name
    (folder / "etc").mkdir(parents=True, exist_ok=True)
    if os_release is not None:
        (folder / "etc" / "os-release").write_text(os_release)
    if zone is not None and zone_as in ("link", "both"):
        os.symlink(f"/usr/share/zoneinfo/{zone}", folder / "etc" / "localtime")
    if zone is not None and zone_as in ("file", "both"):
        (folder / "etc" / "timezone").write_text(zone + "\n")
    for rel, text in (files or {}).items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder
