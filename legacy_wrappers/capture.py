"""A command's merged output: its SHA-256 and the first 64 KiB, fed from pipes or streams.

:class:`Pipes` feeds a process's stdin and drains its merged stdout/stderr without threads
(selectors); :class:`CappedStream` is a text stream an in-process callable writes to.
"""

from __future__ import annotations

import hashlib
import io
import os
import selectors
import subprocess
from dataclasses import dataclass, field
from typing import Any

SAMPLE_BYTES = 64 * 1024


def sample_text(data: bytes) -> str:
    """The sample as text (NUL made U+FFFD so PostgreSQL accepts it)."""
    return data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


@dataclass
class Capture:
    digest: Any = field(default_factory=hashlib.sha256)
    sample: bytearray = field(default_factory=bytearray)
    size: int = 0

    def feed(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.size += len(chunk)
        room = SAMPLE_BYTES - len(self.sample)
        if room > 0:
            self.sample += chunk[:room]


class Pipes:
    """Feed stdin and drain merged output without threads (selectors)."""

    def __init__(self, proc: subprocess.Popen[bytes], data: bytes, capture: Capture) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.sel = selectors.DefaultSelector()
        self.capture = capture
        self.data = memoryview(data)
        self.out = proc.stdout
        self.sel.register(self.out, selectors.EVENT_READ)
        self.inp = proc.stdin
        if data:
            os.set_blocking(self.inp.fileno(), False)
            self.sel.register(self.inp, selectors.EVENT_WRITE)
        else:
            self.inp.close()  # cron: no % part -> an empty pipe

    @property
    def open(self) -> bool:
        return bool(self.sel.get_map())

    def pump(self, step: float) -> None:
        for key, _ in self.sel.select(step):
            if key.fileobj is self.out:
                chunk = os.read(self.out.fileno(), 65536)
                if chunk:
                    self.capture.feed(chunk)
                else:
                    self.drop(self.out)
            else:
                self.write()

    def write(self) -> None:
        try:
            sent = os.write(self.inp.fileno(), self.data[:65536])
        except BlockingIOError:
            return
        except BrokenPipeError:
            sent = len(self.data)
        self.data = self.data[sent:]
        if not self.data:
            self.drop(self.inp)

    def drop(self, stream: Any) -> None:
        self.sel.unregister(stream)
        stream.close()

    def __enter__(self) -> Pipes:
        return self

    def __exit__(self, *exc: object) -> None:
        for key in list(self.sel.get_map().values()):
            self.drop(key.fileobj)
        self.sel.close()



class CappedStream(io.TextIOBase):
    def __init__(self, capture: Capture) -> None:
        self.capture = capture

    def write(self, s: str) -> int:
        self.capture.feed(s.encode("utf-8", errors="replace"))
        return len(s)

