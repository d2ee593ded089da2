"""Checksums the hub publishes, computed over a file on disk or over bytes as they arrive.

The hub's tree gives two ids per file (`GET /api/models/{repo}/tree/{sha}`)::

    {"type": "file", "path": "x-00001-of-00003.gguf", "size": 5242880,
     "oid": "<git blob sha1>", "lfs": {"oid": "<sha256 of the content>", "size": 5242880, "pointerSize": 135}}

LFS files are checked against `lfs.oid` (plain sha256 of the bytes); files kept
in git itself against `oid`, the git blob id: sha1 of `b"blob <size>\\0" + content`.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

READ_CHUNK = 8 << 20


@dataclass(frozen=True)
class Checksum:
    algo: str  # "sha256" (LFS oid) or "git-sha1" (git blob id)
    hexdigest: str
    size: int

    def new(self):
        """A fresh hashlib object primed for this kind of checksum."""
        if self.algo == "sha256":
            return hashlib.sha256()
        if self.algo == "git-sha1":
            h = hashlib.sha1(usedforsecurity=False)
            h.update(b"blob %d\0" % self.size)
            return h
        raise ValueError(f"unknown checksum algorithm {self.algo!r}")


def hash_file(
    path: Path,
    checksum: Checksum,
    *,
    limit: int | None = None,
    on_bytes: Optional[Callable[[int], None]] = None,
    hasher=None,
):
    """Feed the first `limit` bytes (all when None) of `path` into `hasher` (default: a new one); return it."""
    h = hasher if hasher is not None else checksum.new()
    left = limit
    with open(path, "rb", buffering=0) as f:
        while left is None or left > 0:
            block = f.read(READ_CHUNK if left is None else min(READ_CHUNK, left))
            if not block:
                break
            h.update(block)
            if left is not None:
                left -= len(block)
            if on_bytes is not None:
                on_bytes(len(block))
    return h


def file_matches(path: Path, checksum: Checksum, on_bytes: Optional[Callable[[int], None]] = None) -> bool:
    """True when `path` has the expected size and digest."""
    try:
        if path.stat().st_size != checksum.size:
            return False
    except OSError:
        return False
    return hash_file(path, checksum, on_bytes=on_bytes).hexdigest() == checksum.hexdigest


_RESET = object()
_DONE = object()


class StreamHasher:
    """Hashes chunks in a background thread so hashing overlaps with receiving and writing.

    hashlib releases the GIL on large updates, so on two or more cores the digest
    costs almost no wall time. The queue is bounded: at most `depth` chunks wait.
    """

    def __init__(self, checksum: Checksum, hasher=None, depth: int = 3) -> None:
        self.checksum = checksum
        self._h = hasher if hasher is not None else checksum.new()
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name="r1run-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is _DONE:
                return
            if item is _RESET:
                self._h = self.checksum.new()
            else:
                self._h.update(item)

    def feed(self, chunk: bytes) -> None:
        self._q.put(bytes(chunk) if not isinstance(chunk, bytes) else chunk)

    def reset(self) -> None:
        """Start over (the file was truncated to zero)."""
        self._q.put(_RESET)

    def hexdigest(self) -> str:
        """Wait for every queued chunk and return the digest; the hasher is finished after this."""
        self.close()
        return self._h.hexdigest()

    def close(self) -> None:
        if self._thread.is_alive():
            self._q.put(_DONE)
            self._thread.join()
