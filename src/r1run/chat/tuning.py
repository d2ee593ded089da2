"""Turn a user's options, the model's recommended settings and the machine into a RunSpec.

Every default r1run chooses is reported back as a note so the user sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from r1run.chat.target import Target
from r1run.errors import BadInput
from r1run.llama.args import Placement, RunSpec
from r1run.llama.probe import Capabilities

# Without a catalog value: a context that keeps the KV cache modest; never the trained 163,840 of R1.
DEFAULT_CTX = 4096


@dataclass(frozen=True)
class Options:
    """What the user said (None: not given)."""

    gpu_layers: str = "auto"  # auto | N
    ctx: int | None = None
    threads: str = "auto"  # auto | N
    n_predict: int | None = None
    temp: float | None = None
    min_p: float | None = None
    seed: int | None = None
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    rpc: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    profile: bool = True  # apply the `r1run bench --tune` profile for this model and machine, if any


@dataclass(frozen=True)
class Tuned:
    spec: RunSpec
    notes: list[str] = field(default_factory=list)
    planned_gpu_layers: int | None = None
    warnings: list[str] = field(default_factory=list)


def parse_count(text: str, what: str, *, minimum: int = 0) -> int | None:
    """'auto' gives None; otherwise a whole number >= minimum."""
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise BadInput(f"{what} must be 'auto' or a whole number (got {text!r})") from None
    if value < minimum:
        raise BadInput(f"{what} must be at least {minimum} (got {value})")
    return value


def default_threads() -> tuple[int, str]:
    from r1run.hardware import busy_cores, detect_cpu

    cpu = detect_cpu()
    if cpu.performance_cores:
        n, why = cpu.performance_cores, "performance cores"
    else:
        n, why = max(min(cpu.physical_cores, cpu.usable_cores), 1), "physical cores"
    # llama.cpp's threads wait for each other at every step, so one that shares its core with another
    # program stalls them all: on 2 cores kept busy by other work, 2 threads generated 5-10x slower than
    # 1 (benchmarks/bench_defaults.py, docs/bench.md). Leave the cores other programs are using.
    busy = round(busy_cores() * cpu.physical_cores / max(cpu.logical_cores, 1))
    if busy >= 1 and n > 1:
        return max(1, n - busy), f"{n} {why} less {busy} busy with other programs"
    return n, why


def tune(target: Target, opts: Options, caps: Capabilities, planner=None, profile=None) -> Tuned:
    """The RunSpec to run. `planner(ctx, cache_type_k, cache_type_v) -> RunPlan` places the weights for
    --gpu-layers auto (see `plan_for`); without it llama.cpp's own fitting decides."""
    info = target.info
    n_layers = info.hparams.block_count  # type: ignore[attr-defined]
    trained = info.hparams.context_length  # type: ignore[attr-defined]
    notes: list[str] = []
    warnings: list[str] = []
    s = target.settings

    if opts.ctx is not None:
        if opts.ctx <= 0:
            raise BadInput(f"--ctx-size must be positive (got {opts.ctx})", "try --ctx-size 4096")
        ctx = opts.ctx
        if trained and ctx > trained:
            warnings.append(f"--ctx-size {ctx} is above the {trained} tokens this model was trained for")
    elif s.ctx:
        ctx = min(s.ctx, trained) if trained else s.ctx
        notes.append(f"context {ctx} ({target.settings_source})")
    else:
        ctx = min(DEFAULT_CTX, trained) if trained else DEFAULT_CTX
        notes.append(f"context {ctx} (r1run default; --ctx-size to change)")

    threads = parse_count(opts.threads, "--threads", minimum=1)
    if threads is None:
        threads, why = default_threads()
        notes.append(f"threads {threads} ({why})")

    gpu_layers = parse_count(opts.gpu_layers, "--gpu-layers", minimum=0)
    if gpu_layers is not None and gpu_layers > n_layers + 1:
        raise BadInput(f"--gpu-layers {gpu_layers} is more than this model's {n_layers} layers (+1 output layer)",
                       f"use a number from 0 to {n_layers + 1}, or auto")
    cache_k = opts.cache_type_k or s.cache_type_k
    cache_v = opts.cache_type_v or s.cache_type_v
    if gpu_layers is not None:
        placement = Placement(gpu_layers=gpu_layers)
    elif planner is not None:
        plan = planner(ctx, cache_k, cache_v)
        placement = Placement.from_flags(plan.flags)
        where = {"cpu-only": "CPU only", "full-gpu": "all on the GPU", "moe-experts-split":
                 "attention and shared weights on the GPU, routed experts split", "layers-split": "layers split"}
        bound = f", decode bound {plan.decode_bound_tps:.1f} t/s" if plan.decode_bound_tps else ""
        notes.append(f"placement: {placement.describe()} ({where.get(plan.strategy, plan.strategy)}{bound}; "
                     "--gpu-layers N to override)")
        if plan.gpu_layers:
            gpu_layers = plan.gpu_layers
        if not plan.fits_memory:
            warnings.append(f"the model does not fit RAM + VRAM: {plan.streams_from_disk / 2**30:.1f} GiB of weights "
                            "will be read from disk as needed (slow)")
    else:
        placement = Placement()
        notes.append("placement: llama.cpp fits layers to free device memory (--fit)" if caps.fit
                     else "placement: llama.cpp's defaults")

    def pick(user, rec, name: str, flag: str):
        if user is not None:
            return user
        if rec is not None:
            notes.append(f"{name} {rec} ({target.settings_source}; {flag} to change)")
        return rec

    spec = RunSpec(
        model=Path(target.path),
        ctx=ctx,
        threads=threads,
        placement=placement,
        n_predict=opts.n_predict,
        temp=pick(opts.temp, s.temperature, "temperature", "--temp"),
        min_p=pick(opts.min_p, s.min_p, "min-p", "--min-p"),
        seed=opts.seed,
        cache_type_k=pick(opts.cache_type_k, cache_k, "K cache", "--cache-type-k"),
        cache_type_v=pick(opts.cache_type_v, cache_v, "V cache", "--cache-type-v"),
        rpc=opts.rpc,
        extra=opts.extra,
    )
    if profile is not None:  # r1run.bench.profile.Profile: tuned settings for what the user left unset
        spec, note = profile.apply(spec, opts)
        notes.append(note)
    return Tuned(spec, notes, gpu_layers, warnings)


