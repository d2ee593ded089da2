"""Published llama.cpp / ik_llama.cpp speed measurements (`data/published_runs.json`), each with its source.

    runs()[0] -> PublishedRun(id="unsloth-1591-2xh100-ud-iq1s-bench", gen_tps=11.89, placement="gpu", ...)

The table the speed model is fitted and checked on. Every row quotes the text holding its figures
(`quote`) and names where it was read (`source`); nothing in it was measured by r1run. Fields a
publisher left out are None, never guessed: a fit skips rows lacking what it needs.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, Optional

PLACEMENTS = ("cpu", "gpu", "gpu+cpu", "unified", "rpc", "paging")
ENGINES = ("llama.cpp", "ik_llama.cpp")


@dataclass(frozen=True)
class GpuCount:
    name: str           # a name of data/gpus.json
    count: int


@dataclass(frozen=True)
class Machine:
    cpu: Optional[str]
    sockets: Optional[int]
    cores: Optional[int]
    ram_bytes: Optional[int]
    ram: Optional[str]                  # as published, e.g. "DDR5-4800, 12 channels"
    ram_bandwidth_gbs: Optional[float]  # published, or channels x MT/s x 8 bytes (the row's notes say which)
    gpus: tuple[GpuCount, ...]
    unified: bool
    rpc_hosts: int
    network: Optional[str]
    disk: Optional[str]
    disk_read_gbs: Optional[float]
    rpc_gpus: tuple[GpuCount, ...] = ()  # the GPUs rpc-servers expose, one RPC device each (none: CPU workers)

    @property
    def gpu_count(self) -> int:
        return sum(g.count for g in self.gpus)


@dataclass(frozen=True)
class PublishedRun:
    id: str
    source: str         # URL, or owner/repo#number
    source_title: str
    quote: str          # the exact published text holding the figures
    date: Optional[str]  # YYYY-MM
    model: str
    quant: str
    arch: str
    params_total: float
    params_active: float
    file_bytes: Optional[int]
    machine: Machine
    engine: str
    release: Optional[str]
    flags: Optional[str]
    gpu_layers: Optional[int]
    experts_on_cpu: Optional[bool]
    ctx: Optional[int]
    threads: Optional[int]
    placement: str      # one of PLACEMENTS
    prompt_tps: Optional[float]
    gen_tps: float
    notes: str
    n_layers: Optional[int] = None           # repeating layers (the model's config), for models r1run has no layout of
    cpu_expert_layers: Optional[int] = None  # with experts_on_cpu: how many layers' routed experts (None: all)
    recurrent_layers: Optional[int] = None   # layers with a recurrent state (Qwen3-Next: 36 Gated DeltaNet of 48)
    n_vocab: Optional[int] = None            # the vocabulary (RPC runs: the logits come back over the network)


def _machine(m: dict[str, Any]) -> Machine:
    return Machine(m["cpu"], m["sockets"], m["cores"], m["ram_bytes"], m["ram"], m["ram_bandwidth_gbs"],
                   _gpus(m["gpus"]), bool(m["unified"]), int(m["rpc_hosts"]), m["network"], m["disk"],
                   m["disk_read_gbs"], _gpus(m.get("rpc_gpus") or []))


def _gpus(rows: list[dict[str, Any]]) -> tuple[GpuCount, ...]:
    return tuple(GpuCount(g["name"], int(g["count"])) for g in rows)


def _run(r: dict[str, Any]) -> PublishedRun:
    fields = {k: v for k, v in r.items() if k != "machine"}
    return PublishedRun(machine=_machine(r["machine"]), **fields)


@functools.lru_cache(maxsize=1)
def runs() -> tuple[PublishedRun, ...]:
    """Every published run, in the file's order."""
    text = resources.files("r1run.planner").joinpath("data/published_runs.json").read_text(encoding="utf-8")
    return tuple(_run(r) for r in json.loads(text)["runs"])


def by_id(run_id: str) -> Optional[PublishedRun]:
    return next((r for r in runs() if r.id == run_id), None)
