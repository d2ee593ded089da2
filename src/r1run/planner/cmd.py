"""The `r1run plan` core: options in, PlanReport out (detects the machine and llama.cpp, reads headers; never prints)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from r1run.errors import BadInput, ToolMissing
from r1run.models import choose
from r1run.planner import memory as mem
from r1run.planner import placement as pl
from r1run.planner.machine import MachineSpec, from_hardware, with_overrides
from r1run.planner.plan import FitComparison, PlanReport, machine_row, row_for, sources

DEFAULT_CTX = 8192


@dataclass(frozen=True)
class Options:
    model: str | None = None
    quants: list[str] | None = None
    ctx: int | None = None
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    ubatch: int = 512
    parallel: int = 1
    flash_attn: bool = True
    gpu_layers: str = "auto"
    gpu_memory: str | None = None
    gpu_name: str | None = None
    ram: str | None = None
    unified: bool | None = None
    bandwidth: str | None = None
    rpc: str | None = None
    device_memory: str | None = None
    llama_bin: Path | None = None


def parse_gpu_layers(text: str) -> pl.GpuLayers:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise BadInput(f"--gpu-layers must be 'auto' or a number >= 0, not {text!r}")
    return n


def run(o: Options) -> PlanReport:
    from r1run.home import Home

    gpu_layers = parse_gpu_layers(o.gpu_layers)
    if o.ctx is not None and o.ctx <= 0:
        raise BadInput(f"--ctx must be a positive number of tokens, not {o.ctx}", "e.g. --ctx 8192")
    home = Home.from_env()
    choice = choose(home, o.model, o.quants[0] if o.quants and o.quants != ["*"] else None)
    quants = o.quants or ([choice.quant] if choice.quant else None)
    label, srcs, warnings = sources(choice.model, quants, home)
    settings = _catalog_settings(home, choice.model, srcs[0].label) if srcs[0].origin != "local" else None
    spec = mem.ContextSpec(
        ctx=o.ctx or (settings.ctx if settings and settings.ctx else DEFAULT_CTX),
        cache_type_k=o.cache_type_k or (settings.cache_type_k if settings and settings.cache_type_k else "f16"),
        cache_type_v=o.cache_type_v or (settings.cache_type_v if settings and settings.cache_type_v else "f16"),
        ubatch=o.ubatch, flash_attn=o.flash_attn, parallel=o.parallel,
    )
    caps, install, capabilities = _llama(home, o.llama_bin, warnings)
    machine = _machine(home, o, capabilities, install, warnings)
    overridden = any(v is not None for v in (o.gpu_memory, o.ram, o.unified, o.rpc))
    rows = []
    for src in srcs:
        fit = None
        if src.path is not None and capabilities is not None and capabilities.fit and not overridden:
            fit = _llama_fit(capabilities, src.path, spec)
        rows.append(row_for(src, machine, caps, spec, gpu_layers, fit))
    return PlanReport(model=label, machine=machine_row(machine), cache_type_k=spec.cache_type_k,
                      cache_type_v=spec.cache_type_v, rows=rows, warnings=warnings,
                      chosen_because=choice.reason and choice.describe())


def _catalog_settings(home, model: str, quant: str):
    from r1run import catalog as cat

    c = cat.load(home)
    entry = c.model(model)
    return entry.settings_for(quant)


def _llama(home, llama_bin: Path | None, warnings: list[str]):
    from r1run.llama import discover

    try:
        install = discover.find(home, llama_bin)
    except ToolMissing:
        warnings.append("no llama.cpp found: flags assume a current release (b11434); run `r1run build`")
        return pl.Caps(), None, None
    capabilities = discover.capabilities(install, home)
    return pl.Caps.from_capabilities(capabilities), install, capabilities


def _machine(home, o: Options, capabilities, install, warnings: list[str]) -> MachineSpec:
    from r1run import hardware
    from r1run.planner import bandwidth as bw

    rates = bw.parse_bandwidth_option(o.bandwidth)
    detected = hardware.detect()
    ram_bw = rates.get("cpu") or bw.ram_bandwidth(home)
    base = from_hardware(detected, ram_bw)
    found = None
    if o.rpc and not o.device_memory:
        found = ask_rpc_workers(o.rpc, capabilities)
    spec = with_overrides(base, gpu_memory=o.gpu_memory, ram=o.ram, bandwidth=o.bandwidth, unified=o.unified,
                          gpu_name=o.gpu_name, rpc=o.rpc, device_memory=o.device_memory, rpc_found=found)
    if spec.described == "detected":
        warnings.extend([] if spec.devices else ["no GPU found: planning CPU-only (describe one with --gpu-memory)"])
    return spec


def ask_rpc_workers(rpc: str, capabilities):
    """Each worker's devices and memory as llama.cpp sees them (`llama-server --rpc HOST:PORT --list-devices`)."""
    from r1run import rpc as rpc_mod

    endpoints = rpc_mod.parse(rpc)
    program = None
    if capabilities is not None and capabilities.list_devices and capabilities.rpc:
        program = capabilities.path("server") or capabilities.path("completion")
    if program is None:
        raise BadInput("no memory known for the RPC workers", "give it with --device-memory HOST:PORT=SIZE, or build "
                       "llama.cpp with RPC (`r1run build`) so r1run can ask them")
    return rpc_mod.ask_devices(program, endpoints)


def _llama_fit(capabilities, path: Path, spec: mem.ContextSpec) -> FitComparison | None:
    from r1run.planner.measure import fit_params

    program = capabilities.path("fit-params")
    if program is None:
        return None
    args = ["-c", str(spec.ctx), "-ctk", spec.cache_type_k, "-ctv", spec.cache_type_v, "-ub", str(spec.ubatch)]
    ans = fit_params(program, path, args)
    return FitComparison(ok=ans.ok, flags=ans.flags, message=ans.message)
