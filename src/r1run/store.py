"""Your models: what is downloaded (`r1run list`) and removing a quant (`r1run rm`).

    installed(home)                   -> [Installed]   every download r1run recorded, plus catalog quants
                                                       found in the Hugging Face cache and not yet verified
    removal(home, "deepseek-r1", "UD-IQ1_S")  -> Removal   what `rm` would delete and free (writes nothing)
    remove(home, removal)             deletes exactly those files, the manifest and the usage record

A quant's files are the ones its manifest lists (and their partial downloads): nothing else in the
folder is touched. Files r1run uses from the Hugging Face cache are never deleted by r1run (the cache
is the `hf` CLI's: `hf cache rm`); `rm` forgets them and says so. A quant that an r1run server,
worker or chat is running is refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from r1run import catalog as cat
from r1run import running, usage
from r1run.download import hfcache
from r1run.download import manifest as mf
from r1run.download.core import LOCK_NAME
from r1run.download.select import first_shards, match
from r1run.errors import BadInput, R1runError
from r1run.fsutil import try_locked
from r1run.home import Home

Where = Literal["r1run", "folder", "hf-cache"]


@dataclass(frozen=True)
class Installed:
    model: str
    quant: str
    repo: str
    state: str  # verified | partial | unverified | missing | in hf cache (found, not verified yet)
    where: Where  # r1run's models folder, a folder given with --dir, or the Hugging Face cache
    dir: str
    main_path: str  # what llama.cpp loads (first shard)
    files: int
    size_bytes: int  # the quant's published size
    on_disk_bytes: int  # what is there now (complete files and partial downloads)
    last_used: str | None  # ISO 8601 UTC: downloaded or ran, whichever is later
    in_use_by: tuple[int, ...] = ()  # pids of r1run processes running it

    def to_json(self) -> dict:
        return {"model": self.model, "quant": self.quant, "repo": self.repo, "state": self.state,
                "where": self.where, "dir": self.dir, "path": self.main_path, "files": self.files,
                "size_bytes": self.size_bytes, "on_disk_bytes": self.on_disk_bytes, "last_used_at": self.last_used,
                "in_use_by": list(self.in_use_by)}


def where_of(home: Home, folder: str) -> Where:
    if hfcache.is_inside(folder):
        return "hf-cache"
    try:
        Path(folder).resolve().relative_to(home.models.resolve())
        return "r1run"
    except ValueError:
        return "folder"


def installed(home: Home, catalog: cat.Catalog | None = None) -> list[Installed]:
    """Every recorded download (most recently used first), then catalog quants sitting unverified in the
    Hugging Face cache."""
    used = {(u.model, u.quant): u.last_at for u in usage.load(home)}
    procs = running.alive(home)
    rows = []
    for m in mf.all_manifests(home):
        paths = [f.local_path for f in m.files]
        firsts = first_shards(paths)
        real = {os.path.realpath(p) for p in paths}
        rows.append(Installed(
            m.model, m.quant, m.repo, m.summary_state(), where_of(home, m.dir), m.dir,
            firsts[0] if firsts else m.dir, len(m.files), m.total_bytes, _on_disk(m),
            used.get((m.model, m.quant)) or m.updated_at or None,
            tuple(p.record.pid for p in procs if real & {os.path.realpath(x) for x in p.record.paths}),
        ))
    rows.sort(key=lambda r: r.last_used or "", reverse=True)
    have = {(r.model, r.quant) for r in rows}
    return rows + _in_hf_cache(catalog or cat.load(home), have)


def _on_disk(m: mf.Manifest) -> int:
    total = 0
    for f in m.files:
        try:
            total += os.stat(f.local_path).st_size
            continue
        except OSError:
            pass
        for part in f.partials():
            try:
                total += os.stat(part).st_size
            except OSError:
                continue
    return total


def _in_hf_cache(catalog: cat.Catalog, have: set[tuple[str, str]]) -> list[Installed]:
    """Catalog quants whose files are all in a Hugging Face cache snapshot, not yet verified by r1run."""
    rows = []
    for key, entry in catalog.models.items():
        snaps = hfcache.repo_folder(entry.repo) / "snapshots"
        if not snaps.is_dir():
            continue
        for snap in sorted(snaps.iterdir()):
            files = {p.relative_to(snap).as_posix(): p for p in snap.rglob("*") if p.is_file()}
            for qname, q in entry.quants.items():
                if (key, qname) in have or not q.include:
                    continue
                chosen = match(files, q.include)
                if not chosen:
                    continue
                size = sum(files[c].stat().st_size for c in chosen)
                firsts = first_shards([str(files[c]) for c in chosen])
                rows.append(Installed(key, qname, entry.repo, "in hf cache", "hf-cache", str(snap), firsts[0],
                                      len(chosen), size, size, None))
                have.add((key, qname))
    return rows


@dataclass(frozen=True)
class Removal:
    manifest: mf.Manifest
    delete: tuple[str, ...]  # files and partial downloads r1run will delete
    keep: tuple[str, ...]  # files it only forgets (in the Hugging Face cache)
    free_bytes: int
    kept_bytes: int


def removal(home: Home, model: str, quant: str | None, catalog: cat.Catalog | None = None) -> Removal:
    """What removing MODEL [QUANT] means, or BadInput (not downloaded, several quants) / R1runError (in use)."""
    model, quant = _split_name(model, quant)
    m = _manifest(home, model, quant, catalog or cat.load(home))
    delete, keep, free, kept = [], [], 0, 0
    for f in m.files:
        if hfcache.is_inside(f.local_path):
            keep.append(f.local_path)
            kept += _size(f.local_path)
            continue
        for p in [f.local_path, *map(str, f.partials())]:
            if os.path.lexists(p):
                delete.append(p)
                free += _size(p)
    users = running.using(home, [f.local_path for f in m.files])
    if users:
        x = users[0].record
        raise R1runError(f"{m.model} {m.quant} is in use by r1run {x.kind} (pid {x.pid}"
                         + (f", {x.url}" if x.url else "") + ")",
                         f"stop it first: r1run stop {x.pid}")
    return Removal(m, tuple(delete), tuple(keep), free, kept)


def remove(home: Home, r: Removal) -> None:
    """Delete the files of `r`, then its manifest and usage record; empty folders r1run made go too."""
    folder = Path(r.manifest.dir)
    where = where_of(home, str(folder))
    # the lock a download of this quant takes (for files in the Hugging Face cache: r1run's own folder)
    lock = (home.models / r.manifest.repo if where == "hf-cache" else folder) / LOCK_NAME
    with try_locked(lock) as got:
        if not got:
            raise R1runError(f"a download into {folder} is running", "wait for it to finish, or stop it, then rm")
        if running.using(home, [f.local_path for f in r.manifest.files]):  # started since removal() looked
            raise R1runError(f"{r.manifest.model} {r.manifest.quant} was just started by r1run",
                             "stop it first (r1run ps shows it)")
        for p in r.delete:
            try:
                os.unlink(p)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise R1runError(f"cannot delete {p}: {exc.strerror}", "check the folder's permissions") from exc
        mf.path_for(home, r.manifest.model, r.manifest.quant).unlink(missing_ok=True)
        usage.forget(home, r.manifest.model, r.manifest.quant)
    if where == "r1run":
        lock.unlink(missing_ok=True)
        _prune(Path(p).parent for p in r.delete)
        _prune([mf.path_for(home, r.manifest.model, r.manifest.quant).parent])


def _prune(folders) -> None:
    """Remove folders left empty, deepest first, stopping at the first that is not empty."""
    for d in sorted({Path(f) for f in folders}, key=lambda p: len(p.parts), reverse=True):
        while True:
            try:
                d.rmdir()
            except OSError:
                break
            d = d.parent


def _size(p: str) -> int:
    try:
        return os.stat(p).st_size
    except OSError:
        return 0


def _split_name(model: str, quant: str | None) -> tuple[str, str | None]:
    """`deepseek-r1:UD-IQ1_S` (the served name) is MODEL QUANT; a path or repo keeps its colons."""
    if quant is None and ":" in model and os.path.sep not in model and "/" not in model:
        model, _, quant = model.partition(":")
    return model, quant or None


def _manifest(home: Home, model: str, quant: str | None, catalog: cat.Catalog) -> mf.Manifest:
    key = model
    if model in catalog.models or model.lower() in {k.lower() for k in catalog.models}:
        entry = catalog.model(model)
        key = entry.key
        if quant is not None and (q := cat.find_quant(entry, quant)) is not None:
            quant = q.name
    found = mf.for_model(home, key)
    if quant is not None:
        found = [m for m in found if m.quant.lower() == quant.lower()]
    if not found:
        have = sorted({f"{m.model}:{m.quant}" for m in mf.all_manifests(home)})
        raise BadInput(f"{model}{' ' + quant if quant else ''} is not downloaded",
                       f"downloaded: {', '.join(have)}" if have else "nothing is downloaded (r1run list)")
    if len(found) > 1:
        raise BadInput(f"{key} has several quants downloaded: {', '.join(m.quant for m in found)}",
                       f"say which: r1run rm {key} --quant {found[0].quant}")
    return found[0]
