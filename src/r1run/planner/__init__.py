"""The memory planner: what a model needs at a context, where to place it, and the llama.cpp flags for it.

    memory.kv_cache(info, ContextSpec(ctx=...)), memory.compute_buffer(...)   buffers as llama.cpp logs them
    placement.plan_run(info, machine, caps, spec, gpu_layers="auto") -> RunPlan   flags, devices, speed bound
    placement.shrink(plan) -> RunPlan | None                               a smaller plan after an OOM
    plan.row_for(source, machine, caps, spec) -> QuantPlan                 one row of `r1run plan`
"""

from r1run.planner.machine import Device, MachineSpec, parse_size
from r1run.planner.memory import ContextSpec
from r1run.planner.placement import Caps, RunPlan, plan_run, shrink

__all__ = ["Caps", "ContextSpec", "Device", "MachineSpec", "RunPlan", "parse_size", "plan_run", "shrink"]
