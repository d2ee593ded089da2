"""Render a PlanReport as rich tables (stdout)."""

from __future__ import annotations

import shlex

from rich.markup import escape
from rich.table import Table

from r1run.units import size


def _size(n: int) -> str:
    return size(n) if n else "-"


def render(report, console) -> None:
    m = report.machine
    devs = ", ".join(f"{d['name']} {size(d['free_bytes'])}" for d in m.devices) or "no GPU"
    console.print(f"[bold]{escape(report.model)}[/bold] on {escape(m.described or 'this machine')}: RAM "
                  f"{size(m.ram_bytes)}, {escape(devs)}, RAM bandwidth {m.cpu_bandwidth / 1e9:.0f} GB/s"
                  f"{' (unified memory)' if m.unified else ''}; "
                  f"KV cache K {report.cache_type_k}, V {report.cache_type_v}",
                  highlight=False)
    t = Table(show_lines=True)
    for col in ("quant", "size", "weights on", "GPU layers / experts", "KV cache", "free after",
                "decode bound", "early guide", "max ctx"):
        t.add_column(col, overflow="fold")
    for r in report.rows:
        where = " + ".join(f"{k.upper()} {size(v)}" for k, v in r.weights_on.items() if v) or "-"
        if r.gpu_layers and r.cpu_moe_layers:
            place = f"-ngl {r.gpu_layers}, experts of {len(r.cpu_moe_layers)} layers in RAM"
        elif r.gpu_layers:
            place = f"-ngl {r.gpu_layers} of {r.n_layers + 1}"
        else:
            place = "CPU only"
        free = ", ".join(f"{d.name} {size(d.free_after_bytes)}" for d in r.devices)
        bound = f"≤ {r.decode_bound_tps:.1f} t/s" if r.decode_bound_tps else "unknown"
        fits = "" if r.fits_memory else "\n[red]does not fit[/red]"
        guide = "-" if r.early_guide_layers is None else f"-ngl {r.early_guide_layers}"
        t.add_row(f"{escape(r.quant)}\n[dim]{r.origin}[/dim]", size(r.size_bytes), escape(where) + fits,
                  f"{place}\n[dim]{r.strategy}[/dim]", f"{size(r.kv_bytes)} @ {r.ctx}", escape(free), bound, guide,
                  str(r.max_ctx or "-"))
    console.print(t)
    console.print("[dim]decode bound: bytes one token reads / bandwidth of where they live - an upper bound, real "
                  "runs reach a fraction of it. early guide: VRAM / size x layers - 4 (Unsloth, January 2025).[/dim]",
                  highlight=False)
    for r in report.rows:
        console.print(f"[bold]{escape(r.quant)}[/bold] flags: {escape(_quote(r.flags))}", highlight=False,
                      soft_wrap=True)
        if r.llama_fit is not None:
            if r.llama_fit.ok:
                console.print(f"  llama-fit-params: {escape(_quote(r.llama_fit.flags))}", highlight=False)
            else:
                console.print(f"  llama-fit-params: could not fit ({escape(r.llama_fit.message)})", highlight=False)
        if len(r.devices) > 2 or any(d.kind == "rpc" for d in r.devices):
            for d in r.devices:  # where each device's share goes (several GPUs, RPC workers)
                console.print(f"  {escape(_device_line(d))}", highlight=False)
        for n in r.notes:
            console.print(f"  [dim]- {escape(n)}[/dim]", highlight=False)


def _quote(flags: list[str]) -> str:
    return shlex.join(flags)


def _ranges(ids: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2, 5, 7-8'."""
    runs: list[list[int]] = []
    for i in sorted(ids):
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ", ".join(f"{r[0]}" if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def _device_line(d) -> str:
    """`RPC0[10.0.0.2:50052]: layers 0-18 - weights 60 MiB + KV 28 MiB + compute 20 MiB = 108 MiB of 22 GiB`."""
    layers = f"layers {_ranges(d.layers)}" if d.layers else "no repeating layers"
    if d.expert_layers and d.expert_layers != d.layers:
        layers += f" (routed experts of {_ranges(d.expert_layers)})"
    used = d.weights_bytes + d.kv_bytes + d.compute_bytes
    return (f"{d.name}: {layers} - weights {_size(d.weights_bytes)} + KV {_size(d.kv_bytes)} + compute "
            f"{_size(d.compute_bytes)} = {_size(used)} of {_size(d.capacity_bytes)} usable")
