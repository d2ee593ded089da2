"""Byte sources the GGUF reader parses: anything that can answer `read(offset, n)` and knows its size.

A local file or a remote file fetched with HTTP Range requests (`r1run.gguf.remote.HubSource`) plug
into the same reader (the tests add an in-memory one).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Protocol, runtime_checkable

from r1run.errors import GGUFError


@runtime_checkable
class ByteSource(Protocol):
    """Random access to a byte string of known size."""

    name: str
    size: int

    def read(self, offset: int, n: int) -> bytes:
        """Up to n bytes starting at offset (fewer only at the end)."""
        ...


class FileSource:
    """A local file read with positioned reads (no shared file position, safe to reuse)."""

    def __init__(self, path: Path | str) -> None:
        self._fd = -1  # so that __del__ of a half-made source has nothing to close
        self.path = Path(path)
        self.name = str(self.path)
        try:
            # O_NONBLOCK: opening a FIFO for reading would block until a writer comes (forever)
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            raise GGUFError(f"{self.path}: no such file",
                            "check the path (a .gguf file, its first shard or a folder)") from None
        except IsADirectoryError:
            raise GGUFError(f"{self.path} is a directory", "pass a .gguf file") from None
        except PermissionError:
            raise GGUFError(f"{self.path}: permission denied", "check the file's permissions") from None
        except OSError as exc:
            raise GGUFError(f"{self.path}: cannot open ({exc.strerror})", "pass a readable .gguf file") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                    else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a file")
            raise GGUFError(f"{self.path} is {kind}, not a regular file", "pass a .gguf file")
        self._fd = fd
        self.size = st.st_size

    def read(self, offset: int, n: int) -> bytes:
        if hasattr(os, "pread"):
            return os.pread(self._fd, n, offset)
        os.lseek(self._fd, offset, os.SEEK_SET)  # Windows has no pread
        return os.read(self._fd, n)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "FileSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
