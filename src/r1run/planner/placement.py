"""Where each part of a model goes, and the placement that puts it there. Pure: no I/O.

llama.cpp's `-ngl N` offloads the output layer first, then the last N-1 repeating layers (a
layer's KV cache follows it). For MoE models r1run offloads every layer but keeps the routed
experts of the first K layers in RAM (`--n-cpu-moe K`, or `-ot "blk\\.(3|4)\\.ffn_(up|down|gate)_exps=CPU"`
where the binary lacks it): the weights every token reads (attention, shared experts, dense
layers, output) go to the GPU first, routed experts fill what is left.

    plan_run(info, machine, caps, spec, gpu_layers="auto") -> RunPlan
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal, Union

from r1run import units
from r1run.gguf.model import ModelInfo
from r1run.llama.args import Placement
from r1run.planner import memory as mem
from r1run.planner.machine import Device, MachineSpec

GiB = 1 << 30
EXPERT_TENSORS = "ffn_(up|down|gate)_exps"
OP_OFFLOAD_MIN_BATCH = 32  # ggml backends copy host weights to the GPU for batches this large


@dataclass(frozen=True)
class Caps:
    """The few things placement needs to know about the llama.cpp binary (from llama.probe.Capabilities)."""

    n_cpu_moe: bool = True
    cpu_moe: bool = True
    override_tensor: bool = True
    flash_attn_values: bool = True   # `-fa on|off|auto` rather than a bare `-fa`
    rpc: bool = True

    @classmethod
    def from_capabilities(cls, caps) -> "Caps":
        return cls(n_cpu_moe=caps.n_cpu_moe, cpu_moe=caps.cpu_moe, override_tensor=caps.override_tensor,
                   flash_attn_values=caps.flash_attn_values, rpc=caps.rpc)


@dataclass(frozen=True)
class DeviceUse:
    name: str
    kind: str                   # gpu | rpc | cpu | disk
    label: str
    capacity: int               # bytes usable (after margins)
    weights: int
    kv: int
    compute: int
    layers: list[int] = field(default_factory=list)   # repeating layers whose non-expert weights live here
    expert_layers: list[int] = field(default_factory=list)

    @property
    def used(self) -> int:
        return self.weights + self.kv + self.compute

    @property
    def free_after(self) -> int:
        return self.capacity - self.used


@dataclass(frozen=True)
class Stage:
    """One place a decode step passes through, in order (GPUs and RPC devices, the CPU, the disk): the bytes of
    weights it reads there per token and the repeating layers computed there (`planner.speed` times them)."""

    kind: str                   # gpu | rpc | cpu | disk
    label: str
    bytes: int
    bandwidth: float | None     # bytes/s; None when unknown
    layers: int = 0             # the CPU counts a layer whose routed experts it keeps, too


@dataclass(frozen=True)
class RunPlan:
    placement: Placement                # -ngl, experts kept in RAM, tensor split (llama.args renders the flags)
    rpc: tuple[str, ...]                # RPC workers the plan places layers on
    gpu_layers: int                     # -ngl (counts the output layer, as llama.cpp does)
    cpu_moe_layers: list[int]           # layers whose routed experts stay in RAM
    ctx: int
    spec: mem.ContextSpec
    devices: list[DeviceUse]            # GPUs / RPC devices, then the CPU
    fits_memory: bool                   # weights + KV + buffers fit RAM + VRAM
    streams_from_disk: int              # bytes of weights left to mmap paging when they do not fit
    max_ctx: int                        # largest context that fits with this placement
    decode_bound_tps: float | None      # tokens/s upper bound from bandwidth; None when a bandwidth is unknown
    bytes_per_token: dict[str, int]     # where a decode step's reads come from: gpu, rpc, cpu, disk
    early_guide_layers: int | None      # `VRAM / size * n_layers - 4`, the early-2025 rule of thumb
    notes: list[str]
    strategy: str                       # cpu-only | full-gpu | moe-experts-split | layers-split
    short_by: int = 0                   # bytes beyond RAM and the GPUs' memory (0 when it fits)
    stages: tuple[Stage, ...] = ()      # the decode step's path, for the expected speed
    _inputs: tuple = field(default=(), repr=False, compare=False)

    @property
    def model(self) -> ModelInfo | None:
        """The model this plan places (None for a plan made by hand)."""
        return self._inputs[0] if self._inputs else None


GpuLayers = Union[int, Literal["auto"]]


def _layer_parts(info: ModelInfo) -> tuple[list[int], list[int], int, int]:
    """Per layer (non-expert, expert) bytes; output-layer bytes (output + norm); token_embd bytes."""
    nl = info.non_layer_tensors
    tok = nl.get("token_embd.weight", 0)
    out = sum(v for k, v in nl.items() if k != "token_embd.weight")
    if "output.weight" not in nl:
        out += tok  # tied embeddings: llama.cpp duplicates token_embd as the output matrix
    return ([layer.non_expert_bytes for layer in info.layers], [layer.expert_bytes for layer in info.layers],
            out, tok)


def _active_fraction(info: ModelInfo) -> float:
    hp = info.hparams
    return (hp.expert_used_count or 0) / hp.expert_count if hp.expert_count else 1.0


def _largest_expert_tensor(info: ModelInfo, layers: set[int]) -> int:
    return max((t.bytes for t in info.tensors if t.expert and t.layer in layers), default=0)


def early_guide(info: ModelInfo, machine: MachineSpec) -> int | None:
    """Unsloth's January-2025 rule: layers = VRAM / file size x n_layers - 4 (None without a GPU)."""
    if not machine.devices:
        return None
    n = machine.vram / max(info.file_bytes, 1) * info.hparams.block_count - 4
    return max(0, min(info.hparams.block_count, math.floor(n)))


