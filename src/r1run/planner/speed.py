"""How fast a run will go: an expected decode speed from where the time of one token goes, beside the bound.

The bound (`placement`) divides the bytes a token reads on each device by that device's published (or
measured) bandwidth. Real runs are slower, often by far, for reasons a few parameters capture:

    seconds per token = sum over GPU/RPC stages of bytes / (gpu_eff x bandwidth)     memory traffic
                      + layers on a GPU x (gpu_layer_s + gpu_moe_layer_s for MoE,     launches, syncs, routing
                        ik_gpu_moe_layer_s with ik_llama.cpp)
                      + CPU: the slower (cube-norm) of bytes / (cpu_eff x RAM bandwidth) and active parameters
                        x cpu_param_s / threads (x iq_factor for i-quants)            memory- or compute-bound
                        (this CPU's measured figure and thread speed-up when r1run measured them:
                        bench.arithmetic, `CpuArithmetic`)
                      + layers on the CPU x (cpu_layer_s + threads x cpu_thread_layer_s
                        (+ threads x cpu_moe_thread_layer_s for MoE))                 threads meeting per op
                      + recurrent layers on the CPU x cpu_recurrent_layer_s           Qwen3-Next's DeltaNet state
                      + layers whose experts stay in RAM x split_s                    activations GPU <-> CPU
                      + device boundaries x hop_s (+ rpc_hop_s per RPC device and per boundary between two,
                        + layers on RPC devices x rpc_layer_bytes / network speed: llama.cpp sends each its
                        graph every token; + the logits (n_vocab x 4 bytes) / network speed when the output
                        layer is on an RPC device)
                      + bytes paged from disk / (paging_speedup x disk bandwidth)     mmap, helped by the cache

Efficiencies are shares of the vendor's peak figure (a figure measured on this machine by r1run is
converted with `measured_share`); ik_llama.cpp gets its own CPU efficiency. The parameters are fitted
on published measurements (`data/published_runs.json`, fitted by `speed_fit`, stored in
`data/speed_model.json` with the fit's own error) and refined per machine by its saved `r1run bench`
results (`calibration`). Pure: no I/O beyond reading the shipped parameters.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, fields
from importlib import resources

from r1run.planner.placement import RunPlan, Stage


@dataclass(frozen=True)
class Params:
    gpu_eff: float = 0.6          # share of a GPU's peak bandwidth a decode step's reads reach
    cpu_eff: float = 0.5          # share of the RAM's peak bandwidth (mainline llama.cpp)
    ik_cpu_eff: float = 0.6       # the same with ik_llama.cpp
    paging_speedup: float = 1.0   # paging's effective speed over the disk's: page faults lose some, the page cache
                                  # keeps the experts most tokens use (few tokens miss it)
    gpu_layer_s: float = 30e-6    # per repeating layer computed on a GPU (kernel launches)
    cpu_layer_s: float = 30e-6    # per repeating layer on the CPU (scheduling its operations)
    cpu_thread_layer_s: float = 2e-6  # ...and per thread (the threads meet after each operation)
    gpu_moe_layer_s: float = 300e-6  # a GPU's extra time per mixture-of-experts layer (routing, its syncs and launches)
    ik_gpu_moe_layer_s: float = 300e-6  # the same with ik_llama.cpp (fused expert matmuls: -fmoe)
    cpu_moe_thread_layer_s: float = 2e-6  # a CPU's extra time per mixture-of-experts layer and thread (the
                                          # threads meet once per expert matmul, not once per layer)
    cpu_recurrent_layer_s: float = 1e-3   # a CPU's extra time per recurrent layer (Qwen3-Next's Gated DeltaNet:
                                          # many small operations on its state, not bandwidth)
    split_s: float = 100e-6       # per layer whose routed experts run on the CPU while the rest runs on a GPU
    hop_s: float = 100e-6         # per boundary between two devices (one more for each RPC device: rpc_hop_s)
    rpc_hop_s: float = 1e-3
    rpc_layer_bytes: float = 16e3  # bytes of graph llama.cpp sends an RPC device every token per layer it holds:
                                   # about 45 tensors a layer (nodes and weights), 324 bytes each (ggml-rpc's
                                   # rpc_tensor); first principles, not fitted
    cpu_param_s: float = 0.1e-9   # seconds per active parameter for one CPU thread (k-quants, q8_0)
    iq_factor: float = 2.0        # i-quants (IQ1_S, IQ2_XXS...) cost this much more arithmetic per parameter
    measured_share: float = 0.75  # a bandwidth r1run measured here, as a share of the peak the parameters use

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def to_dict(self) -> dict[str, float]:
        return {n: getattr(self, n) for n in self.names()}


@dataclass(frozen=True)
class CpuArithmetic:
    """This CPU's speed as r1run measured it with the engine's kernels on a model streamed from RAM
    (`bench.arithmetic`): seconds per parameter and per byte for one thread, and how much faster `threads`
    threads were than one."""

    param_s: float
    threads: int
    speedup: float
    quant: str                     # the type measured
    covers_type: bool = True       # the model's own type (else Q4_K_M stood in: i-quants keep iq_factor)
    byte_s: float = 0.0            # seconds per byte of weights for one thread (0: not measured)

    def speedup_at(self, threads: int) -> float:
        """The speed-up of `threads` threads over one, along the line through the measured threads' (beyond them
        too: the probe measures at most 2); linear when only one thread was measured."""
        if threads <= 1:
            return 1.0
        if self.threads <= 1:
            return float(threads)
        return 1.0 + (threads - 1) * (self.speedup - 1.0) / (self.threads - 1)

    def describe(self) -> str:
        text = f"measured here: {1 / self.param_s / 1e9:.0f} G parameters/s on one thread ({self.quant})"
        return text + (f", {self.threads} threads {self.speedup:.2f}x one" if self.threads > 1 else "")


@dataclass(frozen=True)
class Workload:
    """What the model times: a decode step's stages, and what kind of run it is."""

    stages: tuple[Stage, ...]
    split_layers: int = 0          # layers on a GPU whose routed experts stay in RAM
    engine: str = "llama.cpp"
    cpu_measured: bool = False     # the CPU stage's bandwidth was measured on this machine, not a vendor figure
    threads: int = 8               # CPU threads computing
    bits_per_weight: float = 4.5   # the file's bytes x 8 / parameters: turns bytes read into parameters
    iquant: bool = False           # the file's type is an i-quant (costlier arithmetic on a CPU)
    net_rate: float = 125e6        # bytes/s between this machine and its RPC workers (1 Gbit/s unless told)
    moe: bool = False              # a mixture-of-experts model (its layers cost more than their bytes say)
    recurrent_layers: int = 0      # recurrent (state-space, linear-attention) layers computed on the CPU
    arithmetic: CpuArithmetic | None = None  # this CPU's, measured here (else the fitted cpu_param_s)
    logits_bytes: float = 0.0      # the logits that come back over the network every token (the output layer on
                                   # an RPC device: n_vocab x 4 bytes)

    @classmethod
    def from_plan(cls, plan: RunPlan, engine: str = "llama.cpp", cpu_measured: bool = False,
                  threads: int | None = None, arithmetic: CpuArithmetic | None = None) -> "Workload":
        info = plan.model
        bits = info.tensor_bytes * 8 / info.parameter_count if info is not None and info.parameter_count else 4.5
        iq = bool(info is not None and (info.file_type or "").upper().startswith("IQ"))
        moe = bool(info is not None and info.is_moe)
        recurrent = 0
        if info is not None and info.recurrent_layers:
            n = info.hparams.block_count
            on_cpu = n - min(n, plan.gpu_layers)  # -ngl counts the output layer last: the first layers stay on the CPU
            recurrent = round(info.recurrent_layers * on_cpu / n) if n else 0
        accel = [s for s in plan.stages if s.kind in ("gpu", "rpc") and (s.bytes or s.layers)]
        output_on_rpc = bool(info is not None and accel and accel[-1].kind == "rpc"
                             and plan.gpu_layers > info.hparams.block_count)  # -ngl counts the output layer last
        logits = 4.0 * (info.hparams.vocab_size or 0) if output_on_rpc and info is not None else 0.0
        return cls(plan.stages, len(plan.cpu_moe_layers), engine, cpu_measured, threads or 8, bits, iq, moe=moe,
                   recurrent_layers=recurrent, arithmetic=arithmetic, logits_bytes=logits)

    @property
    def kind(self) -> str:
        """cpu | gpu | hybrid | rpc | paging: the class of run (for ranges and prompt ratios)."""
        kinds = {s.kind for s in self.stages if s.bytes or s.layers}
        if "disk" in kinds:
            return "paging"
        if "rpc" in kinds:
            return "rpc"
        if "gpu" in kinds:
            cpu = next((s for s in self.stages if s.kind == "cpu"), None)
            return "hybrid" if cpu is not None and cpu.bytes > 0.05 * sum(s.bytes for s in self.stages) else "gpu"
        return "cpu"


