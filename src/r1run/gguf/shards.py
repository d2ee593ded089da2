"""Find a model's files (one file, a shard set, or the single model in a folder) and check a shard set.

llama.cpp names shards `PREFIX-00001-of-00003.gguf` (llama_split_path: "%s-%05d-of-%05d.gguf") and
finds the others from the first one's name; every shard carries `split.no` (0-based),
`split.count` and `split.tensors.count`, and only the first carries the model's metadata.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from r1run.errors import GGUFError
from r1run.gguf.reader import Header

SPLIT_RE = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")
KEY_SPLIT_NO = "split.no"
KEY_SPLIT_COUNT = "split.count"
KEY_SPLIT_TENSORS = "split.tensors.count"


def shard_name(prefix: str, no: int, count: int) -> str:
    """The file name llama.cpp expects for shard `no` (1-based) of `count`."""
    return f"{prefix}-{no:05d}-of-{count:05d}.gguf"


def split_parts(name: str) -> tuple[str, int, int] | None:
    """(prefix, shard number 1-based, shard count) for a shard's file name, else None."""
    m = SPLIT_RE.match(name)
    if not m:
        return None
    return m["prefix"], int(m["no"]), int(m["count"])


def group_files(names: Sequence[str]) -> dict[str, list[str]]:
    """Group GGUF file names into models: a shard set under its prefix, a single file under its name."""
    groups: dict[str, list[str]] = {}
    for name in sorted(names):
        parts = split_parts(name)
        key = f"{parts[0]}-*-of-{parts[2]:05d}.gguf" if parts else name
        groups.setdefault(key, []).append(name)
    return groups


def complete_set(names: Sequence[str], where: str) -> list[str]:
    """The shard names of one group in order; GGUFError naming the missing ones."""
    parts = split_parts(names[0])
    if parts is None:
        return list(names)
    prefix, _, count = parts
    expected = [shard_name(prefix, i, count) for i in range(1, count + 1)]
    present = set(names)
    missing = [n for n in expected if n not in present]
    if missing:
        which = ", ".join(str(expected.index(n) + 1) for n in missing)
        more = ", ..." if len(missing) > 1 else ""
        raise GGUFError(f"{where}: shard {which} of {count} missing ({missing[0]}{more})",
                        "download the missing shard(s) into the same folder (r1run download resumes)")
    return expected


def locate(path: Path) -> list[Path]:
    """The ordered files of the model at `path`: a file, any shard of a set, or a folder holding one model."""
    path = path.expanduser()
    if path.is_dir():
        return _locate_in_dir(path)
    if not path.exists():
        raise GGUFError(f"{path}: no such file or folder", "pass a .gguf file, any shard of a split model, or a folder")
    parts = split_parts(path.name)
    if parts is None:
        return [path]
    prefix, _, count = parts
    siblings = [shard_name(prefix, i, count) for i in range(1, count + 1)]
    present = [n for n in siblings if (path.parent / n).is_file()]
    return [path.parent / n for n in complete_set(present, str(path.parent))]


def _locate_in_dir(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.glob("*.gguf") if p.is_file() and not p.name.startswith("."))
    if not files:
        files = sorted(p for p in folder.rglob("*.gguf") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise GGUFError(f"{folder}: no .gguf files in this folder", "pass the model's folder or a .gguf file")
    by_parent: dict[Path, list[str]] = {}
    for f in files:
        by_parent.setdefault(f.parent, []).append(f.name)
    groups = [(parent, names) for parent, names_all in by_parent.items() for names in group_files(names_all).values()]
    # A vision projector beside a model is not a second model.
    models = [(p, n) for p, n in groups if not n[0].startswith("mmproj")] or groups
    if len(models) > 1:
        listed = ", ".join(str((p / n[0]).relative_to(folder)) for p, n in models[:6])
        raise GGUFError(f"{folder} holds {len(models)} models: {listed}{', ...' if len(models) > 6 else ''}",
                        "pass one of them (a file, or the first shard of a split model)")
    parent, names = models[0]
    return [parent / n for n in complete_set(names, str(parent))]


def _split_values(h: Header, n: int) -> tuple[int, int, int | None]:
    count, no, total = h.get(KEY_SPLIT_COUNT), h.get(KEY_SPLIT_NO), h.get(KEY_SPLIT_TENSORS)
    if n == 1 and count is None:
        return 1, 0, None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (count, no, total)):
        raise GGUFError(f"{h.name}: shard has no valid split.count / split.no / split.tensors.count",
                        "the shard set was not written by llama-gguf-split or gguf-py; re-download it")
    return count, no, total  # type: ignore[return-value]


def check_shard_set(headers: Sequence[Header]) -> None:
    """Check headers read in shard order form one complete, intact model; GGUFError otherwise."""
    n = len(headers)
    first = headers[0]
    totals: set[int] = set()
    for i, h in enumerate(headers):
        count, no, total = _split_values(h, n)
        if count != n:
            if n == 1:
                raise GGUFError(f"{h.name} is shard {no + 1} of {count} but its name does not say so",
                                f"llama.cpp finds the other shards by name: rename the files to "
                                f"NAME-{1:05d}-of-{count:05d}.gguf ... or pass the first shard")
            raise GGUFError(f"shards of different models: {h.name} says the model has {count} shards, the set has {n}",
                            "all shards must come from the same download; fetch the mismatched shard again")
        if no != i:
            raise GGUFError(f"{h.name} says it is shard {no + 1}, its name says {i + 1}",
                            "shards were renamed or mixed up; fetch them again")
        if total is not None:
            totals.add(total)
        arch = h.architecture
        if arch is not None and first.architecture is not None and arch != first.architecture:
            raise GGUFError(f"shards of different models: {first.name} is {first.architecture}, {h.name} is {arch}",
                            "all shards must come from the same download")
    if first.architecture is None:
        raise GGUFError(f"{first.name} has no general.architecture",
                        "pass the first shard of the model (it holds the metadata), or the file is not a model")
    have = sum(len(h.tensors) for h in headers)
    if len(totals) > 1 or (totals and have not in totals):
        raise GGUFError(f"shards of different models: split.tensors.count disagrees with the {have} tensors found "
                        f"in {n} shards",
                        "all shards must come from the same download; fetch the mismatched ones again")
    seen: dict[str, str] = {}
    for h in headers:
        for t in h.tensors:
            if t.name in seen:
                raise GGUFError(f"shards of different models: tensor {t.name} is in both {seen[t.name]} and {h.name}",
                                "all shards must come from the same download")
            seen[t.name] = h.name
    for h in headers:
        if h.missing_bytes:
            need = h.data_offset + h.data_size
            raise GGUFError(f"{h.name} is incomplete: {h.file_size:,} of {need:,} bytes",
                            "the download was interrupted: download it again (r1run download resumes)")
