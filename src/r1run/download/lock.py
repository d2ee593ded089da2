"""One download at a time per destination folder, across processes.

`fsutil.locked` blocks silently; a download that waits for another one (maybe
hours) must say so, so this tries without blocking first and reports the wait.
The lock is an advisory `flock` on `<folder>/.r1run-download.lock`: the kernel
drops it when its holder dies, even by SIGKILL, so a crash never leaves the
folder locked. The holder's pid is written into the file for the message.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Iterator

LOCK_NAME = ".r1run-download.lock"


@contextlib.contextmanager
def exclusive(folder: Path, on_wait: Callable[[str], None] = lambda holder: None) -> Iterator[None]:
    """Hold the folder's download lock for the block; `on_wait(holder)` is called once if it must wait."""
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; concurrent downloads are not supported there
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            on_wait(holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