@dataclass(frozen=True)
class Calibration:
    """This machine's factor from its own saved bench rows (`bench.calibration` finds it)."""

    factor: float                 # measured / expected generation speed, median over the rows
    rows: int
    models: tuple[str, ...]

    def describe(self) -> str:
        return (f"calibrated on {self.rows} saved bench row(s) of this machine ({', '.join(self.models)}): "
                f"x{self.factor:.2f}; --no-calibration ignores them")


@dataclass(frozen=True)
class Part:
    name: str
    seconds: float      # per token
    why: str


@dataclass(frozen=True)
class Expected:
    gen_tps: float
    low: float
    high: float
    parts: tuple[Part, ...]
    calibration: float = 1.0    # this machine's factor from its own bench results (1: none)

    def to_dict(self) -> dict:
        return {"gen_tps": round(self.gen_tps, 3), "low_tps": round(self.low, 3), "high_tps": round(self.high, 3),
                "calibration": round(self.calibration, 3),
                "seconds_per_token": {p.name: round(p.seconds, 6) for p in self.parts}}


def time_parts(w: Workload, p: Params) -> tuple[Part, ...] | None:
    """Where one token's time goes; None when a stage's bandwidth is unknown."""
    parts: list[Part] = []
    accel = [s for s in w.stages if s.kind in ("gpu", "rpc") and (s.bytes or s.layers)]
    for s in w.stages:
        if not (s.bytes or s.layers) or s.kind == "disk":
            continue
        if s.bandwidth is None:
            return None
        if s.kind == "cpu":
            eff = p.ik_cpu_eff if w.engine == "ik_llama.cpp" else p.cpu_eff
            rate = s.bandwidth / p.measured_share * eff if w.cpu_measured else s.bandwidth * eff
            memory = s.bytes / rate
            params = s.bytes * 8 / w.bits_per_weight
            a = w.arithmetic
            if a is None:
                arithmetic = params * p.cpu_param_s * (p.iq_factor if w.iquant else 1.0) / max(1, w.threads)
            elif a.covers_type and a.byte_s:  # the model's own type, measured: its weights cost what they weigh
                arithmetic = s.bytes * a.byte_s / a.speedup_at(w.threads)
            else:  # per parameter (Q4_K_M standing in: an i-quant's costlier arithmetic as fitted)
                iq = p.iq_factor if w.iquant and not a.covers_type else 1.0
                arithmetic = params * a.param_s * iq / a.speedup_at(w.threads)
            both = (memory ** 3 + arithmetic ** 3) ** (1 / 3)  # the slower one dominates; near a tie both show
            if memory >= arithmetic:
                parts.append(Part("CPU reads", both, f"{s.bytes / 1e9:.2f} GB at {rate / 1e9:.0f} GB/s (memory-bound)"))
            else:
                parts.append(Part("CPU arithmetic", both, f"{params / 1e9:.1f} G parameters on {w.threads} threads "
                                  f"(compute-bound{'; ' + a.describe() if a else ''})"))
            per_thread = p.cpu_thread_layer_s + (p.cpu_moe_thread_layer_s if w.moe else 0.0)
            parts.append(Part("CPU layers", s.layers * (p.cpu_layer_s + per_thread * max(1, w.threads)),
                              f"{s.layers} layers, {w.threads} threads"))
            if w.recurrent_layers:
                parts.append(Part("CPU recurrent layers", w.recurrent_layers * p.cpu_recurrent_layer_s,
                                  f"{w.recurrent_layers} state-space/linear-attention layers"))
        else:
            rate = s.bandwidth * p.gpu_eff
            name = s.kind.upper()
            parts.append(Part(f"{name} reads", s.bytes / rate, f"{s.label}: {s.bytes / 1e9:.2f} GB at "
                              f"{rate / 1e9:.0f} GB/s"))
            moe = (p.ik_gpu_moe_layer_s if w.engine == "ik_llama.cpp" else p.gpu_moe_layer_s) if w.moe else 0.0
            parts.append(Part(f"{name} layers", s.layers * (p.gpu_layer_s + moe),
                              f"{s.label}: {s.layers} layers"))
    if w.split_layers:
        parts.append(Part("experts on the CPU", w.split_layers * p.split_s, f"{w.split_layers} layers cross over"))
    rpc = sum(1 for s in accel if s.kind == "rpc")
    rpc_layers = sum(s.layers for s in accel if s.kind == "rpc")
    hops = max(0, len(accel) - 1) + (1 if accel and any(s.kind == "cpu" and s.layers for s in w.stages) else 0)
    # activations from one RPC device to another go through this machine (a get, then a set): one more round trip
    relayed = sum(1 for a, b in zip(accel, accel[1:], strict=False) if a.kind == "rpc" and b.kind == "rpc")
    if hops or rpc:  # an RPC device is a network round trip even when it holds every layer (the logits come back)
        network = ((rpc + relayed) * p.rpc_hop_s + (rpc_layers * p.rpc_layer_bytes + w.logits_bytes) / w.net_rate)
        parts.append(Part("device hops", hops * p.hop_s + network,
                          f"{hops} boundaries" + (f", {rpc + relayed} round trips over the network" if rpc else "")))
    for s in w.stages:
        if s.kind == "disk" and s.bytes:
            if s.bandwidth is None:
                return None
            rate = s.bandwidth * p.paging_speedup
            parts.append(Part("disk reads", s.bytes / rate,
                              f"{s.bytes / 1e9:.2f} GB paged in at {rate / 1e9:.1f} GB/s"))
    return _merged(parts)


