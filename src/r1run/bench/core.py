"""The `r1run bench` core: options in, a BenchReport out (runs llama-bench; never prints).

    report = core.run_sweep(core.BenchRequest(model="model.gguf", threads="1,2", flash_attn="on,off"))
    record = core.to_record(report, home)       # the saved / --json form (schema r1run.bench/2)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from r1run.bench import arithmetic, profile, runner, store, sweep
from r1run.bench import bound as bnd
from r1run.bench.runner import Progress, Row
from r1run.errors import BadInput, ModelNotLoaded, ToolMissing
from r1run.home import Home, log_path_for, log_stamp
from r1run.llama.discover import LlamaInstall
from r1run.llama.probe import Capabilities
from r1run.planner import placement as pl
from r1run.planner.machine import MachineDescription, MachineSpec
from r1run.planner.placement import RunPlan
from r1run.run.config import Request
from r1run.run.prepare import Prepared, fall_back
from r1run.run.prepare import prepare as run_prepare
from r1run.run.target import Target

DEFAULT_LABEL = "r1run default"
PROFILE_LABEL = "tuned profile"
LLAMA_LABEL = "llama.cpp defaults"


@dataclass(frozen=True)
class BenchRequest:
    model: str | None = None
    quant: str | None = None
    gpu_layers: str | None = None  # "0,10" / "auto" / "auto,0"
    threads: str | None = None
    ctx: int | None = None
    cache_type_k: str | None = None
    flash_attn: str | None = None
    batch: str | None = None
    ubatch: str | None = None
    n_prompt: int = 128
    n_gen: int = 32
    repetitions: int = 3
    bandwidth: str | None = None
    rpc: tuple[str, ...] = ()
    llama_bin: Path | None = None
    llama_defaults: bool = False  # also measure llama-bench with none of r1run's flags
    engine: str = "auto"  # r1run.run.engine


@dataclass
class Setup:
    """What a benchmark needs before running anything: llama.cpp, the model, r1run's default and the machine."""

    home: Home
    install: LlamaInstall
    caps: Capabilities
    program: Path
    target: Target
    default: sweep.Config
    default_plan: RunPlan | None
    machine: MachineSpec
    bandwidth_source: str
    engine_note: str = ""
    prepared: Prepared | None = None  # what it came from (the fallback after ik_llama.cpp fails to load reads it)


@dataclass
class BenchReport:
    setup: Setup
    rows: list[Row]
    bounds: list[bnd.Bound]
    fastest: int | None  # index of the row with the highest median generation speed
    build: str | None
    n_prompt: int
    n_gen: int
    repetitions: int
    logs: list[Path] = field(default_factory=list)
    started: float = 0.0
    seconds: float = 0.0

    def labelled(self, label: str) -> Row | None:
        return next((r for r in self.rows if label in r.labels), None)


def validate(o: BenchRequest) -> dict[str, list]:
    """The swept knobs from the user's lists (raises BadInput on an empty or unknown value)."""
    for name, value, low in (("--prompt-tokens", o.n_prompt, 0), ("--gen-tokens", o.n_gen, 0),
                             ("--repetitions", o.repetitions, 1)):
        if value < low:
            raise BadInput(f"{name} must be at least {low} (got {value})")
    if o.n_prompt == 0 and o.n_gen == 0:
        raise BadInput("--prompt-tokens and --gen-tokens are both 0: nothing to measure")
    if o.ctx is not None and o.ctx <= 0:
        raise BadInput(f"--ctx-size must be positive (got {o.ctx})")
    lists = {
        "gpu_layers": sweep.parse_ints(o.gpu_layers, "--gpu-layers", allow_auto=True),
        "threads": sweep.parse_ints(o.threads, "--threads", minimum=1, allow_auto=True),
        "flash_attn": sweep.parse_flash_attn(o.flash_attn),
        "cache_type_k": sweep.parse_cache_types(o.cache_type_k, "--cache-type-k"),
        "batch": sweep.parse_ints(o.batch, "--batch-size", minimum=1),
        "ubatch": sweep.parse_ints(o.ubatch, "--ubatch-size", minimum=1),
    }
    return {k: v for k, v in lists.items() if v is not None}


def prepare(o: BenchRequest) -> Setup:
    """Find llama-bench and the model; the configuration `r1run chat` would use is r1run's default row."""
    return _setup(o, run_prepare(Home.from_env(), _request(o), o.llama_bin))


def _request(o: BenchRequest) -> Request:
    return Request(model=o.model, quant=o.quant, ctx=o.ctx, rpc=o.rpc,
                   machine=MachineDescription(bandwidth=o.bandwidth), profile=False, engine=o.engine)


