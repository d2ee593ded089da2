"""`r1run plan`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from r1run.cli.common import JsonOpt, LlamaBinOpt, handle_errors, out, print_json, status, warn


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)


@handle_errors
def plan(
    model: Annotated[Optional[str], typer.Argument(help="Catalog model (e.g. deepseek-r1) or a GGUF file/folder.", show_default=False)] = None,
    quant: Annotated[Optional[list[str]], typer.Option("--quant", "-q", help="Quant(s) of a catalog model [default: its default].", show_default=False)] = None,
    all_quants: Annotated[bool, typer.Option("--all-quants", help="Plan every quant of the catalog model.")] = False,
    ctx: Annotated[Optional[int], typer.Option("--ctx", "--ctx-size", "-c", help="Context length in tokens [default: the catalog's, else 8192].", show_default=False)] = None,
    cache_type_k: Annotated[Optional[str], typer.Option("--cache-type-k", "-ctk", help="K cache type: f16, q8_0, q4_0, ...", show_default=False)] = None,
    cache_type_v: Annotated[Optional[str], typer.Option("--cache-type-v", "-ctv", help="V cache type [default: f16].", show_default=False)] = None,
    ubatch: Annotated[int, typer.Option("--ubatch", help="Micro-batch size llama.cpp reserves its buffers for.")] = 512,
    parallel: Annotated[int, typer.Option("--parallel", help="Parallel slots (server).")] = 1,
    no_flash_attn: Annotated[bool, typer.Option("--no-flash-attn", help="Plan for flash attention off.")] = False,
    gpu_layers: Annotated[str, typer.Option("--gpu-layers", help="'auto' or a number of layers to check.")] = "auto",
    gpu_memory: Annotated[Optional[str], typer.Option("--gpu-memory", help="Plan for these GPUs instead: 24GiB[,24GiB]; 0 = none.", show_default=False)] = None,
    gpu_name: Annotated[Optional[str], typer.Option("--gpu-name", help="GPU model for --gpu-memory (sets its bandwidth), e.g. 'RTX 4090'.", show_default=False)] = None,
    ram: Annotated[Optional[str], typer.Option("--ram", help="Plan for this much RAM, e.g. 192GiB.", show_default=False)] = None,
    unified: Annotated[Optional[bool], typer.Option("--unified/--discrete", help="GPU memory is the RAM (Apple silicon).", show_default=False)] = None,
    bandwidth: Annotated[Optional[str], typer.Option("--bandwidth", help="RAM bandwidth (80GB/s) or cpu=..,gpu=..,disk=..", show_default=False)] = None,
    rpc: Annotated[Optional[str], typer.Option("--rpc", help="RPC workers host:port,... to place layers on.", show_default=False)] = None,
    device_memory: Annotated[Optional[str], typer.Option("--device-memory", help="RPC workers' memory: host:port=24GiB,... or one size.", show_default=False)] = None,
    llama_bin: LlamaBinOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Which quant fits this machine, where its layers go, the llama.cpp flags, and a decode-speed bound."""
    from r1run.cli.plan_render import render
    from r1run.planner import cmd

    report = cmd.run(cmd.Options(
        model=model, quants=["*"] if all_quants else quant, ctx=ctx, cache_type_k=cache_type_k,
        cache_type_v=cache_type_v, ubatch=ubatch, parallel=parallel, flash_attn=not no_flash_attn,
        gpu_layers=gpu_layers, gpu_memory=gpu_memory, gpu_name=gpu_name, ram=ram, unified=unified,
        bandwidth=bandwidth, rpc=rpc, device_memory=device_memory, llama_bin=llama_bin,
    ))
    if report.chosen_because:
        status(f"model: {report.chosen_because}")
    for w in report.warnings:
        warn(w)
    if json_:
        print_json(report.to_json())
    else:
        render(report, out())
