"""Byte sizes: the binary units r1run counts in, and the one way it writes a size for people."""

from __future__ import annotations

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
