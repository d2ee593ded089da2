"""Models already in the Hugging Face cache, used in place instead of downloaded twice.

`hf download`, `huggingface-cli download` and `snapshot_download()` without `local_dir` keep files as::

    <HF_HUB_CACHE>/models--unsloth--DeepSeek-R1-GGUF/
        blobs/<sha256 of an LFS file's content, or a small file's git blob id>
        refs/main                                   -> the commit main pointed to (text)
        snapshots/<commit>/DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf -> ../../../blobs/<sha256>

r1run looks there for the files a download needs, verifies them (sha256, like any file it finds on
disk) and records their snapshot paths in its manifest, so llama.cpp reads them where they are: no
copy, no second 131 GB. A split GGUF loads only when all its parts sit in one folder, so a snapshot
is used only when it holds every file of the selection. r1run never writes into the cache.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from r1run.download.select import RemoteFile

HEX = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def cache_root() -> Path:
    """Where huggingface_hub keeps its cache, by its own rules (HF_HUB_CACHE, then HF_HOME/hub ...)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.path.expandvars(os.environ[var])).expanduser()
    base = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "huggingface")
    return Path(os.path.expandvars(base)).expanduser() / "hub"


def repo_folder(repo: str, root: Path | None = None) -> Path:
    return (root or cache_root()) / ("models--" + repo.replace("/", "--"))


def is_inside(path: str | Path, root: Path | None = None) -> bool:
    """True when `path` lies in the Hugging Face cache (a snapshot link r1run adopted)."""
    try:
        Path(os.path.abspath(path)).relative_to(os.path.abspath(root or cache_root()))
        return True
    except ValueError:
        return False


@dataclass(frozen=True)
class Found:
    snapshot: Path  # snapshots/<commit>: the folder the files' repository paths are under
    commit: str


def find(repo: str, files: Sequence[RemoteFile], commit: str = "", root: Path | None = None) -> Found | None:
    """The snapshot folder that holds every one of `files` at its published size: `commit`'s first, then
    the newest. None when no snapshot holds them all (sizes are only a first check; the caller hashes)."""
    snaps = repo_folder(repo, root) / "snapshots"
    try:
        candidates = [p for p in snaps.iterdir() if p.is_dir() and HEX.fullmatch(p.name)]
    except OSError:
        return None
    candidates.sort(key=lambda p: (p.name != commit, -_mtime(p)))
    for snap in candidates:
        if files and all(_has(snap / f.path, f.size) for f in files):
            return Found(snap, snap.name)
    return None


def _has(path: Path, size: int) -> bool:
    try:
        return path.is_file() and path.stat().st_size == size
    except OSError:
        return False


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def offline_files(repo: str, revision: str, root: Path | None = None) -> tuple[str, list[RemoteFile]] | None:
    """With the hub unreachable: the commit `revision` pointed to when the cache was filled, and every file
    of that snapshot with the checksum its blob is named by. None when the cache has no such snapshot."""
    folder = repo_folder(repo, root)
    commit = revision if HEX.fullmatch(revision) else _ref(folder, revision)
    snap = folder / "snapshots" / commit if commit else None
    if snap is None or not snap.is_dir():
        return None
    files = []
    for link in sorted(p for p in snap.rglob("*") if p.is_file()):
        blob = Path(os.path.realpath(link)).name
        if not HEX.fullmatch(blob):
            continue  # not a blob this cache layout names by its checksum: cannot be verified offline
        rel = link.relative_to(snap).as_posix()
        size = link.stat().st_size
        files.append(RemoteFile(path=rel, size=size, git_oid=blob if len(blob) == 40 else "",
                                sha256=blob if len(blob) == 64 else None))
    return commit, files


def _ref(folder: Path, revision: str) -> str:
    if not revision or ".." in revision.split("/") or revision.startswith("/"):
        return ""
    try:
        text = (folder / "refs" / revision).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return text if HEX.fullmatch(text) else ""