def _merged(parts: list[Part]) -> tuple[Part, ...]:
    """Parts of the same name (two GPUs' reads) as one, in first-seen order; empty ones dropped."""
    out: dict[str, Part] = {}
    for x in parts:
        if x.seconds <= 0:
            continue
        had = out.get(x.name)
        out[x.name] = x if had is None else Part(x.name, had.seconds + x.seconds, f"{had.why}; {x.why}")
    return tuple(out.values())


def gen_tps(w: Workload, p: Params) -> float | None:
    parts = time_parts(w, p)
    if parts is None:
        return None
    total = sum(x.seconds for x in parts)
    return 1.0 / total if total > 0 else None


# --- the shipped model -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Model:
    params: Params
    spread: float                  # factor either side of the prediction that held most published runs
    fitted_on: int                 # published runs
    loo_median: float              # leave-one-out: the median row's error, as a factor (>= 1)
    loo_worst: float               # the worst row's
    prompt_ratio: dict[str, float]  # prompt t/s over generation t/s by kind of run (published medians)
    runs: tuple[dict, ...] = ()     # each published run's summary: id, kind, bytes and bandwidth, speeds, source


@functools.lru_cache(maxsize=1)
def shipped() -> Model:
    data = json.loads(resources.files("r1run.planner").joinpath("data/speed_model.json").read_text(encoding="utf-8"))
    return Model(Params(**data["params"]), float(data["spread"]), int(data["fitted_on"]),
                 float(data["leave_one_out"]["median_factor"]), float(data["leave_one_out"]["worst_factor"]),
                 {k: float(v) for k, v in data["prompt_ratio"].items()}, tuple(data.get("runs", ())))


