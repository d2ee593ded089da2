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
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from r1run.planner import memory as mem
from r1run.planner import placement as pl
from r1run.planner import r1_quants
from r1run.planner import speed as sp
from r1run.planner.gpus import lookup
from r1run.planner.machine import Device, MachineSpec
from r1run.planner.placement import Stage
from r1run.planner.published_runs import PublishedRun

GiB = 1 << 30
FREE = ("gpu_eff", "cpu_eff", "ik_cpu_eff", "disk_eff", "gpu_layer_s", "cpu_layer_s", "split_s", "hop_s",
        "rpc_hop_s")
# A run's machine with no GPU named in the table cannot be timed; nor a model with no size.


@dataclass(frozen=True)
class Case:
    run: PublishedRun
    workload: sp.Workload


class Unplannable(Exception):
    pass


def machine_of(run: PublishedRun) -> MachineSpec:
    m = run.machine
    ram = int(m.ram_bytes or 0) or 1 << 50
    devices: list[Device] = []
    if m.unified:
        spec = lookup(m.gpus[0].name) if m.gpus else None
        rate = spec.bandwidth if spec else m.ram_bandwidth_gbs * 1e9
        devices.append(Device("MTL0", "gpu", spec.name if spec else "Apple GPU", int(ram * 0.75), rate))
    else:
        for g in m.gpus:
            spec = lookup(g.name)
            if spec is None:
                raise Unplannable(f"{run.id}: GPU {g.name!r} is not in planner/data/gpus.json")
            devices += [Device(f"CUDA{len(devices) + i}", "gpu", spec.name, spec.memory_bytes, spec.bandwidth)
                        for i in range(g.count)]
    for i in range(m.rpc_hosts):
        devices.append(Device(f"RPC{i}", "rpc", f"RPC host {i}", ram, m.ram_bandwidth_gbs * 1e9, f"h{i}:50052"))
    return MachineSpec(ram=ram, cpu_bandwidth=m.ram_bandwidth_gbs * 1e9, devices=tuple(devices), unified=m.unified,
                       disk_bandwidth=(m.disk_read_gbs or 3.0) * 1e9, described="published")


def workload(run: PublishedRun) -> sp.Workload:
    """The decode step r1run's planner gives the published run."""
    machine = machine_of(run)
    if run.arch == "deepseek2" and run.quant in r1_quants.quant_names():
        info = r1_quants.model_info(run.quant)
        n = info.hparams.block_count
        ngl: pl.GpuLayers = run.gpu_layers if run.gpu_layers is not None else (n + 1 if machine.devices else 0)
        spec = mem.ContextSpec(ctx=run.ctx or 2048, cache_type_k="f16", cache_type_v="f16", flash_attn=False)
        plan = pl.plan_run(info, machine, pl.Caps(), spec, min(int(ngl), n + 1),
                           _experts_on_cpu=n if run.experts_on_cpu else None)
        return sp.Workload.from_plan(plan, run.engine)
    return _coarse(run, machine)


def _coarse(run: PublishedRun, machine: MachineSpec) -> sp.Workload:
    """A model r1run ships no layout for: its bytes per token are the file's active share, spread over the
    devices in proportion to the layers each holds (the output layer counted with the GPU, as -ngl does)."""
    if not run.file_bytes or not run.n_layers:
        raise Unplannable(f"{run.id}: no file size or layer count")
    n = run.n_layers
    per_token = run.file_bytes * (run.params_active / run.params_total)
    ngl = n + 1 if run.gpu_layers is None and machine.devices else min(run.gpu_layers or 0, n + 1)
    stages: list[Stage] = []
    on_gpu = min(ngl, n)
    accel = [d for d in machine.devices if d.kind in ("gpu", "rpc")]
    if accel and on_gpu:
        share = per_token * on_gpu / n
        for d in accel:
            stages.append(Stage(d.kind, d.label, int(share / len(accel)), d.bandwidth, on_gpu // len(accel)))
    cpu_layers = n - on_gpu
    ram_need = per_token * cpu_layers / n  # reads; what must be resident is the whole file's share
    resident_need = run.file_bytes * cpu_layers / n
    ram = machine.ram - 2 * GiB
    stages.append(Stage("cpu", "CPU", int(ram_need), machine.cpu_bandwidth, cpu_layers))
    if resident_need > ram > 0 and cpu_layers:
        missing = (resident_need - ram) / resident_need
        stages[-1] = replace(stages[-1], bytes=int(ram_need * (1 - missing)))
        stages.append(Stage("disk", "disk", int(ram_need * missing), machine.disk_bandwidth))
    return sp.Workload(tuple(stages), 0, run.engine)


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
    x0 = [math.log(getattr(base, n)) for n in names]

    def f(x: Sequence[float]) -> float:
        p = replace(base, **{n: math.exp(v) for n, v in zip(names, x, strict=True)})
        # a weak pull towards the defaults keeps parameters no run informs where they started
        prior = 0.02 * sum((v - v0) ** 2 for v, v0 in zip(x, x0, strict=True))
        return loss(p, data) + prior

    best = nelder_mead(f, x0, iterations=iterations)
    return replace(base, **{n: math.exp(v) for n, v in zip(names, best, strict=True)})


def _used(name: str, data: Sequence[Case]) -> bool:
    """Whether any run's workload depends on the parameter at all (else it is left alone)."""
    kinds = {s.kind for c in data for s in c.workload.stages if s.bytes or s.layers}
    engines = {c.workload.engine for c in data}
    return {"gpu_eff": "gpu" in kinds or "rpc" in kinds, "gpu_layer_s": "gpu" in kinds or "rpc" in kinds,
            "cpu_eff": "cpu" in kinds and "llama.cpp" in engines, "ik_cpu_eff": "ik_llama.cpp" in engines,
            "disk_eff": "disk" in kinds, "cpu_layer_s": "cpu" in kinds,
            "split_s": any(c.workload.split_layers for c in data),
            "hop_s": "gpu" in kinds or "rpc" in kinds, "rpc_hop_s": "rpc" in kinds}.get(name, False)


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
