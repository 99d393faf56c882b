"""A Quartz ``JOB_DATA`` blob -> job-data values as text, and what could not be read.

Job data (``JOB_DATA``)
  ``org.quartz.jobStore.useProperties=true`` stores ``java.util.Properties`` text (read with
  ``jproperties``, ISO-8859-1 with ``\\uXXXX`` escapes as ``Properties.load`` reads it);
  otherwise a serialized ``JobDataMap`` (read with ``javaobj-py3``, which parses the stream and
  never runs Java code). Strings, Integer/Long/Short/Byte, Boolean and Character values become
  text as Java's ``toString`` writes them; any other value (Double, Date, an application class)
  is not guessed: it is left out of the job data and listed in ``details["job_data_unreadable"]``
  with its class, and a note names the job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def decode_job_data(
    blob: bytes | memoryview | None,
) -> tuple[dict[str, str | None], dict[str, str]]:
    """``JOB_DATA`` -> (values as text, {key: why it is not read}); key ``*`` = the whole map."""
    if blob is None:
        return {}, {}
    data = bytes(blob)
    if not data:
        return {}, {}
    if data[:2] == b"\xac\xed":
        return _serialized_map(data)
    return _properties_map(data)


def _properties_map(data: bytes) -> tuple[dict[str, str | None], dict[str, str]]:
    from jproperties import Properties

    props = Properties()
    try:
        props.load(data, "iso-8859-1")
    except Exception as e:  # the library's own parse errors
        return {}, {"*": f"not java.util.Properties text ({e})"}
    return {str(k): str(v.data) for k, v in props.items()}, {}


_INTEGRAL = {"java.lang.Integer", "java.lang.Long", "java.lang.Short", "java.lang.Byte"}


def _serialized_map(data: bytes) -> tuple[dict[str, str | None], dict[str, str]]:
    import javaobj.v1 as javaobj

    try:
        obj = javaobj.loads(data)
    except Exception as e:  # javaobj raises plain exceptions for streams it cannot parse
        return {}, {"*": f"unreadable serialized Java object ({type(e).__name__}: {e})"}
    cls = _class_name(obj)
    mapping = getattr(obj, "map", None)
    if cls != "org.quartz.JobDataMap" or not isinstance(mapping, Mapping):
        return {}, {"*": f"serialized {cls or type(obj).__name__}, not an org.quartz.JobDataMap"}
    values: dict[str, str | None] = {}
    unreadable: dict[str, str] = {}
    for key, value in mapping.items():
        if not isinstance(key, str):
            unreadable[str(key)] = f"a key of class {_class_name(key)}"
            continue
        text, why = _java_text(value)
        if why is None:
            values[str(key)] = text
        else:
            unreadable[str(key)] = why
    return values, unreadable


def _class_name(obj: Any) -> str | None:
    desc = getattr(obj, "classdesc", None)
    return getattr(desc, "name", None)


def _java_text(value: Any) -> tuple[str | None, str | None]:
    """``String.valueOf(value)`` for the types whose text is certain; else (None, why)."""
    if value is None:
        return None, None
    if isinstance(value, str):
        return str(value), None
    cls = _class_name(value)
    inner = getattr(value, "value", None)
    if cls in _INTEGRAL and isinstance(inner, int) and not isinstance(inner, bool):
        return str(inner), None
    if cls == "java.lang.Boolean" and isinstance(inner, bool):
        return ("true" if inner else "false"), None
    if cls == "java.lang.Character" and isinstance(inner, str | int):
        return (inner if isinstance(inner, str) else chr(inner)), None
    return None, (
        f"a {cls or type(value).__name__} value: not a string, integer or boolean, "
        "so the bridge does not guess its text"
    )
