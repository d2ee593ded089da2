"""Fitting `planner.speed`'s parameters on published measurements, and how well that fit predicts.

Each published run (`planner.published_runs`) becomes the workload r1run's own planner gives for that
machine, model and flags (DeepSeek quants: their shipped layout; other models: the file's size, split
by the layers the run put on its GPUs). The fit minimises the squared log error of the generation speed
(a run 2x too fast weighs as much as one 2x too slow) with Nelder-Mead over the logarithms of the
parameters, from the defaults, a few free parameters at a time. `leave_one_out` refits without each
run in turn and predicts it: the honest error a user should expect on a machine nobody published.

    python benchmarks/speed_model.py           # the leave-one-out table; --write updates data/speed_model.json
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from r1run.planner import memory as mem
from r1run.planner import placement as pl
from r1run.planner import r1_quants
from r1run.planner import speed as sp
from r1run.planner.gpus import GpuSpec, lookup
from r1run.planner.machine import Device, MachineSpec
from r1run.planner.placement import Stage
from r1run.planner.published_runs import PublishedRun

GiB = 1 << 30
FREE = ("gpu_eff", "cpu_eff", "ik_cpu_eff", "paging_speedup", "gpu_layer_s", "cpu_layer_s", "cpu_thread_layer_s",
        "gpu_moe_layer_s", "ik_gpu_moe_layer_s", "cpu_moe_thread_layer_s", "cpu_recurrent_layer_s", "split_s", "hop_s",
        "rpc_hop_s", "cpu_param_s", "iq_factor")
# measured_share stays: no published run was measured the way r1run measures RAM


@dataclass(frozen=True)
class Case:
    run: PublishedRun
    workload: sp.Workload


class Unplannable(Exception):
    pass


def machine_of(run: PublishedRun) -> MachineSpec:
    """The published machine as the planner sees one (what the run's source left out: enough RAM, a typical
    desktop's RAM bandwidth; both matter little to runs whose weights all sit on GPUs)."""
    m = run.machine
    ram = int(m.ram_bytes or 0) or 1 << 50
    cpu_rate = (m.ram_bandwidth_gbs or UNKNOWN_RAM_GBS) * 1e9
    devices: list[Device] = []
    if m.unified:
        spec = lookup(m.gpus[0].name) if m.gpus else None
        rate = spec.bandwidth if spec else cpu_rate
        devices.append(Device("MTL0", "gpu", spec.name if spec else "Apple GPU", int(ram * 0.75), rate))
    else:
        for g in m.gpus:
            spec = _gpu(run, g.name)
            devices += [Device(f"CUDA{len(devices) + i}", "gpu", spec.name, spec.memory_bytes, spec.bandwidth)
                        for i in range(g.count)]
    for g in m.rpc_gpus:  # rpc-servers on GPUs: each one device over the network
        spec = _gpu(run, g.name)
        devices += [Device(f"RPC{len(devices) + i}", "rpc", f"{spec.name} over RPC", spec.memory_bytes, spec.bandwidth,
                           f"h{len(devices) + i}:50052") for i in range(g.count)]
    for i in range(0 if m.rpc_gpus else m.rpc_hosts):  # rpc-servers on CPUs
        devices.append(Device(f"RPC{i}", "rpc", f"RPC host {i}", ram, cpu_rate, f"h{i}:50052"))
    return MachineSpec(ram=ram, cpu_bandwidth=cpu_rate, devices=tuple(devices), unified=m.unified,
                       disk_bandwidth=(m.disk_read_gbs or 3.0) * 1e9, described="published")


def _gpu(run: PublishedRun, name: str) -> GpuSpec:
    spec = lookup(name)
    if spec is None:
        raise Unplannable(f"{run.id}: GPU {name!r} is not in planner/data/gpus.json")
    return spec


UNKNOWN_RAM_GBS = 80.0


def workload(run: PublishedRun) -> sp.Workload:
    """The decode step r1run's planner gives the published run."""
    if re.search(r"(--split-mode|-sm)\s+row", run.flags or ""):
        raise Unplannable(f"{run.id}: --split-mode row (every matrix split across devices, activations exchanged "
                          "per matmul); r1run plans whole layers per device and does not model it")
    machine = machine_of(run)
    r1_sized = run.arch == "deepseek2" and run.params_total > 600e9  # R1/V3, not DeepSeek-V2-Lite
    w = _deepseek(run, machine) if r1_sized else _coarse(run, machine)
    m = run.machine
    bits = run.file_bytes * 8 / run.params_total if run.file_bytes and run.params_total else w.bits_per_weight
    # ik_llama.cpp's interleaved _R4/_R8 types exist for fast CPU arithmetic: not the costly i-quant kernels
    iquant = "IQ" in run.quant.upper() and not re.search(r"_R\d+$", run.quant.upper())
    return replace(w, threads=run.threads or m.cores or 8, bits_per_weight=bits, iquant=iquant,
                   net_rate=_net_rate(m.network) or w.net_rate, moe=run.params_active < run.params_total)


def _net_rate(text: str | None) -> float | None:
    """'100 Mbit', '10GbE', '25 Gbit/s' -> bytes/s."""
    m = re.search(r"([\d.]+)\s*(G|M)(?:bit|b\b|bE|bps)", text or "", re.I)
    if not m:
        return None
    return float(m[1]) * (1e9 if m[2].upper() == "G" else 1e6) / 8


def _deepseek(run: PublishedRun, machine: MachineSpec) -> sp.Workload:
    """DeepSeek R1/V3: the shipped layout of the quant, or of the shipped quant nearest in size (its reads
    scaled to the run's file) for the custom mixes people publish."""
    name = run.quant if run.quant in r1_quants.quant_names() else _nearest_quant(run)
    info = r1_quants.model_info(name)
    n = info.hparams.block_count
    ngl = run.gpu_layers if run.gpu_layers is not None else (n + 1 if machine.devices else 0)
    spec = mem.ContextSpec(ctx=min(run.ctx or 2048, 8192), cache_type_k="f16", cache_type_v="f16", flash_attn=False)
    plan = pl.plan_run(info, machine, pl.Caps(), spec, min(int(ngl), n + 1),
                       _experts_on_cpu=(run.cpu_expert_layers if run.cpu_expert_layers is not None else n)
                       if run.experts_on_cpu else None)
    w = sp.Workload.from_plan(plan, run.engine)
    if name != run.quant and run.file_bytes:
        scale = run.file_bytes / info.tensor_bytes
        w = replace(w, stages=tuple(replace(s, bytes=int(s.bytes * scale)) for s in w.stages))
    return w


def _nearest_quant(run: PublishedRun) -> str:
    size = run.file_bytes
    if not size:
        raise Unplannable(f"{run.id}: a DeepSeek quant r1run has no layout for, and no file size")
    return min(r1_quants.quant_names(), key=lambda q: abs(math.log(r1_quants.model_info(q).tensor_bytes / size)))


def _coarse(run: PublishedRun, machine: MachineSpec) -> sp.Workload:
    """A model r1run ships no layout for: its bytes per token are the file's active share, spread over the
    devices in proportion to the layers each holds."""
    if not run.file_bytes or not run.n_layers:
        raise Unplannable(f"{run.id}: no file size or layer count")
    n = run.n_layers
    per_token = run.file_bytes * (run.params_active / run.params_total)
    accel = [d for d in machine.devices if d.kind in ("gpu", "rpc")]
    on_gpu = min(n, n if run.gpu_layers is None else run.gpu_layers) if accel else 0
    stages: list[Stage] = []
    if on_gpu:  # llama.cpp's default split: layers in proportion to each device's memory
        total = sum(d.free for d in accel)
        given = 0
        for i, d in enumerate(accel):
            k = on_gpu - given if i == len(accel) - 1 else round(on_gpu * d.free / total)
            given += k
            stages.append(Stage(d.kind, d.label, int(per_token * k / n), d.bandwidth, k))
    cpu_layers = n - on_gpu
    reads = per_token * cpu_layers / n
    resident_need = run.file_bytes * cpu_layers / n
    ram = machine.ram - 2 * GiB
    if cpu_layers and resident_need > ram > 0:
        missing = (resident_need - ram) / resident_need
        stages.append(Stage("cpu", "CPU", int(reads * (1 - missing)), machine.cpu_bandwidth, cpu_layers))
        stages.append(Stage("disk", "disk", int(reads * missing), machine.disk_bandwidth))
    else:
        stages.append(Stage("cpu", "CPU", int(reads), machine.cpu_bandwidth, cpu_layers))
    recurrent = round((run.recurrent_layers or 0) * cpu_layers / n)
    # the output layer goes with -ngl past the repeating layers (every one on a device), to the last device
    output_on_rpc = bool(accel) and accel[-1].kind == "rpc" and (run.gpu_layers is None or run.gpu_layers > n)
    logits = 4.0 * (run.n_vocab or 0) if output_on_rpc else 0.0
    return sp.Workload(tuple(stages), 0, run.engine, recurrent_layers=recurrent, logits_bytes=logits)


def cases(runs: Sequence[PublishedRun]) -> tuple[list[Case], list[str]]:
    """The runs r1run can plan, and why each other one cannot be."""
    out, skipped = [], []
    for r in runs:
        try:
            out.append(Case(r, workload(r)))
        except Unplannable as exc:
            skipped.append(str(exc))
    return out, skipped


def loss(params: sp.Params, data: Sequence[Case]) -> float:
    total = 0.0
    for c in data:
        pred = sp.gen_tps(c.workload, params)
        if pred is None:
            continue
        total += math.log(pred / c.run.gen_tps) ** 2
    return total


def fit(data: Sequence[Case], start: sp.Params | None = None, free: Sequence[str] = FREE,
        iterations: int = 1500) -> sp.Params:
    """The parameters (those named in `free`) that minimise the squared log error on `data`."""
    base = start or sp.Params()
    names = [n for n in free if _used(n, data)]
    x0 = [_to_free(n, getattr(base, n)) for n in names]

    def params(x: Sequence[float]) -> sp.Params:
        return replace(base, **{n: _from_free(n, v) for n, v in zip(names, x, strict=True)})

    def f(x: Sequence[float]) -> float:
        # a weak pull towards the defaults keeps parameters no run informs where they started
        prior = PRIOR * sum((v - v0) ** 2 for v, v0 in zip(x, x0, strict=True))
        return loss(params(x), data) + prior

    return params(nelder_mead(f, x0, iterations=iterations))


PRIOR = 0.02


def _to_free(name: str, value: float) -> float:
    """Efficiencies live in (0, 1): fitted as logits; every other parameter is positive: fitted as a logarithm."""
    return math.log(value / (1 - value)) if name.endswith("_eff") else math.log(value)


def _from_free(name: str, x: float) -> float:
    return 1 / (1 + math.exp(-x)) if name.endswith("_eff") else math.exp(x)


def _used(name: str, data: Sequence[Case]) -> bool:
    """Whether any run's workload depends on the parameter at all (else it is left alone)."""
    kinds = {s.kind for c in data for s in c.workload.stages if s.bytes or s.layers}
    engines = {c.workload.engine for c in data}
    return {"gpu_eff": "gpu" in kinds or "rpc" in kinds, "gpu_layer_s": "gpu" in kinds or "rpc" in kinds,
            "cpu_eff": "cpu" in kinds and "llama.cpp" in engines, "ik_cpu_eff": "ik_llama.cpp" in engines,
            "paging_speedup": "disk" in kinds, "cpu_layer_s": "cpu" in kinds, "cpu_thread_layer_s": "cpu" in kinds,
            "split_s": any(c.workload.split_layers for c in data),
            "hop_s": "gpu" in kinds or "rpc" in kinds, "rpc_hop_s": "rpc" in kinds,
            "gpu_moe_layer_s": any(_gpu_moe(c, "llama.cpp") for c in data),
            "ik_gpu_moe_layer_s": any(_gpu_moe(c, "ik_llama.cpp") for c in data),
            "cpu_moe_thread_layer_s": any(c.workload.moe and c.workload.kind != "gpu" for c in data),
            "cpu_recurrent_layer_s": any(c.workload.recurrent_layers for c in data),
            "cpu_param_s": "cpu" in kinds, "iq_factor": any(c.workload.iquant for c in data)}.get(name, False)


def _gpu_moe(c: Case, engine: str) -> bool:
    return c.workload.moe and c.workload.kind != "cpu" and c.workload.engine == engine


def nelder_mead(f: Callable[[Sequence[float]], float], x0: Sequence[float], step: float = 0.5,
                iterations: int = 1500, tol: float = 1e-9) -> list[float]:
    """Minimise f from x0 (the textbook simplex method: reflect, expand, contract, shrink)."""
    n = len(x0)
    if n == 0:
        return []
    simplex = [list(x0)] + [[v + (step if i == j else 0.0) for j, v in enumerate(x0)] for i in range(n)]
    values = [f(x) for x in simplex]
    for _ in range(iterations):
        order = sorted(range(n + 1), key=values.__getitem__)
        simplex, values = [simplex[i] for i in order], [values[i] for i in order]
        if abs(values[-1] - values[0]) < tol:
            break
        centroid = [sum(x[j] for x in simplex[:-1]) / n for j in range(n)]
        worst = simplex[-1]
        reflected = [c + (c - w) for c, w in zip(centroid, worst, strict=True)]
        fr = f(reflected)
        if fr < values[0]:
            expanded = [c + 2 * (c - w) for c, w in zip(centroid, worst, strict=True)]
            fe = f(expanded)
            simplex[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = reflected, fr
        else:
            contracted = [c + 0.5 * (w - c) for c, w in zip(centroid, worst, strict=True)]
            fc = f(contracted)
            if fc < values[-1]:
                simplex[-1], values[-1] = contracted, fc
            else:
                best = simplex[0]
                simplex = [best] + [[b + 0.5 * (v - b) for b, v in zip(best, x, strict=True)] for x in simplex[1:]]
                values = [values[0]] + [f(x) for x in simplex[1:]]
    return simplex[min(range(n + 1), key=values.__getitem__)]


@dataclass(frozen=True)
class Check:
    case: Case
    predicted: float

    @property
    def factor(self) -> float:
        """How far off, as a factor >= 1 (2.0: twice or half the published speed)."""
        r = self.predicted / self.case.run.gen_tps
        return max(r, 1 / r)


def leave_one_out(data: Sequence[Case], start: sp.Params | None = None) -> list[Check]:
    out = []
    for i, c in enumerate(data):
        p = fit([d for j, d in enumerate(data) if j != i], start)
        out.append(Check(c, sp.gen_tps(c.workload, p) or 0.0))
    return out


def summary(checks: Sequence[Check]) -> tuple[float, float, float]:
    """(median factor, worst factor, the factor that holds 80% of the runs: the range shown to users)."""
    factors = sorted(c.factor for c in checks)
    k = min(len(factors) - 1, math.ceil(0.8 * len(factors)) - 1)
    return statistics.median(factors), factors[-1], factors[k]


def prompt_ratios(runs: Sequence[Case]) -> dict[str, float]:
    """Published prompt t/s over generation t/s, median by kind of run (prompt speed is compute, not memory:
    r1run does not model it from first principles; this ratio says what runs like this one did)."""
    by: dict[str, list[float]] = {}
    for c in runs:
        if c.run.prompt_tps:
            by.setdefault(c.workload.kind, []).append(c.run.prompt_tps / c.run.gen_tps)
    return {k: round(statistics.median(v), 2) for k, v in sorted(by.items())}