def plan_run(info: ModelInfo, machine: MachineSpec, caps: Caps, spec: mem.ContextSpec,
             gpu_layers: GpuLayers = "auto", *, _experts_on_cpu: int | None = None) -> RunPlan:
    """Choose the placement (or check a given -ngl) and return it with the memory per device and a speed bound."""
    plan = _plan_core(info, machine, caps, spec, gpu_layers, _experts_on_cpu)
    return replace(plan, max_ctx=_max_ctx(plan))


@dataclass(frozen=True)
class _Parts:
    """What the model needs, in the units placement moves around: per-layer bytes, the KV cache, the buffers."""

    info: ModelInfo
    spec: mem.ContextSpec
    dims: mem.Dims
    kv: mem.KvEstimate
    comp: mem.ComputeEstimate
    ne: list[int]          # non-expert bytes per layer (attention, norms, shared experts, dense FFN)
    ex: list[int]          # routed-expert bytes per layer
    out_bytes: int         # the output layer (output + norm; token_embd again when tied)
    tok_bytes: int         # token_embd (stays in RAM: llama.cpp reads one row per token)
    moe: bool              # experts can be placed apart from their layer with this llama.cpp

    @property
    def n_layer(self) -> int:
        return self.info.hparams.block_count

    def gpu_need(self, ngl: int, experts_gpu: set[int]) -> int:
        """Bytes the GPUs hold with -ngl `ngl` and the routed experts of `experts_gpu` there."""
        layers = _gpu_layer_ids(self.n_layer, ngl)
        need = sum(self.ne[i] + self.kv.per_layer[i] for i in layers) + (self.out_bytes if ngl >= 1 else 0)
        need += sum(self.ex[i] for i in experts_gpu)
        return need + self.staged_experts(set(layers) - experts_gpu)

    def staged_experts(self, layers_with_cpu_experts: set[int]) -> int:
        """For prompt batches, ggml copies a CPU expert tensor to the GPU: room for the largest one."""
        if self.spec.tokens >= OP_OFFLOAD_MIN_BATCH and any(self.ex[i] for i in layers_with_cpu_experts):
            return _largest_expert_tensor(self.info, layers_with_cpu_experts)
        return 0

    def strategy(self, ngl: int, experts_gpu: set[int]) -> str:
        if ngl == 0:
            return "cpu-only"
        if ngl == self.n_layer + 1 and all(i in experts_gpu or not self.ex[i] for i in range(self.n_layer)):
            return "full-gpu"
        return "moe-experts-split" if self.moe and ngl == self.n_layer + 1 else "layers-split"


