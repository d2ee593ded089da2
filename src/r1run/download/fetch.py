"""One file from the hub to disk: resumable across runs, retried, verified as it arrives.

Why not `hf_hub_download`: in huggingface_hub 2.x it writes to a per-process
`<etag>.<uuid>.incomplete` file that a failed or killed run deletes or orphans
(nothing resumes across runs), it does not retry a 500 or a TCP reset on a file,
and it never checks the sha256. So r1run keeps its own partial file next to the
destination, named after the expected digest::

    DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf.<sha256[:12]>.part

and streams the missing range into it (`Range: bytes=<bytes on disk>-`) through
huggingface_hub's HTTP session (its proxies, certificates and headers). r1run
reads the body itself, not with `http_get`, because `http_get` waits for 10 MiB
before handing anything over (Ctrl-C waits with it; a trickle looks like
progress) and obeys any `Retry-After` without a limit. Here every failure (5xx,
408/429 with `Retry-After` capped at R1RUN_DOWNLOAD_MAX_WAIT, a TCP reset, a
short or corrupted body, a transfer slower than R1RUN_DOWNLOAD_MIN_RATE bytes/s
for R1RUN_DOWNLOAD_STALL_S seconds) is retried with bounded exponential backoff,
always from the bytes already on disk, and a cancel is seen at the next packet. Every byte written also goes through a
streaming hash; a file whose digest differs from the hub's is truncated and
fetched again. Only a verified file is renamed to its final name.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from r1run import hub
from r1run.download.select import RemoteFile
from r1run.download.verify import StreamHasher, hash_file
from r1run.errors import BadInput, R1runError
from r1run.retry import Backoff

log = logging.getLogger("r1run.download")

ENV_BACKOFF = "R1RUN_DOWNLOAD_BACKOFF"
ENV_ATTEMPTS = "R1RUN_DOWNLOAD_ATTEMPTS"
ENV_MAX_WAIT = "R1RUN_DOWNLOAD_MAX_WAIT"  # the longest r1run waits when a server says Retry-After
ENV_MIN_RATE = "R1RUN_DOWNLOAD_MIN_RATE"  # bytes/s below which a transfer counts as stalled ...
ENV_STALL_S = "R1RUN_DOWNLOAD_STALL_S"  # ... when it stays below for this many seconds
WRITE_BATCH = 1 << 20  # received bytes go to the file (and the hasher) in batches this big
PROGRESS_MIN = 1 << 20  # an attempt that brought less is a failure in a row (its bytes are kept all the same)


class DownloadFailed(R1runError):
    """A file could not be fetched intact within the retry budget."""


class DiskError(R1runError):
    """Writing to the destination failed (disk full, permissions)."""


class Cancelled(Exception):
    """Another file failed or the user interrupted: stop at the next chunk."""


class _Retry(Exception):
    """Internal: this attempt failed in a way worth retrying (after `wait` seconds when the server said so)."""

    def __init__(self, reason: str, wait: float | None = None, *, slow: bool = False) -> None:
        super().__init__(reason)
        self.wait = wait
        self.slow = slow  # a trickle: the bytes it brought do not count as progress


@dataclass(frozen=True)
class RetryPolicy(Backoff):
    """Up to `attempts` failures in a row without new bytes, waiting as `Backoff` says between them."""

    attempts: int = 8
    base: float = 1.0
    cap: float = 30.0
    integrity_attempts: int = 3  # whole-file refetches after a digest mismatch
    max_wait: float = 60.0  # the most r1run waits when a server asks for more with Retry-After
    min_rate: float = 1024.0  # bytes/s ...
    stall_s: float = 60.0  # ... sustained this long, or the transfer counts as stalled

    @classmethod
    def from_env(cls) -> "RetryPolicy":
        def number(var: str, default: float) -> float:
            raw = os.environ.get(var, "").strip()
            try:
                return max(0.0, float(raw)) if raw else default
            except ValueError:
                raise BadInput(f"{var}={raw!r} is not a number", f"unset it or give a number (default {default:g})") \
                    from None

        return cls(attempts=max(1, int(number(ENV_ATTEMPTS, cls.attempts))), base=number(ENV_BACKOFF, cls.base),
                   max_wait=number(ENV_MAX_WAIT, cls.max_wait), min_rate=number(ENV_MIN_RATE, cls.min_rate),
                   stall_s=max(1.0, number(ENV_STALL_S, cls.stall_s)))


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

    def write(self, chunk: bytes, *, cancelled_too: bool = False) -> int:
        if self.cancel.is_set() and not cancelled_too:
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
            waited = None
            trickle = False
            try:
                if sink.pos < remote.size:
                    _receive(job.url, sink, headers, policy, cancel)
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
                waited = exc.wait
                trickle = exc.slow
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
            if sink.pos - before >= PROGRESS_MIN and not trickle:  # a few bytes before each reset are no progress
                failures = 0
            failures += 1
            if failures >= policy.attempts:
                raise DownloadFailed(
                    f"{path}: {reason} ({failures} attempts in a row without progress)",
                    f"run the same command again: it resumes from the {sink.pos} bytes kept on disk",
                )
            delay = policy.delay(failures) if waited is None else waited
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


def _receive(url: str, sink: _Sink, headers: dict[str, str], policy: RetryPolicy, cancel: threading.Event) -> None:
    """One GET of the bytes from `sink.pos` on, written into `sink` as they arrive.

    Raises `_Retry` for what is worth trying again (408/429/5xx, with the server's Retry-After capped at
    `policy.max_wait`; a range answered from the wrong offset; a transfer slower than `policy.min_rate` for
    `policy.stall_s`), huggingface_hub's HTTP errors for the rest, `Cancelled` at the first packet after a cancel.
    """
    from huggingface_hub import constants  # noqa: PLC0415  (huggingface_hub loads where used: see r1run.hub)
    from huggingface_hub.utils import get_session, hf_raise_for_status  # noqa: PLC0415  (huggingface_hub loads where used: see r1run.hub)

    start = sink.pos
    request_headers = dict(headers)
    if start:
        request_headers["Range"] = f"bytes={start}-"
    with get_session().stream("GET", url, headers=request_headers, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT,
                              follow_redirects=True) as response:
        code = response.status_code
        if code in (408, 429) or code >= 500:
            asked = _retry_after(response.headers.get("Retry-After"))
            wait = None if asked is None else min(asked, policy.max_wait)
            said = "" if asked is None else f", asked to wait {asked:g} s" + (
                f" (r1run waits at most {policy.max_wait:g} s)" if asked > policy.max_wait else "")
            raise _Retry(f"HTTP {code}{said}", wait)
        hf_raise_for_status(response)
        if start and code == 200:  # the server ignored the Range: the body is the whole file
            sink.seek(0)
        elif start and code == 206 and not str(response.headers.get("Content-Range", "")).startswith(
                f"bytes {start}-"):
            raise _Retry(f"asked for bytes from {start}, got {response.headers.get('Content-Range')!r}")
        rate = _Rate(policy.min_rate, policy.stall_s)
        batch = bytearray()
        try:
            for chunk in response.iter_bytes():
                if cancel.is_set():
                    raise Cancelled()
                batch += chunk
                if len(batch) >= WRITE_BATCH:
                    sink.write(bytes(batch))
                    batch.clear()
                slow = rate.add(len(chunk))
                if slow:
                    raise _Retry(slow, slow=True)
        finally:
            if batch and not sink.overrun:  # good bytes received before a failure stay for the next attempt
                with contextlib.suppress(_Retry, OSError, R1runError):
                    sink.write(bytes(batch), cancelled_too=True)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number; an HTTP date counts as 'later', r1run's own backoff)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class _Rate:
    """A transfer slower than `floor` bytes/s over the last `window` seconds is a stall (a trickle is not progress)."""

    def __init__(self, floor: float, window: float) -> None:
        self.floor, self.window = floor, window
        self.began = time.monotonic()
        self.samples: deque[tuple[float, int]] = deque()
        self.recent = 0

    def add(self, n: int) -> str | None:
        now = time.monotonic()
        self.samples.append((now, n))
        self.recent += n
        while self.samples and self.samples[0][0] < now - self.window:
            self.recent -= self.samples.popleft()[1]
        if self.floor and now - self.began >= self.window and self.recent < self.floor * self.window:
            return (f"slower than {self.floor:g} bytes/s for {self.window:g} s ({self.recent} bytes): stalled "
                    f"(R1RUN_DOWNLOAD_MIN_RATE / R1RUN_DOWNLOAD_STALL_S set the limit)")
        return None


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
