"""Render a PlanReport (stdout): a table that fits 80 columns, the flags r1run runs, notes said once, a verdict.

Nothing is folded inside a word: table cells never wrap (the columns are sized to fit 80 columns), and
prose lines wrap only at spaces.
"""

from __future__ import annotations

import shlex

from rich.markup import escape
from rich.table import Table

from r1run.planner.r1_quants import SYNTHETIC_NOTE
from r1run.units import GiB, size


def _size(n: int) -> str:
    return size(n) if n else "-"


def _gib(n: int) -> str:
    return f"{n / GiB:.1f}" if n else "-"


def render(report, console) -> None:
    _header(report, console)
    console.print(_table(report))
    console.print("[dim]GiB: the weights; GPU / RAM / disk: GiB of weights on the GPUs, held in RAM, paged in from "
                  "disk; ~t/s: expected generation speed; <=t/s: its upper bound (bandwidth / bytes a token reads). "
                  "from: file = read from the real file's GGUF header; pub = the publisher's size, layout "
                  "rebuilt from the quant's recipe (exact once downloaded).[/dim]", highlight=False, soft_wrap=False)
    _speed_model(report, console)
    _details(report, console)
    _verdict(report, console)


def _header(report, console) -> None:
    m = report.machine
    where = escape(m.described if m.described and m.described != "detected" else "this machine")
    devs = ", ".join(_device_label(d) for d in m.devices) or "no GPU"
    how = f" ({m.cpu_bandwidth_source})" if m.cpu_bandwidth_source else ""
    console.print(f"[bold]{escape(report.model)}[/bold] on {where}", highlight=False, soft_wrap=False)
    console.print(f"  RAM {size(m.ram_bytes)}{' (unified memory)' if m.unified else ''}, bandwidth "
                  f"{m.cpu_bandwidth / 1e9:.0f} GB/s{escape(how)}", highlight=False, soft_wrap=False)
    console.print(f"  GPU: {escape(devs)}", highlight=False, soft_wrap=False)
    console.print(f"  KV cache K {report.cache_type_k}, V {report.cache_type_v}", highlight=False, soft_wrap=False)
    if report.engine_note:
        console.print(f"  {escape(report.engine_note)}", highlight=False, soft_wrap=False)


_FROM = {"header": "file", "published": "pub"}


def _device_label(d: dict) -> str:
    rate = f", {d['bandwidth'] / 1e9:.0f} GB/s" if d.get("bandwidth") else ", bandwidth unknown"
    return f"{d['name']} {size(d['free_bytes'])} ({d['label']}{rate})"


def _table(report) -> Table:
    t = Table(box=None, pad_edge=False, padding=(0, 1), header_style="bold")
    for col, just in (("quant", "left"), ("GiB", "right"), ("from", "left"), ("fits", "left"), ("-ngl", "right"),
                      ("GPU", "right"), ("RAM", "right"), ("disk", "right"), ("ctx", "right"), ("~t/s", "right"),
                      ("<=t/s", "right")):
        t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for r in report.rows:
        fits = "[green]yes[/green]" if r.fits_memory else "[red]no[/red]"
        bound = f"{r.decode_bound_tps:.1f}" if r.decode_bound_tps else "?"
        label = "the file" if r.origin == "local" else r.quant  # its name heads the report; it may be long
        t.add_row(escape(label), _gib(r.size_bytes), _FROM.get(r.size_from, r.size_from), fits, str(r.gpu_layers),
                  _gib(r.weights_on.get("gpu", 0) + r.weights_on.get("rpc", 0)), _gib(r.weights_on.get("cpu", 0)),
                  _gib(r.weights_on.get("disk", 0)), str(r.ctx), _tps(r.expected.gen_tps) if r.expected else "?",
                  bound)
    return t


def _tps(x: float) -> str:
    """Two significant figures at least: 0.19, 3.3, 11, 135."""
    return f"{x:.2f}" if x < 1 else f"{x:.1f}" if x < 10 else f"{x:.0f}"


def _speed_model(report, console) -> None:
    m = report.speed_model
    if not m or not m.get("fitted_on"):
        return
    console.print(f"[dim]Expected speeds come from a model of where a token's time goes, fitted on {m['fitted_on']} "
                  f"published runs; fitted without each run in turn it predicted that run within "
                  f"{m['leave_one_out_median_factor']:.1f}x (median), {m['leave_one_out_worst_factor']:.1f}x at "
                  f"worst; the range shown holds most of them (docs/speed.md).[/dim]", highlight=False,
                  soft_wrap=False)


