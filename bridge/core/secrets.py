"""Environment values that look like secrets are masked in every output (pure, no I/O).

A variable is secret when its NAME matches one of the patterns, case-insensitively (shell
globs: ``*`` any run of characters, ``?`` one character). Defaults: :data:`DEFAULT_PATTERNS`;
the ``secret_env_patterns`` setting (``BRIDGE_SECRET_ENV_PATTERNS``, comma-separated) adds to
them. The registry still stores the value (the job needs it; the SQLite file is 0600): only
what the bridge *prints* is masked -- ``bridge jobs show``, the import plan, and anything else
that renders a job's environment. A Celery message never carries it: it is
``bridge.run_job(job_id, slot)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

DEFAULT_PATTERNS: tuple[str, ...] = ("*PASSWORD*", "*SECRET*", "*TOKEN*", "*KEY*")
MASK = "***"


def patterns(extra: str | Iterable[str] = ()) -> tuple[str, ...]:
    """The defaults plus ``extra`` (a comma-separated string or an iterable), upper-cased."""
    items = extra.split(",") if isinstance(extra, str) else list(extra)
    added = tuple(p.strip().upper() for p in items if p.strip())
    return tuple(dict.fromkeys((*DEFAULT_PATTERNS, *added)))


def is_secret(name: str, pats: Iterable[str] = DEFAULT_PATTERNS) -> bool:
    upper = str(name).upper()
    return any(fnmatchcase(upper, p.upper()) for p in pats)


def mask_env(env: Mapping[str, Any] | Iterable[tuple[str, Any]],
             pats: Iterable[str] = DEFAULT_PATTERNS) -> dict[str, Any]:
    """A copy of ``env`` (a mapping or ``(name, value)`` pairs) with secret values masked."""
    pats = tuple(pats)
    items = env.items() if isinstance(env, Mapping) else env
    return {k: (MASK if is_secret(k, pats) and v not in (None, "") else v) for k, v in items}


def mask_spec(doc: Any, pats: Iterable[str] = DEFAULT_PATTERNS) -> Any:
    """A copy of a job spec JSON (or any JSON value) whose ``env`` and ``job_data`` mappings
    (or ``[name, value]`` pair lists) have their secret values masked, at any depth."""
    pats = tuple(pats)
    if isinstance(doc, Mapping):
        out: dict[str, Any] = {}
        for key, value in doc.items():
            if key in ("env", "job_data") and isinstance(value, Mapping):
                out[key] = mask_env(value, pats)
            elif key in ("env", "job_data") and isinstance(value, list | tuple) and all(
                    isinstance(p, list | tuple) and len(p) == 2 for p in value):
                out[key] = [[k, v] for k, v in mask_env([tuple(p) for p in value], pats).items()]
            else:
                out[key] = mask_spec(value, pats)
        return out
    if isinstance(doc, list | tuple):
        return [mask_spec(v, pats) for v in doc]
    return doc
