"""Bounded output samples: what a run record keeps of a command's output.

A leaf that imports nothing at all, so the legacy shim's hot path can bound its sample without
importing the rest of the run vocabulary (:mod:`bridge.core.runs` re-exports these names).
"""

SAMPLE_LIMIT = 4096  # bytes of UTF-8 kept in output_sample (head and tail)
TRUNCATION_MARK = "\n[... output truncated ...]\n"


def bound_sample(text: str, limit: int = SAMPLE_LIMIT) -> str:
    """``text`` if it fits in ``limit`` UTF-8 bytes, else its head and tail around a mark."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    keep = (limit - len(TRUNCATION_MARK.encode())) // 2
    head = data[:keep].decode("utf-8", "ignore")
    tail = data[-keep:].decode("utf-8", "ignore")
    return head + TRUNCATION_MARK + tail
