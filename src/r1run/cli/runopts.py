"""Options shared by the commands that run or plan a model (chat, serve, plan, bench), defined and read once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from r1run import rpc
from r1run.cli.common import status, warn
from r1run.errors import BadInput
from r1run.planner.machine import MachineDescription
from r1run.run import engine as run_engine
from r1run.run.config import Request
from r1run.run.prepare import Prepared

ModelArg = Annotated[Optional[str], typer.Argument(help="A catalog model (see `r1run models`) or a .gguf path / folder "
                                                        "[default: the model you downloaded or ran last].",
                                                   show_default=False, metavar="MODEL")]
QuantOpt = Annotated[Optional[str], typer.Option(
    "--quant", "-q", help="Which quant of a catalog model.", show_default=False)]
GpuLayersOpt = Annotated[str, typer.Option(
    "--gpu-layers", "-ngl", help="auto (r1run places the weights) or a number of layers.")]
CtxOpt = Annotated[Optional[int], typer.Option(
    "--ctx-size", "--ctx", "-c", help="Context size in tokens [default: the catalog's, else 4096].",
        show_default=False)]
ThreadsOpt = Annotated[str, typer.Option(
    "--threads", "-t", help="auto (physical cores not busy with other programs) or a number.")]
NPredictOpt = Annotated[Optional[int], typer.Option(
    "--n-predict", "-n", help="Most tokens to generate.", show_default=False)]
TempOpt = Annotated[Optional[float], typer.Option(
    "--temp", help="Temperature [default: the model's recommendation].", show_default=False)]
MinPOpt = Annotated[Optional[float], typer.Option("--min-p", help="min-p sampling.", show_default=False)]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="RNG seed.", show_default=False)]
CacheKOpt = Annotated[Optional[str], typer.Option(
    "--cache-type-k", "-ctk", help="K cache type (f16, q8_0, q4_0...).", show_default=False)]
CacheVOpt = Annotated[Optional[str], typer.Option("--cache-type-v", "-ctv", help="V cache type.", show_default=False)]
FlashAttnOpt = Annotated[Optional[str], typer.Option(
    "--flash-attn", "-fa", help="on, off or auto [default: llama.cpp's, auto].", show_default=False)]
BatchOpt = Annotated[Optional[int], typer.Option(
    "--batch-size", "-b", help="Logical batch size [default: llama.cpp's].", show_default=False)]
UbatchOpt = Annotated[Optional[int], typer.Option(
    "--ubatch-size", "--ubatch", "-ub", help="Physical batch size [default: llama.cpp's, 512].", show_default=False)]
ParallelOpt = Annotated[Optional[int], typer.Option(
    "--parallel", "-np", help="Parallel slots (llama-server).", show_default=False)]
RpcOpt = Annotated[Optional[str], typer.Option(
    "--rpc", help="RPC workers host:port,... to spread the model over.", show_default=False)]
NoRetryOpt = Annotated[bool, typer.Option("--no-retry", help="Do not retry with less after an out-of-memory.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the exact llama.cpp command and exit.")]
EngineOpt = Annotated[str, typer.Option(
    "--engine", help="auto (ik_llama.cpp for DeepSeek when it is built, else llama.cpp), llama.cpp or ik_llama.cpp.")]
NoProfileOpt = Annotated[bool, typer.Option(
    "--no-profile", help="Ignore the settings `r1run bench --tune` stored for this model.")]

# Planning for a machine other than the one detected (plan); for the run commands, memory to plan with.
GpuMemoryOpt = Annotated[Optional[str], typer.Option(
    "--gpu-memory", help="Plan for these GPUs instead of the detected ones: 24GiB[,24GiB]; 0 = none.",
        show_default=False)]
GpuNameOpt = Annotated[Optional[str], typer.Option(
    "--gpu-name", help="GPU or Apple chip by name ('RTX 4090', 'H100', 'M3 Max'): memory and bandwidth from r1run's "
    "table.", show_default=False)]
RamOpt = Annotated[Optional[str], typer.Option(
    "--ram", help="Plan for this much RAM, e.g. 192GiB.", show_default=False)]
UnifiedOpt = Annotated[Optional[bool], typer.Option(
    "--unified/--discrete", help="GPU memory is the RAM (Apple silicon).", show_default=False)]
BandwidthOpt = Annotated[Optional[str], typer.Option(
    "--bandwidth", help="RAM bandwidth (80GB/s) or cpu=..,gpu=..,disk=..", show_default=False)]
DeviceMemoryOpt = Annotated[Optional[str], typer.Option(
    "--device-memory", help="RPC workers' memory: host:port=24GiB,... or one size.", show_default=False)]

# Flags for llama.cpp itself go after `--` (they arrive as extra arguments); an option r1run does not know before
# `--` is an error with a suggestion, so a typo never reaches llama.cpp unnoticed.
EXTRA_ARGS = {"allow_extra_args": True}


FLASH_ATTN = ("on", "off", "auto")


def parse_count(text: str, what: str, *, minimum: int = 0) -> int | None:
    """'auto' gives None; otherwise a whole number >= minimum (the one place --gpu-layers and --threads are read)."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise BadInput(f"{what} must be 'auto' or a whole number (got {text!r})") from None
    if value < minimum:
        raise BadInput(f"{what} must be at least {minimum} (got {value})")
    return value


