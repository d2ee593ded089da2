"""Byte sources the GGUF reader parses: anything that can answer `read(offset, n)` and knows its size.

A local file or a remote file fetched with HTTP Range requests (`r1run.gguf.remote.HubSource`) plug
into the same reader (the tests add an in-memory one).
"""

from __future__ import annotations

import os
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
        self.path = Path(path)
        self.name = str(self.path)
        try:
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            raise GGUFError(f"{self.path}: no such file",
                            "check the path (a .gguf file, its first shard or a folder)") from None
        except IsADirectoryError:
            raise GGUFError(f"{self.path} is a directory", "pass a .gguf file") from None
        except PermissionError:
            raise GGUFError(f"{self.path}: permission denied", "check the file's permissions") from None
        self.size = os.fstat(self._fd).st_size

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