def _plan_core(info: ModelInfo, machine: MachineSpec, caps: Caps, spec: mem.ContextSpec,
               gpu_layers: GpuLayers, _experts_on_cpu: int | None) -> RunPlan:
    """The steps in the order llama.cpp fills memory: what the model needs; which layers (and which layers'
    routed experts) go to the GPUs; how they spread over the devices, giving some back until each fits; what
    stays in RAM and whether that fits (else mmap pages weights in from disk); the speed bound."""
    parts = _parts(info, spec, caps)
    devs = [d for d in machine.devices if d.free > 0]
    usable = [max(0, d.free - machine.gpu_margin - parts.comp.total) for d in devs]
    ngl, experts_gpu = _gpu_layers(parts, sum(usable), gpu_layers, _experts_on_cpu) if devs else (0, set())
    auto = gpu_layers == "auto" and _experts_on_cpu is None
    ngl, experts_gpu, uses = _spread_until_fits(parts, devs, usable, machine, ngl, experts_gpu, shrink=auto)
    gpu_ids = _gpu_layer_ids(parts.n_layer, ngl)
    cpu_moe_layers = sorted(i for i in gpu_ids if parts.ex[i] and i not in experts_gpu) if parts.moe else []
    host = _host(parts, machine, uses, ngl, cpu_moe_layers)
    notes = list(parts.dims.notes)
    if host.over_ram > host.weights_in_ram:
        notes.append("the KV cache and buffers alone exceed RAM: lower the context")
    if any(u.free_after < 0 for u in uses):
        notes.append("the GPU layers asked for do not fit the GPU memory: expect an out-of-memory error")
    reads, bound, speed_notes, stages = _decode_bound(parts, machine, devs, uses, host, ngl)
    notes += speed_notes
    if host.streams:
        notes.append(f"the model does not fit RAM + VRAM: {units.size(host.streams)} of weights are paged in from "
                     f"disk through mmap as tokens need them (at {machine.disk_bandwidth / 1e9:.1f} GB/s disk reads; "
                     "how often depends on how many of a token's experts the page cache holds)")
    trained = info.hparams.context_length
    if trained and spec.ctx > trained:
        notes.append(f"context {spec.ctx} is above the model's trained context {trained}")
    return RunPlan(
        placement=_placement(info, caps, ngl, cpu_moe_layers, uses, parts.moe, parts.n_layer),
        rpc=tuple(dict.fromkeys(d.endpoint for d in devs if d.kind == "rpc")),  # a worker may offer several devices
        gpu_layers=ngl, cpu_moe_layers=cpu_moe_layers, ctx=spec.ctx, spec=spec,
        devices=[*uses, host.use], fits_memory=host.over_ram == 0 and all(u.free_after >= 0 for u in uses),
        streams_from_disk=host.streams, max_ctx=0, decode_bound_tps=bound, bytes_per_token=reads,
        early_guide_layers=early_guide(info, machine), notes=notes, strategy=parts.strategy(ngl, experts_gpu),
        short_by=host.over_ram + sum(max(0, -u.free_after) for u in uses),
        stages=stages + ((Stage("cpu", "CPU", reads["cpu"], machine.cpu_bandwidth,
                                len(host.use.layers) + len(cpu_moe_layers)),)
                         + ((Stage("disk", "disk", reads["disk"], machine.disk_bandwidth),) if reads["disk"] else ())),
        _inputs=(info, machine, caps, gpu_layers, _experts_on_cpu),
    )


def _parts(info: ModelInfo, spec: mem.ContextSpec, caps: Caps) -> _Parts:
    dims = mem.dims_of(info)
    ne, ex, out_bytes, tok_bytes = _layer_parts(info)
    return _Parts(info, spec, dims, mem.kv_cache(info, spec, dims), mem.compute_buffer(info, spec, dims), ne, ex,
                  out_bytes, tok_bytes, info.is_moe and (caps.n_cpu_moe or caps.override_tensor or caps.cpu_moe))


def _gpu_layers(parts: _Parts, vram: int, gpu_layers: GpuLayers,
                experts_on_cpu: int | None) -> tuple[int, set[int]]:
    """-ngl and the layers whose routed experts go to the GPU. The user's -ngl N puts all of those layers there,
    experts too, as llama.cpp does. Auto: for MoE, every layer's shared weights first, then whole layers' routed
    experts from the last layer down while they fit; for a dense model, as many whole layers as fit."""
    n_layer, ex = parts.n_layer, parts.ex
    if gpu_layers != "auto":
        ngl = min(gpu_layers, n_layer + 1)
        layers = set(_gpu_layer_ids(n_layer, ngl))
        if parts.moe and experts_on_cpu is not None:
            return ngl, {i for i in layers if i >= experts_on_cpu}
        return ngl, layers
    if parts.moe:
        base = parts.gpu_need(n_layer + 1, set())
        if base > vram:
            return _max_layers(n_layer, lambda k: parts.gpu_need(k, set()) <= vram), set()
        if experts_on_cpu is not None:
            return n_layer + 1, {i for i in range(n_layer) if i >= experts_on_cpu}
        return n_layer + 1, _fill_experts(set(range(n_layer)), ex, vram - base)
    ngl = _max_layers(n_layer, lambda k: parts.gpu_need(k, set(_gpu_layer_ids(n_layer, k))) <= vram)
    return ngl, set(_gpu_layer_ids(n_layer, ngl))


