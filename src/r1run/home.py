"""Every path r1run writes to, derived from one root: R1RUN_HOME."""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable


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


def log_path_for(logs: Path, what: str) -> Path:
    """A new log file for one run of `what` (chat, serve, worker), named by the time it starts."""

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return logs / f"{what}-{stamp}.log"