def _setup(o: BenchRequest, run: Prepared) -> Setup:
    program = run.caps.path("bench")
    if program is None:
        raise ToolMissing(f"this {run.install.engine} ({run.install.origin}) has no llama-bench",
                          "run `r1run build` (it builds llama-bench) or point --llama-bin at a folder holding it")
    default = sweep.from_run_spec(run.config.spec, run.target.info.hparams.block_count)
    source = ("--bandwidth" if o.bandwidth else
              "measured (numpy copy on every CPU thread; R1RUN_HOME/cache/bandwidth.json)")
    plan = run.config.plan if run.machine.devices or o.rpc else None
    return Setup(Home.from_env(), run.install, run.caps, program, run.target, default, plan, run.machine, source,
                 run.engine_note, run)


def invocations(setup: Setup, lists: dict[str, list], *, profile: sweep.Config | None = None,
                llama_defaults: bool = False) -> list[sweep.Invocation]:
    """The sweep around r1run's default, then the default itself (and the profile) if not already in it."""
    d = setup.default
    knobs = {k: v for k, v in lists.items() if k != "gpu_layers"}
    if "threads" in knobs:
        knobs["threads"] = sweep.unique([d.threads if v == "auto" else v for v in knobs["threads"]])
    invs: list[sweep.Invocation] = []
    layers = lists.get("gpu_layers")
    if layers is None:
        if knobs:
            invs.append(sweep.expand(d, knobs))
    else:
        numbers = [n for n in layers if n != "auto"]
        if numbers:
            base = replace(d, gpu_layers=None, n_cpu_moe=None, overrides=None, tensor_split=None)
            invs.append(sweep.expand(base, {**knobs, "gpu_layers": numbers}))
        if "auto" in layers:
            invs.append(sweep.expand(d, knobs))
    measured = {c for inv in invs for c in inv.configs()}
    if d not in measured:
        invs.append(sweep.Invocation(d, label=DEFAULT_LABEL))
    if profile is not None and profile not in measured and profile != d:
        invs.append(sweep.Invocation(profile, label=PROFILE_LABEL))
    if llama_defaults:
        invs.append(sweep.Invocation(sweep.Config(), label=LLAMA_LABEL))
    return invs


def measure(setup: Setup, invs: list[sweep.Invocation], *, n_prompt: int, n_gen: int, repetitions: int,
            rpc: tuple[str, ...] = (), on_progress: Callable[[int, int, Progress], None] | None = None,
            ) -> tuple[list[Row], str | None, list[Path]]:
    """Run every invocation; rows in order, labels merged where two invocations measured the same configuration."""

    rows: list[Row] = []
    logs: list[Path] = []
    build = None
    stamp = log_stamp()  # one time for the run's logs, numbered
    for i, inv in enumerate(invs, 1):
        log = log_path_for(setup.home.ensure(setup.home.logs), "bench", detail=str(i), stamp=stamp)
        argv = sweep.argv(setup.program, Path(setup.target.path), inv, n_prompt=n_prompt, n_gen=n_gen,
                          repetitions=repetitions, rpc=rpc, **bench_format(setup.caps))
        cb = (lambda p, i=i: on_progress(i, len(invs), p)) if on_progress else None
        result = runner.run_llama_bench(inv, argv, log, cb, output=setup.caps.bench_output or "jsonl")
        logs.append(log)
        build = build or result.build
        for row in result.rows:
            if inv.label is None and row.config == setup.default:
                row.labels.append(DEFAULT_LABEL)
            rows.append(row)
    return rows, build, logs


def bench_format(caps: Capabilities) -> dict:
    """How this llama-bench is asked for results: JSON lines with progress, or CSV where it has no jsonl
    (ik_llama.cpp, whose -fa also takes 0|1 only)."""
    output = caps.bench_output or "jsonl"
    return {"output": output, "progress": output == "jsonl", "fa_numeric": caps.bench_flash_attn_numeric}