def _spread_until_fits(parts: _Parts, devs: list[Device], usable: list[int], machine: MachineSpec, ngl: int,
                       experts_gpu: set[int], *, shrink: bool) -> tuple[int, set[int], list[DeviceUse]]:
    """Spread the GPU layers over the devices. Whole layers do not split evenly over several devices: when
    r1run chose the placement (`shrink`), give up a layer's experts (or a layer) until each device fits."""
    n_layer, ex = parts.n_layer, parts.ex

    def device_uses(ngl: int, experts_gpu: set[int]) -> list[DeviceUse]:
        ids = _gpu_layer_ids(n_layer, ngl)
        uses = _spread(devs, usable, ids, experts_gpu, parts.ne, ex, parts.kv, parts.comp,
                       parts.out_bytes if ngl >= 1 else 0, machine)
        staged = parts.staged_experts(set(ids) - experts_gpu)
        if uses and staged:
            uses[0] = replace(uses[0], compute=uses[0].compute + staged)
        return uses

    uses = device_uses(ngl, experts_gpu)
    while shrink and any(u.free_after < 0 for u in uses):
        on_gpu = sorted(i for i in experts_gpu if ex[i] and i in _gpu_layer_ids(n_layer, ngl))
        if parts.moe and ngl == n_layer + 1 and on_gpu:
            experts_gpu = experts_gpu - {on_gpu[0]}
        elif ngl > 0:
            ngl -= 1
            experts_gpu = set() if parts.moe else set(_gpu_layer_ids(n_layer, ngl))
        else:
            break
        uses = device_uses(ngl, experts_gpu)
    return ngl, experts_gpu, uses


@dataclass(frozen=True)
class _Host:
    use: DeviceUse            # the CPU's share: weights, KV cache, buffers
    over_ram: int             # bytes beyond RAM (less its margin)
    weights_in_ram: int       # weights held in RAM (with unified memory, the GPU's too)
    streams: int              # weights mmap must page in from disk as tokens need them


def _host(parts: _Parts, machine: MachineSpec, uses: list[DeviceUse], ngl: int, cpu_moe_layers: list[int]) -> _Host:
    """What stays in RAM: layers not offloaded, routed experts kept on the CPU, token_embd, their KV cache and
    the CPU's buffers; with unified memory, the GPU's share counts against the same RAM."""
    n_layer, ne, ex, info = parts.n_layer, parts.ne, parts.ex, parts.info
    gpu_ids = _gpu_layer_ids(n_layer, ngl)
    cpu_layers = [i for i in range(n_layer) if i not in gpu_ids]
    weights = parts.tok_bytes + sum(ne[i] + ex[i] for i in cpu_layers) + sum(ex[i] for i in cpu_moe_layers)
    if ngl < 1:
        weights += parts.out_bytes - (parts.tok_bytes if "output.weight" not in info.non_layer_tensors else 0)
    kv = sum(parts.kv.per_layer[i] for i in cpu_layers)
    compute = parts.comp.total if not uses else parts.comp.mask + parts.spec.tokens * 4 * 4 * parts.dims.n_embd
    compute += parts.comp.output
    ram_cap = machine.ram - machine.ram_margin
    gpu_in_ram = sum(u.used for u in uses if u.kind == "gpu") if machine.unified else 0  # Metal buffers are RAM
    over_ram = max(0, weights + kv + compute + gpu_in_ram - ram_cap)
    weights_in_ram = weights + (sum(u.weights for u in uses if u.kind == "gpu") if machine.unified else 0)
    use = DeviceUse("CPU", "cpu", "RAM", ram_cap, weights, kv, compute, cpu_layers,
                    [i for i in range(n_layer) if ex[i] and (i in cpu_layers or i in cpu_moe_layers)])
    return _Host(use, over_ram, weights_in_ram, min(over_ram, weights_in_ram))


