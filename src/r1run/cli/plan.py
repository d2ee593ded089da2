"""`r1run plan`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from r1run.bench import arithmetic, calibration, engines
from r1run.bench.profile import find_for_target
from r1run.cli import runopts as o
from r1run.cli.common import JsonOpt, LlamaBinOpt, handle_errors, out, print_json, status, warn
from r1run.cli.plan_render import render
from r1run.home import Home
from r1run.run import plan as core


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)


@handle_errors
def plan(
    model: Annotated[Optional[str], typer.Argument(
        help="Catalog model (e.g. deepseek-r1) or a GGUF file/folder [default: the model you downloaded or ran last].",
        show_default=False, metavar="MODEL")] = None,
    quant: Annotated[Optional[list[str]], typer.Option(
        "--quant", "-q", help="Quant(s) of a catalog model [default: its default].", show_default=False)] = None,
    all_quants: Annotated[bool, typer.Option("--all-quants", help="Plan every quant of the catalog model.")] = False,
    gpu_layers: o.GpuLayersOpt = "auto",
    ctx_size: o.CtxOpt = None,
    threads: o.ThreadsOpt = "auto",
    temp: o.TempOpt = None,
    min_p: o.MinPOpt = None,
    seed: o.SeedOpt = None,
    cache_type_k: o.CacheKOpt = None,
    cache_type_v: o.CacheVOpt = None,
    flash_attn: o.FlashAttnOpt = None,
    batch_size: o.BatchOpt = None,
    ubatch_size: o.UbatchOpt = None,
    parallel: o.ParallelOpt = None,
    rpc: o.RpcOpt = None,
    gpu_memory: o.GpuMemoryOpt = None,
    gpu_name: o.GpuNameOpt = None,
    ram: o.RamOpt = None,
    unified: o.UnifiedOpt = None,
    bandwidth: o.BandwidthOpt = None,
    device_memory: o.DeviceMemoryOpt = None,
    no_profile: o.NoProfileOpt = False,
    no_calibration: Annotated[bool, typer.Option(
        "--no-calibration", help="Expect speeds from the published runs only, not this machine's saved bench "
        "results.")] = False,
    engine: o.EngineOpt = "auto",
    llama_bin: LlamaBinOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Which quant fits this machine, where its layers go, the exact llama.cpp flags chat runs, how fast it will be."""
    req = o.request(model=model, quant=None, gpu_layers=gpu_layers, ctx=ctx_size, threads=threads, temp=temp,
                    min_p=min_p, seed=seed, cache_type_k=cache_type_k, cache_type_v=cache_type_v,
                    flash_attn_=flash_attn, batch=batch_size, ubatch=ubatch_size, parallel=parallel, rpc_=rpc,
                    gpu_memory=gpu_memory, gpu_name=gpu_name, ram=ram, unified=unified, bandwidth=bandwidth,
                    device_memory=device_memory, profile=not no_profile, engine=engine)
    home = Home.from_env()
    report = core.plan(home, core.PlanRequest(req, ["*"] if all_quants else quant, llama_bin), find_for_target,
                       engines.find_for_target,
                       None if no_calibration else lambda rpc_: calibration.for_this_machine(home, rpc_),
                       arithmetic.finder(home, status))
    if report.chosen_because:
        status(f"model: {report.chosen_because}")
    for w in report.warnings:
        warn(w)
    if json_:
        print_json(report.to_json())
    else:
        render(report, out())
