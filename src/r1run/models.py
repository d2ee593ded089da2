"""Models on this machine: what `chat`, `plan`, `bench` and `inspect` call to find a model's files.

    local = resolve_local(home, "deepseek-r1", "UD-IQ1_S")
    local.main_path      # the file for llama.cpp's -m (first part of a split GGUF)
    local.paths          # every file, all verified
    local.settings       # temperature, min_p, ctx, cache_type_k, prompt_template ...

A model whose files are missing, partial or no longer verified is refused with
the `r1run download` command that fixes it. Only stats are taken: no hashing.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from r1run import catalog as cat
from r1run import usage
from r1run.download import manifest as mf
from r1run.download.select import SHARD, first_shards
from r1run.errors import BadInput, R1runError
from r1run.home import Home
from r1run.planner import published as pub


class ModelNotReady(R1runError):
    """The model is known but its files are not all downloaded and verified."""


@dataclass(frozen=True)
class LocalModel:
    model: str  # catalog key, repo id (ad-hoc downloads) or the file path given
    quant: str
    paths: tuple[Path, ...]
    settings: cat.Settings
    repo: Optional[str] = None
    architecture: str = ""
    manifest: Optional[mf.Manifest] = None

    @property
    def main_path(self) -> Path:
        firsts = first_shards([str(p) for p in self.paths])
        return Path(firsts[0]) if firsts else self.paths[0]

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.paths)


def download_command(model: str, quant: str, m: mf.Manifest | None = None) -> str:
    """The command that downloads (or re-verifies) this model + quant."""
    if "/" in model and m is not None:
        argv = ["r1run", "download", "--repo", m.repo, "--quant", quant]
        for pat in m.include:
            argv += ["--include", pat]
        return shlex.join(argv)
    return shlex.join(["r1run", "download", model, "--quant", quant])


@dataclass(frozen=True)
class Choice:
    """Which model a command runs: what the user named, or what r1run chose for them and why."""

    model: str  # catalog key, repo id or path
    quant: str | None
    reason: str | None = None  # None when the user named the model

    def describe(self) -> str:
        """'deepseek-r1 UD-IQ1_S: the model you downloaded last (2026-11-30 20:41 UTC)'."""
        what = " ".join(x for x in (self.model, self.quant) if x)
        return f"{what}: {self.reason}" if self.reason else what


def choose(home: Home, model: str | None, quant: str | None, *, catalog: cat.Catalog | None = None) -> Choice:
    """The model a run of MODEL [--quant Q] means, when the user left MODEL out.

    `--quant Q` alone names the catalog model that has quant Q (BadInput when none or several do).
    Without either: the model downloaded or run last that is still on disk and verified, else the
    newest verified download, and only when nothing is downloaded the catalog's default.
    """
    if model is not None:
        return Choice(model, quant)
    catalog = catalog or cat.load(home)
    if quant is not None:
        entry = catalog.model_with_quant(quant)
        return Choice(entry.key, catalog.quant(entry, quant).name, f"the catalog model with quant {quant}")
    for use in usage.load(home):
        if _still_there(home, use.model, use.quant):
            return Choice(use.model, None if use.model.endswith(".gguf") else use.quant,
                          f"the model you {use.last_action} last ({use.last_at.replace('T', ' ')[:16]} UTC)")
    ready = [m for m in mf.all_manifests(home) if m.summary_state() == "verified"]
    if ready:
        m = max(ready, key=lambda m: m.updated_at)
        return Choice(m.model, m.quant, "the model downloaded last")
    return Choice(catalog.default_model, None, "the catalog's default model; nothing is downloaded yet")


def _still_there(home: Home, model: str, quant: str) -> bool:
    if model.endswith(".gguf"):
        return Path(model).is_file()
    m = mf.load(home, model, quant)
    return m is not None and m.summary_state() == "verified"


def resolve_local(home: Home, model: str, quant: str | None = None, *,
                  catalog: cat.Catalog | None = None) -> LocalModel:
    """The verified files and recommended settings of MODEL --quant Q (or of a .gguf path)."""
    path = Path(model).expanduser()
    if model.endswith(".gguf") and path.is_file():
        return _from_path(path.resolve())
    catalog = catalog or cat.load(home)
    if "/" in model and model not in catalog.models:
        return _ad_hoc(home, model, quant)
    entry = catalog.model(model)
    q = catalog.quant(entry, quant)
    m = mf.load(home, entry.key, q.name)
    fix = download_command(entry.key, q.name)
    if m is None:
        raise ModelNotReady(f"{entry.key} {q.name} is not downloaded", f"run: {fix}")
    _check_ready(m, fix)
    return LocalModel(model=entry.key, quant=q.name, paths=tuple(Path(f.local_path) for f in m.files),
                      settings=entry.settings_for(q.name), repo=m.repo, architecture=entry.architecture, manifest=m)


def _check_ready(m: mf.Manifest, fix: str) -> None:
    states = m.states()
    bad = [(f, s) for f, s in zip(m.files, states, strict=True) if s != "verified"]
    if not bad:
        return
    counts: dict[str, int] = {}
    for _, s in bad:
        counts[s] = counts.get(s, 0) + 1
    what = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    raise ModelNotReady(f"{m.model} {m.quant}: {what} of {len(states)} file(s) (first: {bad[0][0].path})",
                        f"run: {fix}")


def _ad_hoc(home: Home, repo: str, quant: str | None) -> LocalModel:
    found = mf.for_model(home, repo)
    if quant is not None:
        found = [m for m in found if m.quant.lower() == quant.lower()]
    if not found:
        have = ", ".join(m.quant for m in mf.for_model(home, repo))
        raise ModelNotReady(
            f"nothing downloaded from {repo}" + (f" as quant {quant!r} (have: {have})" if have else ""),
            "run: r1run download --repo OWNER/NAME --include 'PATTERN' [--quant LABEL]",
        )
    if len(found) > 1:
        raise BadInput(f"{repo} has several downloads: {', '.join(m.quant for m in found)}", "pick one with --quant")
    m = found[0]
    _check_ready(m, download_command(repo, m.quant, m))
    return LocalModel(model=repo, quant=m.quant, paths=tuple(Path(f.local_path) for f in m.files),
                      settings=cat.Settings(), repo=repo, manifest=m)


def _from_path(path: Path) -> LocalModel:
    """A .gguf the user points at; the other parts of a split set must sit beside it."""
    match = SHARD.match(path.name)
    paths = [path]
    if match:
        count = int(match["count"])
        paths = [path.with_name(f"{match['prefix']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise BadInput(f"{path.name} is part {int(match['no'])} of {count}; missing beside it: "
                           f"{', '.join(missing[:4])}", "put every part of the split GGUF in one folder")
    quant = re.sub(r"-\d{5}-of-\d{5}$", "", path.stem)
    return LocalModel(model=str(path), quant=quant, paths=tuple(paths), settings=cat.Settings())


@dataclass(frozen=True)
class Row:
    """One line of `r1run models`."""

    model: str
    name: str
    quant: str
    repo: str
    bits: Optional[float]
    size_bytes: Optional[int]
    size_exact: bool
    quality: str
    state: str  # verified | partial | unverified | missing | not downloaded
    path: Optional[str]
    default: bool
    in_catalog: bool
    settings: cat.Settings = field(default_factory=cat.Settings)

    def to_json(self) -> dict:
        return {
            "model": self.model, "name": self.name, "quant": self.quant, "repo": self.repo, "bits": self.bits,
            "size_bytes": self.size_bytes, "size_exact": self.size_exact, "quality": self.quality,
            "state": self.state, "path": self.path, "default": self.default, "in_catalog": self.in_catalog,
            "settings": self.settings.model_dump(),
        }


def list_models(home: Home, catalog: cat.Catalog | None = None) -> list[Row]:
    """Every catalog model + quant, then ad-hoc downloads, with what is on disk."""
    catalog = catalog or cat.load(home)
    manifests = {(m.model, m.quant): m for m in mf.all_manifests(home)}
    rows = []
    for key, entry in catalog.models.items():
        for qname, q in entry.quants.items():
            published = pub.lookup(entry.repo, qname) if q.approx_bytes is None else None
            rows.append(_row(key, entry.name, qname, entry.repo, q.bits,
                             q.approx_bytes if published is None else published.bytes, q.size_bytes is not None,
                             q.quality, manifests.pop((key, qname), None), qname == entry.default_quant, True,
                             entry.settings_for(qname)))
    for (key, qname), m in sorted(manifests.items()):
        rows.append(_row(key, m.repo, qname, m.repo, None, None, False, "", m, False, False))
    return rows


def _row(key, name, quant, repo, bits, size, exact, quality, m: mf.Manifest | None, default, in_catalog,
         settings: cat.Settings | None = None) -> Row:
    settings = settings or cat.Settings()
    if m is None:
        return Row(key, name, quant, repo, bits, size, exact, quality, "not downloaded", None, default, in_catalog,
                   settings)
    firsts = first_shards([f.local_path for f in m.files])
    return Row(key, name, quant, m.repo, bits, m.total_bytes, True, quality, m.summary_state(),
               firsts[0] if firsts else m.dir, default, in_catalog, settings)