def _decode_bound(parts: _Parts, machine: MachineSpec, devs: list[Device], uses: list[DeviceUse], host: _Host,
                  ngl: int) -> tuple[dict[str, int], float | None, list[str], tuple[Stage, ...]]:
    """Bytes one decode step reads from each place (non-expert weights, the active share of the routed experts)
    over that place's bandwidth: (reads per place, tokens/s upper bound or None, notes, the GPU/RPC stages)."""
    frac = _active_fraction(parts.info)
    reads: dict[str, int] = {"gpu": 0, "rpc": 0, "cpu": 0, "disk": 0}
    times = 0.0
    unknown: list[str] = []
    notes: list[str] = []
    stages: list[Stage] = []
    for u, d in zip(uses, devs, strict=True):
        b = sum(parts.ne[i] for i in u.layers) + int(sum(parts.ex[i] for i in u.expert_layers) * frac)
        b += parts.out_bytes if u is uses[-1] and ngl >= 1 else 0
        reads[d.kind] += b
        rate = d.bandwidth if d.kind == "gpu" else d.bandwidth or machine.cpu_bandwidth
        stages.append(Stage(d.kind, d.label, b, rate, len(u.layers)))
        if rate is None:
            unknown.append(d.label)
        else:
            times += b / rate
    cpu_read = sum(parts.ne[i] for i in host.use.layers) + int(sum(parts.ex[i] for i in host.use.expert_layers) * frac)
    cpu_read += parts.out_bytes if ngl < 1 else 0
    resident = 1.0 - (host.streams / host.weights_in_ram if host.weights_in_ram else 0.0)
    disk_read = int(cpu_read * (1 - resident)) if host.streams else 0
    reads["cpu"], reads["disk"] = cpu_read - disk_read, disk_read
    # An upper bound assumes the page cache holds every expert a token needs (the best case: tokens favour some
    # experts, and published runs paging 60% of a model beat the disk-speed figure 4-6x); what paging costs in
    # practice is planner.speed's to expect. `disk` stays the bytes a token would page in if experts were used evenly.
    times += cpu_read / machine.cpu_bandwidth
    bound = None if unknown or times <= 0 else 1.0 / times
    if unknown:
        notes.append(f"memory bandwidth of {', '.join(sorted(set(unknown)))} unknown: name the GPU with --gpu-name "
                     "(e.g. 'RTX 4090') or pass --bandwidth gpu=... for a speed bound")
    if any(d.kind == "rpc" for d in devs):
        notes.append("RPC devices: their memory bandwidth is taken as this machine's RAM bandwidth; network "
                     "latency per layer hop is not in the bound")
    return reads, bound, notes, tuple(stages)


def _gpu_layer_ids(n_layer: int, ngl: int) -> list[int]:
    """Repeating layers on the GPU for -ngl N: the output layer counts first, then the last N-1 layers."""
    k = max(0, min(ngl - 1, n_layer))
    return list(range(n_layer - k, n_layer))


def _max_layers(n_layer: int, fits) -> int:
    best = 0
    for k in range(1, n_layer + 2):
        if fits(k):
            best = k
        else:
            break
    return best


def _fill_experts(layers: set[int], ex: list[int], room: int) -> set[int]:
    """Routed experts of whole layers, from the last layer down, while they fit (so the CPU keeps layers 0..K-1)."""
    chosen: set[int] = set()
    for i in sorted(layers, reverse=True):
        if not ex[i]:
            continue
        if ex[i] > room:
            break
        chosen.add(i)
        room -= ex[i]
    return chosen | {i for i in layers if not ex[i]}