def plan_for(home, target: Target, caps: Capabilities, install, rpc: tuple[str, ...]):
    """A planner callback for `tune`: r1run's placement for this model on this machine (and RPC workers)."""
    from r1run.planner import cmd, memory as mem, placement as pl

    def planner(ctx: int, cache_k: str | None, cache_v: str | None):
        opts = cmd.Options(rpc=",".join(rpc) if rpc else None)
        machine = cmd._machine(home, opts, caps, install, [])
        spec = mem.ContextSpec(ctx=ctx, cache_type_k=cache_k or "f16", cache_type_v=cache_v or "f16")
        return pl.plan_run(target.info, machine, pl.Caps.from_capabilities(caps), spec, "auto")

    return planner


@dataclass(frozen=True)
class Prepared:
    """Everything a model-running command decides before it starts llama.cpp."""

    install: object  # r1run.llama.discover.LlamaInstall
    caps: Capabilities
    target: Target
    tuned: Tuned


def prepare(home, model: str | None, quant: str | None, opts: Options, llama_bin: Path | None) -> Prepared:
    """Find llama.cpp and the model, then tune (with r1run's placement for --gpu-layers auto)."""
    from r1run.chat import target as tgt
    from r1run.llama import discover

    install = discover.find(home, llama_bin)
    caps = discover.capabilities(install, home)
    if opts.rpc:
        from r1run import rpc

        rpc.check_workers(opts.rpc, caps)  # a down or incompatible worker: a clear error before any model load
    target = tgt.resolve(home, model, quant)
    planner = plan_for(home, target, caps, install, opts.rpc) if opts.gpu_layers == "auto" else None
    from r1run.bench.profile import find_for_target

    profile = find_for_target(home, target, opts.rpc) if opts.profile else None
    return Prepared(install, caps, target, tune(target, opts, caps, planner, profile))
