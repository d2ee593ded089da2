"""Every path r1run writes to, derived from one root: R1RUN_HOME."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path


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
        return self.root / "logs"

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


def log_path_for(logs: Path, what: str) -> Path:
    """A new log file for one run of `what` (chat, serve, worker), named by the time it starts."""

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return logs / f"{what}-{stamp}.log"