def _expected_lines(r) -> list[str]:
    e = r.expected
    if e is None:
        return []
    prompt = f", prompt about {_tps(e.prompt_tps)} t/s" if e.prompt_tps else ""
    bound = f"; bound {_tps(r.decode_bound_tps)} t/s" if r.decode_bound_tps else ""
    lines = [f"expected: {_tps(e.gen_tps)} t/s generation ({_tps(e.low_tps)}-{_tps(e.high_tps)}){prompt}{bound}"]
    total = sum(e.seconds_per_token.values())
    if total > 0:
        big = sorted(e.seconds_per_token.items(), key=lambda kv: -kv[1])
        lines.append("a token's time: " + ", ".join(f"{name} {100 * t / total:.0f}%" for name, t in big
                                                    if t / total >= 0.05))
    a = e.cpu_arithmetic
    if a:
        lines.append(f"this CPU's arithmetic, measured: {1 / a['param_s'] / 1e9:.0f} G parameters/s on one thread "
                     f"({a['quant']} with llama-bench)" + (f", {a['threads']} threads {a['speedup']:.2f}x one"
                                                          if a['threads'] > 1 else ""))
    if e.calibrated_on:
        lines.append(f"calibrated on {e.calibrated_on} saved bench row(s) of this machine: x{e.calibration:.2f} "
                     "(--no-calibration to ignore them)")
    near = e.closest_published
    if near:
        lines.append(f"closest published run: {near['label']}: {_tps(near['gen_tps'])} t/s generation "
                     f"({near['source']})")
    return lines


def _notes(r, verdict_quant: str | None) -> list[str]:
    # the table already says what is paged in from disk, and the legend what "pub" means
    notes = [n for n in r.notes if n != SYNTHETIC_NOTE and not n.startswith("the model does not fit RAM + VRAM")]
    if r.quant == verdict_quant and r.early_guide_layers is not None and r.early_guide_layers != r.gpu_layers:
        notes.append(f"the early guide's rule (Unsloth, January 2025: VRAM / size x layers - 4) gives -ngl "
                     f"{r.early_guide_layers}; r1run runs -ngl {r.gpu_layers}, placed layer by layer")
    if not r.fits_memory and r.max_ctx and r.max_ctx < r.ctx:
        notes.append(f"fits with a context of {r.max_ctx} or less (-c {r.max_ctx})")
    return notes


def _details(report, console) -> None:
    v = report.verdict
    per_row = [_notes(r, v and (v.best or v.closest)) for r in report.rows]
    common = [n for n in per_row[0] if all(n in notes for notes in per_row)] if len(per_row) > 1 else []
    for r, notes in zip(report.rows, per_row, strict=True):
        console.print(f"[bold]{escape(r.quant)}[/bold]: r1run runs {escape(shlex.join(r.flags))}", highlight=False,
                      soft_wrap=False)
        if r.llama_fit is not None:
            said = shlex.join(r.llama_fit.flags) if r.llama_fit.ok else f"could not fit ({r.llama_fit.message})"
            console.print(f"  llama-fit-params would choose: {escape(said)}", highlight=False, soft_wrap=False)
        shown = len(report.rows) == 1 or (v is not None and r.quant in (v.best, v.closest))
        if shown and (len(r.devices) > 2 or any(d.kind == "rpc" for d in r.devices)):
            for d in r.devices:  # where each device's share goes (several GPUs, RPC workers), for the verdict's quant
                console.print(f"  {escape(_device_line(d))}", highlight=False, soft_wrap=False)
        if shown:
            for line in _expected_lines(r):
                console.print(f"  {escape(line)}", highlight=False, soft_wrap=False)
        for n in notes:
            if n not in common:
                console.print(f"  [dim]- {escape(n)}[/dim]", highlight=False, soft_wrap=False)
    if common:
        console.print("For every quant:" if len(report.rows) > 1 else "", highlight=False, soft_wrap=False)
        for n in common:
            console.print(f"  [dim]- {escape(n)}[/dim]", highlight=False, soft_wrap=False)


def _verdict(report, console) -> None:
    v = report.verdict
    if v is None:
        return
    rows = {r.quant: r for r in report.rows}
    if v.fits:
        best = _fit_summary(rows[v.best]) if v.best else ""
        fit = best if len(v.fits) == 1 else f"{', '.join(v.fits)}; the largest: {best}"
        console.print(f"[bold]fits:[/bold] {escape(fit)}", highlight=False, soft_wrap=False)
    misses = [r for r in report.rows if r.quant not in v.fits]
    if misses:
        closest = min(misses, key=lambda r: r.short_by_bytes)
        console.print(f"[bold]does not fit:[/bold] {escape(', '.join(r.quant for r in misses))}; closest is "
                      f"{escape(closest.quant)}, short by {size(closest.short_by_bytes)}"
                      f"{_disk_hint(closest)}", highlight=False, soft_wrap=False)
    if v.next_command:
        # soft-wrapped: newlines inside a command would break it when pasted
        console.print(f"[bold]next:[/bold] {escape(v.next_command)}", highlight=False, soft_wrap=True)


def _fit_summary(r) -> str:
    where = " + ".join(f"{_WHERE.get(k, k)} {_gib(b)} GiB" for k, b in r.weights_on.items() if b and k != "disk")
    bound = f", <= {r.decode_bound_tps:.1f} t/s" if r.decode_bound_tps else ""
    expected = f", about {_tps(r.expected.gen_tps)} t/s" if r.expected else ""
    return f"{r.quant} with -c {r.ctx}, {where}{expected}{bound}"


_WHERE = {"gpu": "GPU", "rpc": "RPC", "cpu": "RAM"}


def _disk_hint(r) -> str:
    if r.streams_from_disk_bytes and r.expected:
        return f" (it would run paging weights from disk, about {_tps(r.expected.gen_tps)} t/s)"
    if r.streams_from_disk_bytes:
        return " (it would run paging weights from disk)"
    return ""


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
