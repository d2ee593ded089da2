"""The one run configuration: everything llama.cpp is launched with, decided once, each choice with its reason.

    config = decide(target, request, caps, machine, default_threads=(2, "physical cores"), profile=None)
    config.spec        # RunSpec: context, threads, placement, K/V cache, flash attention, batches, RPC, sampling
    config.plan        # where the memory goes for that placement, and the decode-speed bound
    config.notes       # "context 8192 (catalog; --ctx-size to change)", ...

`r1run plan` prints `llama.args.run_flags(config.spec, caps)`; chat, serve, bench and quickstart run
argv built around exactly those flags. After an out-of-memory exit, `shrink` gives the next, smaller
configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

from r1run import units
from r1run.errors import BadInput
from r1run.llama.args import Placement, RunSpec
from r1run.llama.probe import Capabilities
from r1run.planner import memory as mem
from r1run.planner import placement as pl
from r1run.planner.machine import MachineDescription, MachineSpec
from r1run.run.target import Target

# Without a catalog value: a context that keeps the KV cache modest; never the trained 163,840 of R1.
DEFAULT_CTX = 4096
# Below this a reasoning model has no room to think: keep the suggested context (and say it does not fit) instead.
MIN_SHRUNK_CTX = 2048

_WHERE = {"cpu-only": "CPU only", "full-gpu": "all on the GPU",
          "moe-experts-split": "attention and shared weights on the GPU, routed experts split",
          "layers-split": "layers split"}


@dataclass(frozen=True)
class Request:
    """What the user said about the run; None means "r1run decides" (the CLI has parsed and checked each value)."""

    model: str | None = None
    quant: str | None = None
    gpu_layers: int | None = None
    ctx: int | None = None
    threads: int | None = None
    n_predict: int | None = None
    temp: float | None = None
    min_p: float | None = None
    seed: int | None = None
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    flash_attn: str | None = None  # on | off | auto
    batch: int | None = None
    ubatch: int | None = None
    parallel: int | None = None
    rpc: tuple[str, ...] = ()
    machine: MachineDescription = field(default_factory=MachineDescription)
    extra: tuple[str, ...] = ()  # after `--`, verbatim to llama.cpp
    profile: bool = True  # apply the `r1run bench --tune` profile for this model and machine, if any
    engine: str = "auto"  # auto | llama.cpp | ik_llama.cpp (r1run.run.engine)


class Profile(Protocol):
    """Settings tuned for one model on one machine (`r1run bench --tune` stores them, r1run.bench.profile)."""

    def apply(self, spec: RunSpec, req: Request) -> tuple[RunSpec, str]:
        """`spec` with the tuned settings wherever `req` left the choice to r1run; and a note saying what."""
        ...


@dataclass(frozen=True)
class RunConfig:
    spec: RunSpec
    plan: pl.RunPlan  # memory per device and the decode bound, for r1run's placement or the user's -ngl
    notes: tuple[str, ...] = ()  # each choice r1run made, with its reason
    warnings: tuple[str, ...] = ()

    @property
    def planned_gpu_layers(self) -> int:
        return self.plan.gpu_layers


def context_spec(spec: RunSpec) -> mem.ContextSpec:
    """What the memory model needs to know of a run."""
    return mem.ContextSpec(ctx=spec.ctx, cache_type_k=spec.cache_type_k or "f16",
                           cache_type_v=spec.cache_type_v or "f16", ubatch=spec.ubatch or 512,
                           flash_attn=spec.flash_attn != "off", parallel=spec.parallel or 1)


def decide(target: Target, req: Request, caps: Capabilities, machine: MachineSpec, *,
           default_threads: tuple[int, str] | None = None, profile: Profile | None = None) -> RunConfig:
    """The run configuration for `target` on `machine` (pure). `default_threads` (count, why) is used when the
    request names none; without it the thread count is llama.cpp's own default."""
    hp = target.info.hparams
    notes: list[str] = []
    warnings: list[str] = []
    s = target.settings

    if req.ctx is not None:
        ctx = req.ctx
        if hp.context_length and ctx > hp.context_length:
            warnings.append(f"--ctx-size {ctx} is above the {hp.context_length} tokens this model was trained for")
    elif s.ctx:
        ctx = min(s.ctx, hp.context_length) if hp.context_length else s.ctx
        notes.append(f"context {ctx} ({target.settings_source}; --ctx-size to change)")
    else:
        ctx = min(DEFAULT_CTX, hp.context_length) if hp.context_length else DEFAULT_CTX
        notes.append(f"context {ctx} (r1run default; --ctx-size to change)")

    threads = req.threads
    if threads is None and default_threads is not None:
        threads, why = default_threads
        notes.append(f"threads {threads} ({why}; --threads to change)")

    if req.gpu_layers is not None and req.gpu_layers > hp.block_count + 1:
        raise BadInput(f"--gpu-layers {req.gpu_layers} is more than this model's {hp.block_count} layers "
                       "(+1 output layer)", f"use a number from 0 to {hp.block_count + 1}, or auto")

    def pick(user, rec, name: str, flag: str):
        if user is not None:
            return user
        if rec is not None:
            notes.append(f"{name} {rec} ({target.settings_source}; {flag} to change)")
        return rec

    cache_k = _cache_type_k(req, s.cache_type_k, target, caps, notes, pick)
    cache_k, cache_v = _mla_cache_types(req, target, caps, cache_k,
                                        pick(req.cache_type_v, s.cache_type_v, "V cache", "-ctv"), notes)
    spec = RunSpec(
        model=target.path, ctx=ctx, threads=threads, n_predict=req.n_predict,
        temp=pick(req.temp, s.temperature, "temperature", "--temp"),
        min_p=pick(req.min_p, s.min_p, "min-p", "--min-p"),
        seed=req.seed,
        cache_type_k=cache_k, cache_type_v=cache_v,
        flash_attn=req.flash_attn, batch=req.batch, ubatch=req.ubatch, parallel=req.parallel,
        rpc=req.rpc, extra=req.extra,
    )
    plan = pl.plan_run(target.info, machine, pl.Caps.from_capabilities(caps), context_spec(spec),
                       "auto" if req.gpu_layers is None else req.gpu_layers)
    if req.ctx is None and not plan.fits_memory and MIN_SHRUNK_CTX <= plan.max_ctx < ctx:
        # the suggested context does not fit but a smaller one does: run that (and say so), rather than page
        # weights in from disk; `-c` keeps the user's choice whatever it costs
        notes[:] = [n for n in notes if not n.startswith("context ")]
        notes.insert(0, f"context {plan.max_ctx} (the {target.settings_source}'s {ctx} does not fit this machine; "
                        "-c to change)")
        ctx = plan.max_ctx
        spec = replace(spec, ctx=ctx)
        plan = pl.plan_run(target.info, machine, pl.Caps.from_capabilities(caps), context_spec(spec),
                           "auto" if req.gpu_layers is None else req.gpu_layers)
    if req.gpu_layers is None:
        spec = replace(spec, placement=plan.placement)
        bound = f", decode bound {plan.decode_bound_tps:.1f} t/s" if plan.decode_bound_tps else ""
        notes.append(f"placement: {plan.placement.describe()} ({_WHERE.get(plan.strategy, plan.strategy)}{bound}; "
                     "--gpu-layers N to override)")
    else:
        spec = replace(spec, placement=Placement(gpu_layers=req.gpu_layers))
    if not plan.fits_memory:
        warnings.append(f"the model does not fit RAM + VRAM: {units.size(plan.streams_from_disk)} of weights will be "
                        "read from disk as needed (slow)" if plan.streams_from_disk else
                        "this configuration does not fit the memory r1run sees: expect an out-of-memory error")
    if (caps.run_time_repack and plan.fits_memory and not plan.streams_from_disk and plan.strategy == "cpu-only"
            and not req.gpu_layers and not req.rpc and not {"-rtr", "--run-time-repack"} & set(req.extra)):
        # Repacking copies the weights out of the mapped file into RAM: only when they fit there. CPU-only runs
        # only: with `-ngl 31 --rpc ...` ik_llama.cpp 0.1.5 kept every weight on the CPU under -rtr.
        spec = replace(spec, repack=True)
        notes.append("run-time repack on (-rtr: the weights fit in RAM; repacked to interleaved types at load, "
                     "no mmap)")
    if profile is not None:
        spec, note = profile.apply(spec, req)
        notes.append(note)
    if spec.parallel and spec.parallel > 1:  # llama-server splits the context between its slots
        each = spec.ctx // spec.parallel
        notes.append(f"{spec.parallel} slots share the context {spec.ctx}: {each} tokens each "
                     f"(-c {spec.parallel * spec.ctx} gives each {spec.ctx})")
        if each < 512:
            warnings.append(f"{spec.parallel} slots of {each} tokens: a prompt and its answer must fit in {each}; "
                            f"raise -c (e.g. -c {spec.parallel * 2048})")
    return RunConfig(spec, plan, tuple(notes), tuple(warnings))


