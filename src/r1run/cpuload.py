"""Did a measurement have the CPUs to itself? The CPU time other programs used while r1run measured.

r1run caches what it measures of this machine (RAM bandwidth: planner.bandwidth; a thread's arithmetic:
bench.arithmetic), and a figure taken while other programs ran is not the machine's: seen here beside running
tests, 2 threads at 0.4x one, with others using 46% of the CPUs. So each probe counts the CPU seconds the whole
machine spent busy (steal included: on a shared host, other guests) less those of r1run and its reaped children.
Above `busy_limit()` of the machine the figure is used but said, and measured again next time, at most
SETTLE_PROBES times in all.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

import psutil

BUSY_SHARE = 0.15              # of the machine's CPU time, used by others during a probe: measure again next time
BUSY_ENV = "R1RUN_BUSY_SHARE"  # another limit (0-1; 1: never measure again)
SETTLE_PROBES = 3              # probes on a machine that stays busy before the best of them is kept for good


@dataclass(frozen=True)
class CpuClock:
    """The machine's busy CPU seconds, and this process's own and its reaped children's, at one moment."""

    wall: float
    busy: float
    ours: float

    @staticmethod
    def now() -> CpuClock:
        t = psutil.cpu_times()
        busy = sum(getattr(t, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))
        me = psutil.Process().cpu_times()
        ours = me.user + me.system + getattr(me, "children_user", 0.0) + getattr(me, "children_system", 0.0)
        return CpuClock(time.monotonic(), busy, ours)


def others_share(before: CpuClock, after: CpuClock, cpus: int | None = None) -> float:
    """The share of the machine's CPU time (0-1) that other programs used between the two moments."""
    cpus = cpus if cpus is not None else psutil.cpu_count() or 1
    wall = after.wall - before.wall
    if wall <= 0 or cpus <= 0:
        return 0.0
    others = (after.busy - before.busy) - (after.ours - before.ours)
    return min(1.0, max(0.0, others / (wall * cpus)))


def busy_limit() -> float:
    """The share of the CPUs others may use during a probe before it is measured again (BUSY_ENV, else BUSY_SHARE)."""
    try:
        limit = float(os.environ.get(BUSY_ENV, BUSY_SHARE))
    except ValueError:
        return BUSY_SHARE
    return limit if 0.0 <= limit <= 1.0 else BUSY_SHARE


def settled(entry: dict) -> bool:
    """A cached measurement to keep: taken quietly enough (its `busy_share`; none: before r1run counted), or the
    best of SETTLE_PROBES (`probes`) on a machine that stayed busy."""
    return float(entry.get("busy_share", 0.0)) <= busy_limit() or int(entry.get("probes", 1)) >= SETTLE_PROBES


def after_probe(earlier: dict | None, fresh: dict, share: float,
                earlier_wins: Callable[[dict, dict], bool]) -> dict:
    """The record to cache after a probe: `fresh` with how busy the machine was (`busy_share`) and how many probes
    it took (`probes`); or, where `earlier_wins(earlier, that)`, the earlier record measured again, as quiet as the
    quieter of the two."""
    probes = 1 + (int(earlier.get("probes", 1)) if earlier else 0)
    record = {**fresh, "busy_share": round(share, 3), "probes": probes}
    if earlier is not None and earlier_wins(earlier, record):
        quietest = min(float(earlier.get("busy_share", record["busy_share"])), record["busy_share"])
        record = {**earlier, "busy_share": quietest, "probes": probes}
    return record
