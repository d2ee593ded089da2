"""Common GPUs and Apple chips with their memory and bandwidth (`data/gpus.json`, each row with its source).

    lookup("NVIDIA GeForce RTX 4090") -> GpuSpec(name="RTX 4090", memory_bytes=24 GiB, bandwidth=1008e9, ...)

Vendor figures: every speed derived from them is an upper bound.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class GpuSpec:
    name: str
    vendor: str            # nvidia | amd | apple
    memory_bytes: int      # Apple: the largest memory the chip ships with (unified: it is the RAM)
    bandwidth: float       # bytes/s, as published
    unified: bool
    source: str


@functools.lru_cache(maxsize=1)
def _rows() -> tuple[tuple[re.Pattern[str], GpuSpec], ...]:
    text = resources.files("r1run.planner").joinpath("data/gpus.json").read_text(encoding="utf-8")
    return tuple((re.compile(r["match"], re.I), GpuSpec(r["name"], r["vendor"], int(r["memory_bytes"]),
                                                        float(r["bandwidth_gbs"]) * 1e9, bool(r["unified"]),
                                                        r["source"]))
                 for r in json.loads(text)["gpus"])


def lookup(name: str) -> GpuSpec | None:
    """The first row whose pattern occurs in `name` (a device name as drivers report it, or what a user typed)."""
    return next((spec for pattern, spec in _rows() if pattern.search(name or "")), None)


def names() -> list[str]:
    return [spec.name for _, spec in _rows()]
