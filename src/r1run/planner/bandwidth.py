"""Memory bandwidth: vendor figures per chip (planner.gpus, upper bounds, as published) and a short probe of RAM.

Every speed derived from these is an upper bound (bytes a token reads / bandwidth); real runs
reach a fraction of it.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time

import psutil

from r1run import cpuload
from r1run.errors import BadInput
from r1run.fsutil import write_atomic
from r1run.planner import gpus

GB = 1e9

DEFAULT_DISK = 3.0 * GB          # a PCIe 4 NVMe SSD reading sequentially; random mmap reads are slower
PROBE_BYTES = 1 << 30  # per array (two are copied): past any CPU cache, and long enough per pass that starting
                       # the threads does not count (256 MiB measured 44 GB/s here where 1 GiB measured 56)


def known_bandwidth(name: str) -> float | None:
    """Vendor bandwidth in bytes/s for a device or chip name, e.g. 'NVIDIA GeForce RTX 4090' (planner.gpus' table)."""
    spec = gpus.lookup(name)
    return spec.bandwidth if spec else None


def parse_rate(text: str) -> float:
    """'50GB/s', '50 GB/s', '50' (GB/s) or '400GiB/s' -> bytes/s."""
    m = re.fullmatch(r"\s*([\d.]+)\s*(GB|GiB|MB|MiB|TB)?(?:/s)?\s*", text, re.I)
    if not m:
        raise BadInput(f"cannot read bandwidth {text!r}",
                       "write it like 80GB/s (or cpu=80GB/s,gpu=1000GB/s,disk=3GB/s)")
    unit = (m[2] or "GB").lower()
    scale = {"gb": 1e9, "gib": 2**30, "mb": 1e6, "mib": 2**20, "tb": 1e12}[unit]
    return float(m[1]) * scale


def parse_bandwidth_option(text: str | None) -> dict[str, float]:
    """`--bandwidth 80GB/s` (RAM) or `cpu=80GB/s,gpu=1000GB/s,disk=3GB/s` -> {"cpu": ..., "gpu": ..., "disk": ...}."""
    if not text:
        return {}
    out: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            key, value = "cpu", part
        key = key.strip().lower()
        if key not in ("cpu", "ram", "gpu", "disk"):
            raise BadInput(f"--bandwidth: unknown target {key!r}", "use cpu=, gpu= or disk=, e.g. cpu=80GB/s")
        out["cpu" if key == "ram" else key] = parse_rate(value)
    return out


MEASURE_HOW = "numpy copy of 1 GiB, one slice per CPU thread, best of 0.5 s"


def measure_ram(seconds: float = 0.5, threads: int | None = None) -> float:
    """Copy a 1 GiB numpy array a few times (less with under 16 GiB of RAM), each CPU thread its own slice at
    once (numpy lets go of the GIL while it copies); bytes moved (read + write) per second. One thread alone
    reaches less than llama.cpp's threads together (here 41 against 56 GB/s with 2): a bound is measured the
    way it is used."""
    import numpy as np  # noqa: PLC0415  (heavy, ~50 ms, and needed once per machine: the result is cached)

    n = max(1, threads or os.cpu_count() or 1)
    size = min(PROBE_BYTES, max(64 << 20, psutil.virtual_memory().total // 16))
    a = np.ones(size // 8, dtype=np.float64)
    b = np.empty_like(a)
    np.copyto(b, a)  # fault the pages in
    edges = [a.size * i // n for i in range(n + 1)]

    def copy(lo: int, hi: int, start: threading.Barrier) -> None:
        start.wait()
        np.copyto(b[lo:hi], a[lo:hi])

    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = threading.Barrier(n + 1)
        workers = [threading.Thread(target=copy, args=(edges[i], edges[i + 1], start), daemon=True) for i in range(n)]
        for w in workers:
            w.start()
        t = time.perf_counter()
        start.wait()
        for w in workers:
            w.join()
        best = max(best, 2 * a.nbytes / (time.perf_counter() - t))
    return best


def ram_bandwidth(home, *, refresh: bool = False) -> float:
    """The measured RAM bandwidth, cached once per machine under R1RUN_HOME/cache/bandwidth.json.

    Measured again (at most cpuload.SETTLE_PROBES times) while other programs used the CPUs during the earlier
    measurements, keeping the highest: the figure bounds speeds from above, and others' work only lowers it. It
    takes about a second, so it is done without a word."""
    path = home.cache / "bandwidth.json"
    earlier: dict | None = None
    if not refresh:
        try:
            cached = json.loads(path.read_text())
            if cached.get("how") == MEASURE_HOW:  # a figure measured another way (one thread) is measured again
                value = float(cached["ram_bytes_per_s"])
                if cpuload.settled(cached):
                    return value
                earlier = cached
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
    before = cpuload.CpuClock.now()
    value = measure_ram()
    share = cpuload.others_share(before, cpuload.CpuClock.now())
    record = cpuload.after_probe(  # the higher figure stands
        earlier, {"ram_bytes_per_s": value, "measured_at": time.time(), "how": MEASURE_HOW}, share,
        lambda old, new: float(old["ram_bytes_per_s"]) > new["ram_bytes_per_s"])
    try:
        write_atomic(path, json.dumps(record))
    except OSError:
        pass  # a cache: an unwritable home only costs the next run a measurement
    return float(record["ram_bytes_per_s"])