def run_sweep(o: BenchRequest, on_progress: Callable[[int, int, Progress], None] | None = None,
        on_setup: Callable[[Setup, list[sweep.Invocation]], None] | None = None,
        on_status: Callable[[str], None] | None = None) -> BenchReport:
    lists = validate(o)
    setup = prepare(o)
    prof = _profile(setup, o.rpc)
    invs = invocations(setup, lists, profile=prof.config if prof else None, llama_defaults=o.llama_defaults)
    if on_setup is not None:
        on_setup(setup, invs)
    started = time.time()
    try:
        rows, build, logs = measure(setup, invs, n_prompt=o.n_prompt, n_gen=o.n_gen, repetitions=o.repetitions,
                                    rpc=o.rpc, on_progress=on_progress)
    except runner.BenchFailed as exc:  # ik_llama.cpp could not load the file: llama.cpp measures it (auto)
        if exc.not_loaded is None or setup.prepared is None:
            raise
        error = ModelNotLoaded(exc.message, exc.hint, reason=exc.not_loaded)
        setup = _setup(o, fall_back(setup.home, _request(o), setup.prepared, error))
        prof = _profile(setup, o.rpc)
        invs = invocations(setup, lists, profile=prof.config if prof else None, llama_defaults=o.llama_defaults)
        if on_setup is not None:
            on_setup(setup, invs)
        rows, build, logs = measure(setup, invs, n_prompt=o.n_prompt, n_gen=o.n_gen, repetitions=o.repetitions,
                                    rpc=o.rpc, on_progress=on_progress)
    if prof is not None:
        for row in rows:
            if row.config == prof.config and PROFILE_LABEL not in row.labels:
                row.labels.append(PROFILE_LABEL)
    return finish(setup, rows, build, logs, o.n_prompt, o.n_gen, o.repetitions, started, on_status)


def finish(setup: Setup, rows: list[Row], build, logs, n_prompt, n_gen, repetitions, started,
           on_status: Callable[[str], None] | None = None) -> BenchReport:
    """The report: each row's bound and expected speed; `on_status` hears when this CPU's arithmetic is measured
    for them (once per build and type, then cached)."""
    caps = pl.Caps.from_capabilities(setup.caps)
    file_type = setup.target.info.file_type

    def measured(threads: int | None):  # this CPU's arithmetic at a row's threads (probed once, then cached)
        return arithmetic.for_capabilities(setup.home, setup.caps, file_type, threads, on_status) if threads else None

    bounds = [bnd.for_config(setup.target.info, setup.machine, caps, r.config, setup.default, setup.default_plan,
                             setup.install.engine, measured(r.config.threads)) for r in rows]
    speeds = [(r.gen.median if r.gen else -1.0) for r in rows]
    fastest = max(range(len(rows)), key=lambda i: speeds[i]) if rows and max(speeds) > 0 else None
    return BenchReport(setup, rows, bounds, fastest, build, n_prompt, n_gen, repetitions, logs, started,
                       time.time() - started)


def _profile(setup: Setup, rpc: tuple[str, ...]):
    return profile.find_for_target(setup.home, setup.target, rpc)


# --- the saved / JSON form -----------------------------------------------------------------------

def to_record(report: BenchReport, *, sha256: str | None = None, kind: str = "sweep") -> dict:
    s = report.setup
    info = s.target.info
    identity = store.machine_identity(())
    return {
        "schema": store.SCHEMA,
        "kind": kind,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(report.started or time.time())),
        "took_s": round(report.seconds, 1),
        "machine": {**identity, "fingerprint": store.fingerprint(identity),
                    "ram_bandwidth_bytes_per_s": s.machine.cpu_bandwidth, "bandwidth_source": s.bandwidth_source},
        "llama_cpp": {"build": report.build, "origin": s.install.origin, "llama_bench": str(s.program),
                      "engine": s.install.engine},
        "model": {"name": s.target.name, "path": str(s.target.path), "sha256": sha256,
                  "bytes": sum(sh.file_bytes for sh in info.shards), "architecture": info.architecture,
                  "file_type": info.file_type},
        "test": {"n_prompt": report.n_prompt, "n_gen": report.n_gen, "repetitions": report.repetitions},
        "default": s.default.to_dict(),
        "rows": [_row_record(report, i) for i in range(len(report.rows))],
        "fastest": report.fastest,
        "logs": [str(p) for p in report.logs],
    }


def _row_record(report: BenchReport, i: int) -> dict:
    row, b = report.rows[i], report.bounds[i]
    prog = report.setup.program
    inv = sweep.Invocation(row.config)
    flags = sweep.argv(prog, Path(report.setup.target.path), inv, n_prompt=report.n_prompt, n_gen=report.n_gen,
                       repetitions=report.repetitions, **{**bench_format(report.setup.caps), "progress": False})[1:]
    return {
        "labels": row.labels,
        "config": row.config.to_dict(),
        "flags": flags,
        "prompt": row.prompt.to_dict() if row.prompt else None,
        "gen": row.gen.to_dict() if row.gen else None,
        "bound_tps": round(b.tps, 3) if b.tps else None,
        "bound_percent": round(b.percent(row.gen.median if row.gen else None) or 0, 2) if b.tps and row.gen else None,
        "bytes_per_token": b.bytes_per_token,
        "expected_tps": round(b.expected_tps, 3) if b.expected_tps else None,
        "fastest": i == report.fastest,
    }
