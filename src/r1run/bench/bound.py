"""How close a measured generation speed is to the memory-bandwidth bound of its placement.

The bound is r1run's planner's: bytes a decode step reads from each place (GPU, RPC, RAM, disk)
divided by that place's bandwidth (`r1run.planner.bandwidth`: measured RAM, vendor GPU figures,
or `--bandwidth`). The percentage says how much is left on the table. A run can pass 100% when the
bytes it reads are fewer than counted: a small model whose weights stay in the CPU's caches, an engine
that reads less (ik_llama.cpp's MLA), or a bandwidth set too low; `r1run bench` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from r1run.bench.sweep import Config
from r1run.planner import memory as mem
from r1run.planner import placement as pl
from r1run.planner import speed


@dataclass(frozen=True)
class Bound:
    tps: float | None  # decode tokens/s upper bound; None when a bandwidth is unknown
    bytes_per_token: dict[str, int]
    strategy: str
    expected_tps: float | None = None  # planner.speed's expectation, before any calibration on this machine

    def percent(self, gen_tps: float | None) -> float | None:
        if not self.tps or gen_tps is None:
            return None
        return 100.0 * gen_tps / self.tps


def for_config(info, machine, caps, cfg: Config, default: Config, default_plan=None,
               engine: str = "llama.cpp", arithmetic: speed.CpuArithmetic | None = None) -> Bound:
    """The bound for one configuration; `default_plan` (r1run's own placement) serves its own rows."""

    same_place = (cfg.gpu_layers, cfg.n_cpu_moe, cfg.overrides) == (default.gpu_layers, default.n_cpu_moe,
                                                                    default.overrides)
    if default_plan is not None and same_place:
        plan = default_plan
    else:
        n_layers = info.hparams.block_count
        ngl = cfg.gpu_layers
        if ngl is None or ngl < 0:  # llama-bench's default -1: every layer
            ngl = n_layers + 1 if machine.devices else 0
        spec = mem.ContextSpec(ctx=512, cache_type_k=cfg.cache_type_k or "f16", cache_type_v=cfg.cache_type_v or "f16",
                               flash_attn=cfg.flash_attn != "off")
        plan = pl.plan_run(info, machine, caps, spec, min(ngl, n_layers + 1))
    work = speed.Workload.from_plan(plan, engine, machine.cpu_bandwidth_measured, cfg.threads, arithmetic)
    return Bound(plan.decode_bound_tps, dict(plan.bytes_per_token), plan.strategy,
                 speed.gen_tps(work, speed.shipped().params))
