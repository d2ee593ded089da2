"""Small filesystem helpers: atomic writes and an inter-process lock."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from filelock import FileLock, Timeout


def write_atomic(path: Path, text: str) -> None:
    """Write text so that readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked(path: Path, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if needed) for the block, across processes.

    filelock's lock (an advisory `flock` on Unix): the kernel drops it when its holder dies, even
    by SIGKILL, so a crash never leaves it held. The holder writes its pid into the file; when
    `on_wait` is given and another process holds the lock, `on_wait(holder)` is called once
    (e.g. "pid 1234") before waiting, so a wait of hours is never silent.
    """

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    before = _holder(path)  # read first: an older filelock truncates the file when it tries the lock
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait is not None:
            on_wait(_holder(path) or before or "another process")
        lock.acquire()
    try:
        with contextlib.suppress(OSError), open(path, "r+", encoding="utf-8") as f:
            f.write(f"pid {os.getpid()}\n")
            f.truncate()
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def try_locked(path: Path) -> Iterator[bool]:
    """Take the lock of `path` if nobody holds it; the block gets True when it did, False when another
    process holds it (nothing waits)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def _holder(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(64).strip()
    except OSError:  # not there yet, or locked against reading (Windows)
        return ""