def _spread(devs: list[Device], usable: list[int], layers: list[int], experts_gpu: set[int], ne: list[int],
            ex: list[int], kv: mem.KvEstimate, comp: mem.ComputeEstimate, out_bytes: int,
            machine: MachineSpec) -> list[DeviceUse]:
    """Split the GPU layers over devices in proportion to usable memory (llama.cpp's default tensor split)."""
    if not devs:
        return []
    total = sum(usable) or 1
    cuts, acc = [], 0.0
    for u in usable:
        acc += u / total
        cuts.append(acc)
    per: list[list[int]] = [[] for _ in devs]
    # by bytes, not by layer count: with experts split, the GPU layers differ a lot in size
    cost = [ne[i] + kv.per_layer[i] + (ex[i] if i in experts_gpu else 0) for i in layers]
    whole = sum(cost) + out_bytes or 1
    done = 0.0
    for i, c in zip(layers, cost, strict=True):
        pos = (done + c / 2) / whole
        per[next(k for k, cut in enumerate(cuts) if pos <= cut + 1e-9)].append(i)
        done += c
    out = []
    for k, (d, ls) in enumerate(zip(devs, per, strict=True)):
        w = sum(ne[i] for i in ls) + sum(ex[i] for i in ls if i in experts_gpu)
        if k == len(devs) - 1:
            w += out_bytes
        out.append(DeviceUse(d.name, d.kind, d.label, d.free - machine.gpu_margin, w,
                             sum(kv.per_layer[i] for i in ls), comp.total if (ls or k == len(devs) - 1) else 0,
                             ls, [i for i in ls if i in experts_gpu and ex[i]]))
    return out


def _placement(info: ModelInfo, caps: Caps, ngl: int, cpu_moe_layers: list[int], uses: list[DeviceUse],
               moe: bool, n_layer: int) -> Placement:
    """The placement in the flags this llama.cpp has: `--cpu-moe` when every MoE layer keeps its experts in RAM,
    `--n-cpu-moe K` for the first K layers, else `-ot` with the layers named."""
    overrides: tuple[str, ...] = ()
    cpu_moe, n_cpu_moe = False, None
    if moe and cpu_moe_layers:
        gpu_ids = set(_gpu_layer_ids(n_layer, ngl))
        all_moe_cpu = not any(layer.moe and i in gpu_ids and i not in cpu_moe_layers
                              for i, layer in enumerate(info.layers))
        contiguous = cpu_moe_layers == list(range(cpu_moe_layers[0], cpu_moe_layers[-1] + 1))
        if all_moe_cpu and caps.cpu_moe:
            cpu_moe = True
        elif all_moe_cpu and caps.override_tensor:
            overrides = (rf"\.{EXPERT_TENSORS}=CPU",)
        elif caps.n_cpu_moe and contiguous and all(not info.layers[i].moe for i in range(cpu_moe_layers[0])):
            n_cpu_moe = cpu_moe_layers[-1] + 1
        elif caps.override_tensor:
            overrides = (override_pattern(cpu_moe_layers),)
    split = ",".join(str(max(1, len(u.layers))) for u in uses) if len(uses) > 1 else None
    return Placement(gpu_layers=ngl, tensor_overrides=overrides, n_cpu_moe=n_cpu_moe, cpu_moe=cpu_moe,
                     tensor_split=split)


def override_pattern(layers: list[int]) -> str:
    """`blk\\.(3|4|5)\\.ffn_(up|down|gate)_exps=CPU`: keep these layers' routed experts in RAM."""
    return rf"blk\.({'|'.join(str(i) for i in layers)})\.{EXPERT_TENSORS}=CPU"


def _max_ctx(plan: RunPlan) -> int:
    """Largest context (multiple of 256) for which this placement still fits every device and RAM."""
    info, machine, caps, _, _ = plan._inputs
    n_layer = info.hparams.block_count
    gpu_ids = _gpu_layer_ids(n_layer, plan.gpu_layers)
    start = None
    if info.is_moe and plan.gpu_layers >= 1:  # keep the routed experts where the plan put them
        start = min([i for i in gpu_ids if info.layers[i].moe and i not in plan.cpu_moe_layers], default=n_layer)

    def fits(ctx: int) -> bool:
        s = replace(plan.spec, ctx=ctx)
        if not plan.fits_memory:  # the largest context any placement fits
            return _plan_core(info, machine, caps, s, "auto", None).fits_memory
        return _plan_core(info, machine, caps, s, plan.gpu_layers, start).fits_memory

    hi = max(plan.ctx, info.hparams.context_length or 131072) // mem.CTX_PAD * mem.CTX_PAD
    lo, best = mem.CTX_PAD, 0
    while lo <= hi:
        mid = max(mem.CTX_PAD, (lo + hi) // 2 // mem.CTX_PAD * mem.CTX_PAD)
        if fits(mid):
            best, lo = mid, mid + mem.CTX_PAD
        else:
            hi = mid - mem.CTX_PAD
    return best
