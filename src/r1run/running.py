"""What r1run is running now: its servers, workers and chats (`r1run ps`, `r1run stop`, `rm`'s refusal).

Each running `r1run serve`, `worker` or `chat` keeps one record, `<R1RUN_HOME>/running/<pid>.json`::

    {"schema": "r1run.running/1", "kind": "serve", "pid": 4242, "created": 1764540000.12,
     "name": "deepseek-r1:UD-IQ1_S", "model": "deepseek-r1", "quant": "UD-IQ1_S",
     "paths": ["/models/.../DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf", ...],
     "engine": "llama.cpp b11434", "url": "http://127.0.0.1:8080", "log": "/.../serve-....log",
     "started_at": "2026-11-30T21:04:00Z"}

`pid` is r1run's own process; `created` its start time as the OS reports it, so a pid reused by
another program is never taken for r1run. Records are hints: `alive` checks each one, and the
record of a process that died without removing it (SIGKILL, a crash, a power cut) is deleted the
first time anyone reads it. The llama.cpp processes are found as the r1run process's children.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Literal

import psutil

from r1run.fsutil import write_atomic
from r1run.home import Home
from r1run.units import utc_now

SCHEMA = "r1run.running/1"
Kind = Literal["serve", "worker", "chat"]


@dataclass(frozen=True)
class Record:
    kind: Kind
    name: str  # what the user knows it by: deepseek-r1:UD-IQ1_S, a file's stem, "rpc worker"
    model: str = ""  # catalog key, repo id or path ("" for a worker)
    quant: str = ""
    paths: tuple[str, ...] = ()  # the model's files
    engine: str = ""  # llama.cpp and its release
    url: str = ""  # where it listens (serve, worker)
    log: str = ""
    pid: int = 0
    created: float = 0.0
    started_at: str = ""


@dataclass(frozen=True)
class Process:
    """A running record, checked: its llama.cpp children and what they use now."""

    record: Record
    children: tuple[int, ...] = ()
    rss_bytes: int = 0  # r1run and its children together
    uptime_s: float = 0.0
    programs: tuple[str, ...] = field(default_factory=tuple)


def folder(home: Home) -> Path:
    return home.root / "running"


@contextlib.contextmanager
def registered(home: Home, record: Record) -> Iterator[Record]:
    """Keep a record for this process while the block runs. Best effort: a home that cannot be written
    must not stop a server from serving (it only goes unlisted)."""
    me = psutil.Process()
    record = Record(**{**asdict(record), "paths": tuple(record.paths), "pid": me.pid,
                       "created": me.create_time(), "started_at": utc_now()})
    path = folder(home) / f"{me.pid}.json"
    try:
        write_atomic(path, json.dumps({"schema": SCHEMA, **asdict(record)}, indent=1))
        written = True
    except OSError:
        written = False
    try:
        yield record
    finally:
        if written:
            path.unlink(missing_ok=True)


def _read(path: Path) -> Record | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.pop("schema", None) != SCHEMA:
            return None
        data["paths"] = tuple(str(p) for p in data.get("paths", ()))
        return Record(**data)
    except (OSError, ValueError, TypeError):
        return None


def _process(record: Record) -> psutil.Process | None:
    """r1run's process for this record, if it is still the one that wrote it."""
    try:
        p = psutil.Process(record.pid)
        if abs(p.create_time() - record.created) > 1.0 or p.status() == psutil.STATUS_ZOMBIE:
            return None
        return p
    except (psutil.Error, ValueError):
        return None


def alive(home: Home) -> list[Process]:
    """Every r1run server, worker and chat still running, oldest first; stale records are deleted."""
    found = []
    root = folder(home)
    for path in sorted(root.glob("*.json")) if root.is_dir() else ():
        record = _read(path)
        p = _process(record) if record is not None else None
        if record is None or p is None:
            path.unlink(missing_ok=True)  # died without cleaning up, or not ours: never trusted
            continue
        found.append(_measure(record, p))
    return sorted(found, key=lambda x: x.record.created)


def _measure(record: Record, p: psutil.Process) -> Process:
    kids: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error):
        kids = [k for k in p.children(recursive=True) if not _watchdog(k)]
    rss, programs = 0, []
    for q in (p, *kids):
        with contextlib.suppress(psutil.Error):
            rss += q.memory_info().rss
            if q is not p:
                programs.append(q.name())
    return Process(record, tuple(k.pid for k in kids), rss, max(0.0, time.time() - record.created), tuple(programs))


def _watchdog(p: psutil.Process) -> bool:
    """r1run's own watchdog (macOS), not one of its llama.cpp programs."""
    try:
        return "r1run.watchdog" in p.cmdline()
    except psutil.Error:
        return False


def using(home: Home, paths: list[str]) -> list[Process]:
    """The running servers, workers and chats that have any of these files open as their model."""
    wanted = {os.path.realpath(p) for p in paths}
    return [x for x in alive(home) if wanted & {os.path.realpath(p) for p in x.record.paths}]


def stop(x: Process, grace: float = 10.0) -> str:
    """Stop one: r1run itself first (it stops its llama.cpp and cleans up), then whatever it left behind.

    Returns how it ended: "stopped", "killed" (did not stop within the grace period) or "gone".
    """
    p = _process(x.record)
    kids = []
    for pid in x.children:
        with contextlib.suppress(psutil.Error):
            kids.append(psutil.Process(pid))
    if p is None and not kids:
        return "gone"
    first = signal.SIGINT if x.record.kind == "chat" else signal.SIGTERM  # chat stops cleanly on Ctrl-C
    with contextlib.suppress(psutil.Error):
        if p is not None:
            p.send_signal(first)
    left = _wait_gone([q for q in (p, *kids) if q is not None], grace)
    how = "stopped"
    if left:  # r1run did not stop them in time (or died and left them): end them ourselves
        for q in left:
            with contextlib.suppress(psutil.Error):
                q.terminate()
        left = _wait_gone(left, grace / 2)
        for q in left:
            how = "killed"
            with contextlib.suppress(psutil.Error):
                q.kill()
        _wait_gone(left, 5)
    return how


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process has ended; return those still running. A zombie has ended: it only waits
    for its parent (a shell, a test) to collect its exit status."""
    deadline = time.monotonic() + timeout
    while True:
        left = [q for q in procs if _running(q)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def _running(q: psutil.Process) -> bool:
    try:
        return q.is_running() and q.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