def _cache_type_k(req: Request, recommended: str | None, target: Target, caps: Capabilities, notes: list[str],
                  pick) -> str | None:
    """The K cache: the user's, else the recommendation. ik_llama.cpp's MLA cache (c^KV, `-mla`) with flash
    attention failed to sample at the recommended q4_0 on an R1-shaped model here ("Failed to sample token",
    abort) and ran at q8_0, so a program with -mla gets q8_0 for deepseek2."""
    if req.cache_type_k is None and recommended == "q4_0" and caps.mla and target.info.architecture == "deepseek2":
        notes.append("K cache q8_0 (the MLA cache of this engine, instead of the recommended q4_0, which failed to "
                     "sample; -ctk to change)")
        return "q8_0"
    return pick(req.cache_type_k, recommended, "K cache", "-ctk")


def _mla_cache_types(req: Request, target: Target, caps: Capabilities, k: str | None, v: str | None,
                     notes: list[str]) -> tuple[str | None, str | None]:
    """llama.cpp keeps V inside K for a file converted with the MLA layout and refuses K and V of different
    types there ("model does not support different K (q4_0) and V (f16) cache types"); a quantized V needs
    flash attention. The recommended q4_0 K is for the original layout's large cache: on an MLA file the cache
    stays f16 unless the user says otherwise; a user's K brings V along, and a mismatch the user asks for is
    refused before a load. ik_llama.cpp (`-mla`) keeps its own MLA cache and is left alone."""
    kk, vv = k or "f16", v or "f16"
    if caps.mla or target.info.kv_layout != "mla":
        return k, v
    if req.cache_type_k is None and req.cache_type_v is None and (kk, vv) != ("f16", "f16"):
        # the recommendation (q4_0 K) shrinks the original layout's large cache; an MLA cache is about 1/70 of
        # it, and quantized it ran slower here (R1-shaped model, 2 threads: q4_0 K and V 224 / 107 t/s prompt /
        # generation against f16's 278 / 115)
        notes[:] = [n for n in notes if not n.startswith((f"K cache {kk} (", f"V cache {vv} ("))]  # replaced:
        notes.append(f"KV cache f16 (this model's MLA layout keeps a small cache: {kk} would save little memory "
                     "and ran slower; -ctk to change)")
        return None, None
    if kk == vv:
        return k, v
    both = f"-ctk {kk} -ctv {vv}"
    if req.cache_type_k is not None and req.cache_type_v is not None:
        raise BadInput(f"this model's MLA cache layout needs one type for K and V in llama.cpp ({both})",
                       f"pass -ctk {kk} -ctv {kk}, or -ctk {vv} -ctv {vv}")
    if req.flash_attn == "off":  # no quantized V without flash attention: the types meet at the unquantized one
        if req.cache_type_k is not None:
            raise BadInput(f"this model's MLA cache layout needs one type for K and V in llama.cpp, and a quantized "
                           f"V needs flash attention ({both} with -fa off)", f"drop -fa off, or -ctk {vv}")
        notes.append(f"K cache {vv} (this model's MLA layout needs K and V of one type in llama.cpp, and a "
                     "quantized V needs flash attention, which is off)")
        return vv, v
    if req.cache_type_v is None:
        notes.append(f"V cache {kk} too (this model's MLA layout needs K and V of one type in llama.cpp)")
        return k, kk
    notes.append(f"K cache {vv} too (this model's MLA layout needs K and V of one type in llama.cpp)")
    return vv, v


def shrink(spec: RunSpec, offloaded: int | None) -> tuple[RunSpec, str] | None:
    """The next configuration after an out-of-memory exit: half the GPU layers (llama.cpp's own count of what
    it offloaded, when it said), then half the context; None when nothing is left to give up."""
    current = spec.placement.gpu_layers
    if current is None or (offloaded is not None and offloaded < current):
        current = offloaded  # -ngl 99 on a 31-layer model offloads 31: halve what really went
    if current is not None and current > 0:
        fewer = current // 2 if current > 4 else current - 1
        return spec.with_placement(replace(spec.placement, gpu_layers=fewer)), f"GPU layers {current} -> {fewer}"
    if spec.ctx > 512:
        smaller = max(512, spec.ctx // 2)
        return spec.with_ctx(smaller), f"context {spec.ctx} -> {smaller}"
    return None
