"""One file from the hub to disk: resumable across runs, retried, verified as it arrives.

Why not `hf_hub_download`: in huggingface_hub 2.x it writes to a per-process
`<etag>.<uuid>.incomplete` file that a failed or killed run deletes or orphans
(nothing resumes across runs), it does not retry a 500 or a TCP reset on a file,
and it never checks the sha256. So r1run keeps its own partial file next to the
destination, named after the expected digest::

    DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf.<sha256[:12]>.part

and asks huggingface_hub's `http_get` (the same code `hf_hub_download` uses) to
stream the missing range into it (`Range: bytes=<bytes on disk>-`). http_get
itself resumes after a clean close or a stall; everything else (5xx, TCP reset,
short or corrupted bodies) is retried here with bounded exponential backoff,
always from the bytes already on disk. Every byte written also goes through a
streaming hash; a file whose digest differs from the hub's is truncated and
fetched again. Only a verified file is renamed to its final name.
"""

from __future__ import annotations

import errno
import glob
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, cast

from r1run import hub
from r1run.download.select import RemoteFile
from r1run.download.verify import StreamHasher, hash_file
from r1run.errors import R1runError
from r1run.retry import Backoff

log = logging.getLogger("r1run.download")

ENV_BACKOFF = "R1RUN_DOWNLOAD_BACKOFF"
ENV_ATTEMPTS = "R1RUN_DOWNLOAD_ATTEMPTS"


class DownloadFailed(R1runError):
    """A file could not be fetched intact within the retry budget."""


class DiskError(R1runError):
    """Writing to the destination failed (disk full, permissions)."""


class Cancelled(Exception):
    """Another file failed or the user interrupted: stop at the next chunk."""


class _Retry(Exception):
    """Internal: this attempt failed in a way worth retrying."""


@dataclass(frozen=True)
class RetryPolicy(Backoff):
    """Up to `attempts` failures in a row without new bytes, waiting as `Backoff` says between them."""

    attempts: int = 8
    base: float = 1.0
    cap: float = 30.0
    integrity_attempts: int = 3  # whole-file refetches after a digest mismatch

    @classmethod
    def from_env(cls) -> "RetryPolicy":
        base = float(os.environ.get(ENV_BACKOFF, cls.base))
        attempts = int(os.environ.get(ENV_ATTEMPTS, cls.attempts))
        return cls(attempts=max(1, attempts), base=max(0.0, base))


@dataclass
class FileEvents:
    """Callbacks from worker threads; each receives the file's repo path first."""

    on_bytes: Callable[[str, int], None] = lambda path, n: None  # received (negative: rolled back)
    on_check: Callable[[str, int], None] = lambda path, n: None  # hashed from disk
    on_retry: Callable[[str, int, str, float], None] = lambda path, failures, reason, delay: None


@dataclass(frozen=True)
class FileJob:
    repo: str
    remote: RemoteFile
    url: str
    dest: Path

    @property
    def part(self) -> Path:
        return self.dest.with_name(f"{self.dest.name}.{self.remote.checksum.hexdigest[:12]}.part")


@dataclass
class FetchResult:
    path: str
    fetched: int = 0  # bytes received from the network in this run
    resumed_from: int = 0  # bytes already on disk when this run started on the file
    attempts: int = 0
    retries: list[str] = field(default_factory=list)


def part_size(job: FileJob) -> int:
    try:
        return job.part.stat().st_size
    except (FileNotFoundError, NotADirectoryError):
        return 0


class _Sink:
    """The file object handed to `http_get`: writes, hashes and counts, and refuses extra bytes."""

    # Start writing received bytes to disk every so often, so the fsync that makes a verified file
    # durable has little left to do (measured: it cost ~9% of a fast local download when left to the end).
    WRITEBACK_EVERY = 32 << 20

    def __init__(self, f, hasher: StreamHasher, size: int, pos: int, on_bytes: Callable[[int], None],
                 cancel: threading.Event) -> None:
        self.f, self.hasher, self.size, self.pos = f, hasher, size, pos
        self.on_bytes, self.cancel = on_bytes, cancel
        self.received = 0
        self.overrun = False
        self._unsynced = 0
        self._syncing: threading.Thread | None = None

    def _writeback(self) -> None:
        if self._syncing is not None and self._syncing.is_alive():
            return
        self.f.flush()
        self._unsynced = 0
        fd = self.f.fileno()

        def sync() -> None:
            try:
                os.fdatasync(fd) if hasattr(os, "fdatasync") else os.fsync(fd)
            except OSError:
                pass  # the final fsync reports any real error

        self._syncing = threading.Thread(target=sync, daemon=True, name="r1run-writeback")
        self._syncing.start()

    def wait_writeback(self) -> None:
        if self._syncing is not None:
            self._syncing.join()

    def write(self, chunk: bytes) -> int:
        if self.cancel.is_set():
            raise Cancelled()
        n = len(chunk)
        if self.pos + n > self.size:
            self.overrun = True
            raise _Retry(f"the server sent more than {self.size} bytes")
        try:
            self.f.write(chunk)
        except OSError as exc:
            raise _disk_error(exc, self.f.name) from exc
        self.hasher.feed(chunk)
        self.pos += n
        self.received += n
        self._unsynced += n
        if self._unsynced >= self.WRITEBACK_EVERY:
            self._writeback()
        self.on_bytes(n)
        return n

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        # http_get rewinds to 0 when a ranged request is answered with 200 (whole body).
        if (offset, whence) != (0, 0):
            raise ValueError("only a rewind to the start is supported")
        self.f.seek(0)
        self.hasher.reset()
        self.on_bytes(-self.pos)
        self.pos = 0
        return 0

    def truncate(self, size: int | None = None) -> int:
        return self.f.truncate(self.pos if size is None else size)

    def flush(self) -> None:
        self.f.flush()


