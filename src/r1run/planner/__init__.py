"""The memory planner: what a model needs at a context, where to place it, and how fast it can decode.

    memory.kv_cache(info, ContextSpec(ctx=...)), memory.compute_buffer(...)   buffers as llama.cpp logs them
    placement.plan_run(info, machine, caps, spec, gpu_layers="auto") -> RunPlan   placement, devices, speed bound
    plan.row_for(source, plan, spec, flags) -> QuantPlan                   one row of `r1run plan`
"""

from r1run.planner.machine import Device, MachineSpec, parse_size
from r1run.planner.memory import ContextSpec
from r1run.planner.placement import Caps, RunPlan, plan_run

__all__ = ["Caps", "ContextSpec", "Device", "MachineSpec", "RunPlan", "parse_size", "plan_run"]
