"""When each model was last downloaded and last run, so a command without a model means the one you used.

Stored in `<R1RUN_HOME>/usage.json`, e.g.::

    {"schema_version": 1,
     "models": [{"model": "deepseek-r1", "quant": "UD-IQ1_S",
                 "downloaded_at": "2026-11-30T20:41:07Z", "ran_at": "2026-11-30T20:44:51Z"},
                {"model": "/data/gguf/Qwen3-8B-Q4_K_M.gguf", "quant": "Qwen3-8B-Q4_K_M",
                 "downloaded_at": null, "ran_at": "2026-11-29T09:12:00Z"}]}

`model` is a catalog key, a hub repository id (an ad-hoc download) or the absolute path of a
.gguf the user ran. Records are hints, never trusted: whoever reads one checks that the files
are still there and verified.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from r1run.fsutil import locked, write_atomic
from r1run.home import Home
from r1run.units import utc_now

SCHEMA_VERSION = 1
Action = Literal["downloaded", "ran"]


@dataclass(frozen=True)
class Use:
    model: str
    quant: str
    downloaded_at: str | None = None  # ISO 8601 UTC
    ran_at: str | None = None

    @property
    def last_at(self) -> str:
        return max(self.downloaded_at or "", self.ran_at or "")

    @property
    def last_action(self) -> Action:
        return "ran" if (self.ran_at or "") >= (self.downloaded_at or "") else "downloaded"


def load(home: Home) -> list[Use]:
    """Every record, most recently used first; an unreadable file counts as empty."""
    try:
        data = json.loads(home.usage_file.read_text(encoding="utf-8"))
        rows = [Use(str(r["model"]), str(r["quant"]), r.get("downloaded_at"), r.get("ran_at"))
                for r in data["models"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return sorted(rows, key=lambda u: u.last_at, reverse=True)


def forget(home: Home, model: str, quant: str) -> None:
    """Drop the record of MODEL QUANT (it was removed). Best effort, like `record`."""
    try:
        with locked(home.root / ".usage.lock"):
            rows = [u for u in load(home) if (u.model, u.quant) != (model, quant)]
            _write(home, rows)
    except OSError:
        pass


def _write(home: Home, rows: list[Use]) -> None:
    write_atomic(home.usage_file, json.dumps({
        "schema_version": SCHEMA_VERSION,
        "models": [u.__dict__ for u in sorted(rows, key=lambda u: u.last_at, reverse=True)],
    }, indent=1))


def record(home: Home, model: str, quant: str, action: Action) -> None:
    """Note that MODEL QUANT was just downloaded or run. Best effort: a home that cannot be written
    must not fail the download or the chat that called this."""
    try:
        with locked(home.root / ".usage.lock"):
            rows = {(u.model, u.quant): u for u in load(home)}
            old = rows.get((model, quant), Use(model, quant))
            now = utc_now()
            rows[(model, quant)] = Use(model, quant, now if action == "downloaded" else old.downloaded_at,
                                       now if action == "ran" else old.ran_at)
            _write(home, list(rows.values()))
    except OSError:
        pass