def _disk_error(exc: OSError, path: str) -> R1runError:
    if exc.errno == errno.ENOSPC:
        return DiskError(f"the disk is full while writing {path}",
                         "free some space (the partial file is kept) and run the same command again")
    return DiskError(f"cannot write {path}: {exc.strerror}",
                     "check the folder's permissions or pick another with --dir")


def _remove_stale_parts(job: FileJob) -> None:
    """Partial files of other versions of this file (an older commit) cannot be resumed."""
    # The name comes from the hub: escaped, so `*.gguf` or `[x]` in it match only that file's own parts.
    for p in job.dest.parent.glob(f"{glob.escape(job.dest.name)}.*.part"):
        if p != job.part and p.name.endswith(".part") and p.name[len(job.dest.name) + 1:-5].isalnum():
            p.unlink(missing_ok=True)


def fetch_file(
    job: FileJob,
    *,
    headers: dict[str, str],
    policy: RetryPolicy,
    events: FileEvents | None = None,
    cancel: threading.Event | None = None,
) -> FetchResult:
    """Bring `job.dest` to the hub's bytes, verified, resuming from `job.part`."""

    from huggingface_hub.file_download import http_get  # noqa: PLC0415  (huggingface_hub loads where used: see r1run.hub)
    from huggingface_hub.utils import disable_progress_bars  # noqa: PLC0415  (huggingface_hub loads where used: see r1run.hub)

    disable_progress_bars("huggingface_hub.http_get")  # r1run draws its own progress
    events = events or FileEvents()
    cancel = cancel or threading.Event()
    remote, path = job.remote, job.remote.path
    checksum = remote.checksum
    result = FetchResult(path)
    try:
        job.dest.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_parts(job)
        have = part_size(job)
        if have > remote.size:
            os.truncate(job.part, 0)
            have = 0
        f = open(job.part, "r+b" if job.part.exists() else "w+b")
    except OSError as exc:
        raise _disk_error(exc, str(job.part)) from exc
    result.resumed_from = have
    log.info("%s: %d of %d bytes on disk, fetching from %s", path, have, remote.size, job.url)
    # The digest covers the whole file, so bytes kept from an earlier run are read back once.
    prefix = hash_file(job.part, checksum, limit=have, on_bytes=lambda n: events.on_check(path, n)) if have else None
    f.seek(have)
    sink = _Sink(f, StreamHasher(checksum, prefix), remote.size, have, lambda n: events.on_bytes(path, n), cancel)
    failures = integrity_failures = 0
    try:
        while True:
            result.attempts += 1
            before = sink.pos
            reason = None
            try:
                if sink.pos < remote.size:
                    # http_get only calls write() on what it is given: the sink hashes and counts on the way
                    http_get(job.url, cast(BinaryIO, sink), resume_size=sink.pos, headers=dict(headers))
                if sink.pos < remote.size:
                    raise _Retry(f"the body ended at byte {sink.pos} of {remote.size}")
                sink.flush()
                digest = sink.hasher.hexdigest()
                if digest == checksum.hexdigest:
                    break
                integrity_failures += 1
                reason = f"{checksum.algo} mismatch (got {digest[:12]}..., hub says {checksum.hexdigest[:12]}...)"
                if integrity_failures >= policy.integrity_attempts:
                    _restart(sink, checksum)  # these bytes are known bad: keep none of them for next time
                    raise DownloadFailed(
                        f"{path}: {reason} {integrity_failures} times",
                        "the hub's bytes do not match its own checksum; try again later or another --revision",
                    )
                _restart(sink, checksum)
            except _Retry as exc:
                reason = str(exc)
                if sink.overrun:
                    sink.overrun = False
                    _restart(sink, checksum)
            except hub.hub_errors() as exc:
                if not hub.is_transient(exc):
                    mine = hub.translate(exc, job.repo)
                    if mine is None:
                        raise
                    raise mine from exc
                reason = _describe(exc)
            if sink.pos > before:
                failures = 0
            failures += 1
            if failures >= policy.attempts:
                raise DownloadFailed(
                    f"{path}: {reason} ({failures} attempts in a row without progress)",
                    f"run the same command again: it resumes from the {sink.pos} bytes kept on disk",
                )
            delay = policy.delay(failures)
            log.warning("%s: %s; retry %d in %.1f s from byte %d", path, reason, failures, delay, sink.pos)
            result.retries.append(reason)
            events.on_retry(path, failures, reason, delay)
            if cancel.wait(delay):
                raise Cancelled()
        try:
            sink.wait_writeback()
            os.fsync(f.fileno())
        except OSError as exc:
            raise _disk_error(exc, str(job.part)) from exc
    finally:
        sink.wait_writeback()  # the file is closed below: no flush thread may still use its descriptor
        result.fetched = sink.received
        sink.hasher.close()
        f.close()
        if sink.pos == 0 and job.part.exists() and job.part.stat().st_size == 0:
            job.part.unlink()  # nothing worth keeping for next time
    os.replace(job.part, job.dest)
    log.info("%s: verified %s %s, %d bytes received in %d attempt(s)", path, checksum.algo, checksum.hexdigest,
             result.fetched, result.attempts)
    return result


def _restart(sink: _Sink, checksum) -> None:
    """Throw away everything received: truncate to zero, new hasher."""
    sink.hasher.close()
    sink.hasher = StreamHasher(checksum)
    sink.f.seek(0)
    sink.f.truncate(0)
    sink.on_bytes(-sink.pos)
    sink.pos = 0


def _describe(exc: BaseException) -> str:
    code = hub.status_of(exc)
    if code is not None:
        return f"HTTP {code}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:120] if text else type(exc).__name__
