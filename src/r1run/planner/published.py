"""Published sizes of catalog quants (`data/published_sizes.json`): what the publisher shows, with its source.

Used where no GGUF header can be read (offline, not downloaded). A figure here is never presented as
read from a file: callers label it "published".
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class PublishedSize:
    repo: str
    quant: str
    bytes: int
    shown: str      # as the publisher shows it, e.g. "131GB (GiB)"
    source: str     # where the figure was read


@functools.lru_cache(maxsize=1)
def _data() -> dict:
    text = resources.files("r1run.planner").joinpath("data/published_sizes.json").read_text(encoding="utf-8")
    return json.loads(text)


def lookup(repo: str, quant: str) -> PublishedSize | None:
    """The published size of `quant` in `repo` (case-insensitive quant name), or None."""
    quants = _data()["repos"].get(repo, {})
    key = next((k for k in quants if k.lower() == quant.lower()), None)
    if key is None:
        return None
    row = quants[key]
    return PublishedSize(repo, key, int(row["bytes"]), row["shown"], row["source"])


def all_sizes() -> list[PublishedSize]:
    return [PublishedSize(repo, q, int(r["bytes"]), r["shown"], r["source"])
            for repo, quants in _data()["repos"].items() for q, r in quants.items()]
