"""The units r1run writes in: byte sizes (binary, one way of writing them for people) and UTC timestamps."""

from __future__ import annotations

from datetime import datetime, timezone

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40


def size(n: float) -> str:
    """Bytes in the largest binary unit under them, one decimal: '131.0 GiB', '92.1 MiB', '512 B'."""
    for unit, scale in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def utc_now() -> str:
    """Now as ISO 8601 UTC to the second: '2026-11-30T21:04:07Z' (manifests, usage records)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
