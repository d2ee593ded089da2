"""Every path r1run writes to, derived from one root: R1RUN_HOME."""

from __future__ import annotations

import functools
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from r1run.errors import BadInput


def default_root() -> Path:
    """The platform's user data directory for r1run."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "r1run"
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "r1run"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "r1run"


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def from_env(cls) -> "Home":
        env = os.environ.get("R1RUN_HOME")
        return cls(Path(env).expanduser().resolve() if env else default_root())

    @property
    def builds(self) -> Path:
        return self.root / "builds"

    @property
    def sources(self) -> Path:
        return self.root / "sources"

    @property
    def logs(self) -> Path:
        """R1RUN_HOME/logs; when that cannot be written (R1RUN_HOME is a file, read-only, full...), a temporary
        folder, announced once through `notice`: a command that needs nothing else written still runs."""
        return _logs_for(self.root)

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def evals(self) -> Path:
        """`r1run eval` results and the answers they scored."""
        return self.root / "evals"

    @property
    def models(self) -> Path:
        return Path(os.environ["R1RUN_MODELS"]).expanduser() if os.environ.get("R1RUN_MODELS") else self.root / "models"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def usage_file(self) -> Path:
        """When each model was last downloaded and last run (r1run.usage)."""
        return self.root / "usage.json"

    @property
    def default_build_file(self) -> Path:
        return self.builds / "default"

    def ensure(self, path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        return path

    def problem(self) -> str | None:
        """What keeps r1run from writing its home, or None: `R1RUN_HOME=/x is a file, not a folder` ..."""
        return _problem(self.root)


def _problem(root: Path) -> str | None:
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return f"R1RUN_HOME={root}: {probe} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"R1RUN_HOME={root}: {probe} is not writable"
    return None


def _to_stderr(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")


# Tells the user something about their home; the CLI puts its own warning line here.
notice: Callable[[str], None] = _to_stderr


@functools.lru_cache(maxsize=None)
def _logs_for(root: Path) -> Path:
    logs = root / "logs"
    try:
        logs.mkdir(parents=True, exist_ok=True)
        if os.access(logs, os.W_OK):
            return logs
        why = f"{logs} is not writable"
    except OSError as exc:
        why = _problem(root) or f"cannot create {logs}: {exc.strerror}"
    fallback = Path(tempfile.mkdtemp(prefix="r1run-logs-"))
    notice(f"{why}; logs go to {fallback} for this run")
    return fallback


LOG_KEEP_ENV = "R1RUN_LOG_KEEP"
LOG_KEEP_DEFAULT = 20
_LOG_NAME = re.compile(r"^(?P<kind>[a-z]+)-\d{8}")  # chat-20261130T231030.211330Z.log (older: bench-20261130-2315...)


def log_stamp() -> str:
    """UTC time to the microsecond, as log names carry it: 20261130T231030.211330Z (sorts by time)."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def log_path_for(logs: Path, what: str, detail: str = "", stamp: str | None = None) -> Path:
    """A new log file for one run of `what` (chat, serve, worker, bench, build, download), in the one naming style
    `<what>-<UTC time>[-<detail>].log`; older logs of the same kind beyond the newest R1RUN_LOG_KEEP go."""

    prune_logs(logs, what, keep=log_keep() - 1)
    return logs / f"{what}-{stamp or log_stamp()}{f'-{detail}' if detail else ''}.log"


def log_keep() -> int:
    """How many logs of each kind to keep (R1RUN_LOG_KEEP, default 20; 0 keeps every log)."""
    raw = os.environ.get(LOG_KEEP_ENV, "").strip()
    if not raw:
        return LOG_KEEP_DEFAULT
    if not raw.isdigit():
        raise BadInput(f"{LOG_KEEP_ENV}={raw!r} is not a whole number", f"set it to the number of logs of each kind "
                       f"to keep (default {LOG_KEEP_DEFAULT}; 0 keeps every log)")
    return int(raw)


def prune_logs(logs: Path, what: str, keep: int) -> list[Path]:
    """Delete the oldest logs of kind `what` so that at most `keep` remain (keep < 0: none removed); the removed."""
    if keep < 0 or not logs.is_dir():
        return []
    mine = []
    for p in logs.iterdir():
        m = _LOG_NAME.match(p.name)
        if m and m["kind"] == what and p.suffix == ".log" and p.is_file():
            try:
                mine.append((p.stat().st_mtime_ns, p.name, p))
            except OSError:
                continue
    mine.sort()
    gone = [p for _, _, p in mine[:max(0, len(mine) - keep)]]
    for p in gone:
        try:
            p.unlink()
        except OSError:
            pass  # another r1run removed it first
    return gone
