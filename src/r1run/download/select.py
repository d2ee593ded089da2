"""Which files of a repository a download needs, and whether a split GGUF is complete.

Patterns follow `hf download --include` (fnmatch, `*` also crosses `/`; a
pattern ending in `/` means everything under that folder). Split GGUF files are
named by llama.cpp's gguf-split as::

    DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf

and llama.cpp refuses to load a set with any part missing, so a selection that
holds part of a set is an error, not a partial download.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import PurePosixPath
from typing import Iterable, Sequence

from r1run.download.verify import Checksum
from r1run.errors import BadInput, R1runError
from r1run.gguf.shards import SPLIT_RE

SHARD = SPLIT_RE  # `<prefix>-00001-of-00003.gguf`, the one shard-name pattern (r1run.gguf.shards)


@dataclass(frozen=True)
class RemoteFile:
    """One file of the repository tree at a commit."""

    path: str
    size: int
    git_oid: str
    sha256: str | None = None  # LFS oid
    xet: bool = False

    @property
    def checksum(self) -> Checksum:
        if self.sha256:
            return Checksum("sha256", self.sha256, self.size)
        return Checksum("git-sha1", self.git_oid, self.size)


@dataclass(frozen=True)
class Snapshot:
    """A repository at one commit: what `resolve` learns from the hub."""

    repo: str
    revision: str  # what was asked for (branch, tag or sha)
    commit: str  # the sha it points to
    files: tuple[RemoteFile, ...]
    gated: bool = False


class IncompleteShardSet(R1runError):
    """The hub holds only part of a split GGUF."""


def _normalise(pattern: str) -> str:
    return pattern + "*" if pattern.endswith("/") else pattern


def match(paths: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """The paths matching any pattern, in their original order."""
    pats = [_normalise(p) for p in patterns]
    return [p for p in paths if any(fnmatchcase(p, pat) for pat in pats)]


def safe_relative(path: str) -> PurePosixPath:
    """`path` as a relative path that cannot leave the download folder."""
    p = PurePosixPath(path)
    if p.is_absolute() or not p.parts or any(part in ("..", "") for part in p.parts) or "\\" in path:
        raise R1runError(f"the hub listed an unsafe file path {path!r}",
                         "refusing to write outside the download folder")
    return p


def shard_problems(paths: Iterable[str]) -> list[str]:
    """One line per incomplete split GGUF set among `paths` (empty when all sets are whole)."""
    sets: dict[str, dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))
    for path in paths:
        m = SHARD.match(path)
        if m:
            sets[m["prefix"]][int(m["count"])].add(int(m["no"]))
    problems = []
    for stem, by_count in sorted(sets.items()):
        if len(by_count) > 1:
            problems.append(f"{stem}: parts disagree on the count ({', '.join(f'of {n}' for n in sorted(by_count))})")
            continue
        (count, have), = by_count.items()
        missing = sorted(set(range(1, count + 1)) - have)
        if missing:
            shown = ", ".join(f"{i:05d}" for i in missing[:8]) + (" ..." if len(missing) > 8 else "")
            problems.append(f"{stem}: {len(missing)} of {count} parts missing ({shown})")
    return problems


def select(snapshot: Snapshot, patterns: Sequence[str]) -> list[RemoteFile]:
    """The files of `snapshot` the patterns pick, checked to form whole shard sets."""
    by_path = {f.path: f for f in snapshot.files}
    chosen = [by_path[p] for p in match(by_path, patterns)]
    if not chosen:
        ggufs = [p for p in by_path if p.endswith(".gguf")]
        sample = ", ".join(sorted(ggufs)[:5]) + (" ..." if len(ggufs) > 5 else "")
        raise BadInput(
            f"{' / '.join(patterns)} matches no file in {snapshot.repo}@{snapshot.commit[:12]}",
            f"its GGUF files include: {sample}" if ggufs else f"{snapshot.repo} holds no .gguf files",
        )
    for f in chosen:
        safe_relative(f.path)
    names = {f.path for f in chosen}
    clash = next((f.path for f in chosen if any(p in names for p in _parents(f.path))), None)
    if clash is not None:
        parent = next(p for p in _parents(clash) if p in names)
        raise R1runError(f"{snapshot.repo} lists {parent!r} both as a file and as the folder of {clash!r}",
                         "refusing a download that would overwrite one with the other; narrow --include")
    problems = shard_problems(f.path for f in chosen)
    if problems:
        raise IncompleteShardSet(
            f"{snapshot.repo}@{snapshot.commit[:12]} holds an incomplete split GGUF: {'; '.join(problems)}",
            "llama.cpp cannot load part of a set; try another --revision or quant, or widen --include",
        )
    return chosen


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def first_shards(paths: Sequence[str]) -> list[str]:
    """The files to hand llama.cpp's `-m`: the first part of each split set, and whole files."""
    out = []
    for p in paths:
        m = SHARD.match(p)
        if m is None or int(m["no"]) == 1:
            out.append(p)
    return out


def label_for(patterns: Sequence[str]) -> str:
    """A quant label derived from an --include pattern: `*Q4_K_M*.gguf` -> `Q4_K_M`."""
    text = patterns[0] if patterns else ""
    text = re.sub(r"\.gguf$", "", text.rstrip("/"), flags=re.I)
    tokens = [t.strip("-_.") for t in re.split(r"[/*?\[\]]+", text)]
    tokens = [re.sub(r"[^\w.-]+", "-", t) for t in tokens if t.strip("-_.")]
    return max(tokens, key=len) if tokens else "files"