def summary(w: Workload) -> dict:
    """What `closest_published` compares: the kind of run, the bytes a token reads, the bandwidth of the place
    that reads most."""
    heavy = max(w.stages, key=lambda s: s.bytes, default=None)
    return {"kind": w.kind, "bytes_per_token": sum(s.bytes for s in w.stages),
            "bandwidth": heavy.bandwidth if heavy is not None and heavy.bandwidth else None}


def closest_published(model: Model, w: Workload) -> dict | None:
    """The published run most like this workload: the same kind of run first, then the nearest in bytes per
    token and in the bandwidth of the place that reads most (both on a log scale)."""
    me = summary(w)
    if not me["bytes_per_token"] or not me["bandwidth"]:
        return None

    def distance(r: dict) -> tuple[int, float]:
        return (0 if r["kind"] == me["kind"] else 1,
                abs(math.log(r["bytes_per_token"] / me["bytes_per_token"])) + abs(math.log(r["bandwidth"] /
                                                                                          me["bandwidth"])))
    usable = [r for r in model.runs if r.get("bytes_per_token") and r.get("bandwidth")]
    return min(usable, key=distance) if usable else None


def expect(w: Workload, model: Model | None = None, calibration: float = 1.0) -> Expected | None:
    """The expected generation speed with its range; None when a bandwidth is unknown."""
    m = model or shipped()
    parts = time_parts(w, m.params)
    if parts is None:
        return None
    total = sum(x.seconds for x in parts)
    if total <= 0:
        return None
    tps = calibration / total
    spread = m.spread if calibration == 1.0 else math.sqrt(m.spread)  # a machine's own runs narrow it
    return Expected(tps, tps / spread, tps * spread, parts, calibration)