def flash_attn(text: str | None) -> str | None:
    if text is None:
        return None
    value = {"1": "on", "0": "off", "true": "on", "false": "off"}.get(text.lower(), text.lower())
    if value not in FLASH_ATTN:
        raise BadInput(f"--flash-attn must be on, off or auto (got {text!r})")
    return value


def split_rpc(text: str | None) -> tuple[str, ...]:
    """`--rpc host:port,...` checked (syntax, ports 1-65535, IPv4 or a name): BadInput otherwise."""
    if text is None:
        return ()
    return tuple(str(ep) for ep in rpc.parse(text))


def read_prompt(prompt: str | None, prompt_file: Path | None) -> str | None:
    if prompt is not None and prompt_file is not None:
        raise BadInput("give --prompt or --prompt-file, not both")
    if prompt_file is not None:
        try:
            return prompt_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"--prompt-file {prompt_file}: {exc.strerror or exc}", "check the path") from None
    return prompt


def show_prepared(prepared: Prepared) -> None:
    """Tell the user what r1run chose: model, llama.cpp, and every choice of the run configuration."""
    for w in prepared.config.warnings:
        warn(w)
    if prepared.target.chosen_because:
        status(f"model: {prepared.target.chosen_because}")
    status(f"model: {prepared.target.name} ({prepared.target.path}); {prepared.install.engine}: "
           f"{prepared.install.origin}")
    for note in prepared.config.notes:
        status(note)


def request(*, model: str | None, quant: str | None, gpu_layers: str = "auto", ctx: int | None = None,
            threads: str = "auto", n_predict: int | None = None, temp: float | None = None,
            min_p: float | None = None, seed: int | None = None, cache_type_k: str | None = None,
            cache_type_v: str | None = None, flash_attn_: str | None = None, batch: int | None = None,
            ubatch: int | None = None, parallel: int | None = None, rpc_: str | None = None,
            gpu_memory: str | None = None, gpu_name: str | None = None, ram: str | None = None,
            unified: bool | None = None, bandwidth: str | None = None, device_memory: str | None = None,
            extra: tuple[str, ...] = (), profile: bool = True, engine: str = "auto") -> Request:
    """The run Request from the options chat, serve, plan and bench share, each read and checked here once."""
    # --n-predict is llama.cpp's own: -1 means "until the model ends", as it always passed through.
    for flag, value in (("--ctx-size", ctx), ("--batch-size", batch), ("--ubatch-size", ubatch),
                        ("--parallel", parallel)):
        if value is not None and value <= 0:
            raise BadInput(f"{flag} must be a positive number (got {value})", "e.g. --ctx-size 8192"
                           if flag == "--ctx-size" else None)
    return Request(
        model=model, quant=quant, gpu_layers=parse_count(gpu_layers, "--gpu-layers"), ctx=ctx,
        threads=parse_count(threads, "--threads", minimum=1), n_predict=n_predict, temp=temp, min_p=min_p, seed=seed,
        cache_type_k=cache_type_k, cache_type_v=cache_type_v, flash_attn=flash_attn(flash_attn_), batch=batch,
        ubatch=ubatch, parallel=parallel, rpc=split_rpc(rpc_),
        machine=MachineDescription(gpu_memory=gpu_memory, gpu_name=gpu_name, ram=ram, unified=unified,
                                   bandwidth=bandwidth, device_memory=device_memory),
        extra=extra, profile=profile, engine=run_engine.parse(engine))
