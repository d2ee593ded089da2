"""`r1run bench --tune`: find the fastest configuration by coordinate descent, not by trying everything.

Starting from r1run's default (what `chat` runs), each knob is swept on its own with the others held at
the best found so far, in the order that matters most on a CPU: threads, flash attention, K cache
type, then ubatch (prompt speed only), then the GPU placement when a GPU or RPC worker exists. A
knob moves off its current value only when the winner beats it by more than the run-to-run noise, so
the profile does not chase noise. Every sweep includes the current value, measured in the same
llama-bench run as its rivals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from r1run.bench import core, profile, store, sweep
from r1run.bench.runner import BenchFailed, Progress, Row
from r1run.hardware import detect_cpu

MIN_GAIN = 0.01  # a change must win by at least 1% (and by more than the spread of both)
# bytes per element of each K cache type, to keep a profile from using more memory than r1run planned
CACHE_BITS = {"f32": 32, "f16": 16, "bf16": 16, "q8_0": 8.5, "q5_1": 6, "q5_0": 5.5, "q4_1": 5, "iq4_nl": 4.5,
              "q4_0": 4.5}
TUNED_CACHE_TYPES = ("f16", "q8_0", "q4_0")
UBATCHES = (128, 256, 512, 1024)


Knob = int | str | None  # a value of one sweep.Config field (threads 8, flash_attn "on", n_cpu_moe None...)


@dataclass
class Step:
    knob: str  # a field of sweep.Config
    tried: list[Knob]
    rows: list[Row]
    chosen: Knob
    reason: str
    failed: list[str] = field(default_factory=list)


@dataclass
class TuneResult:
    start: sweep.Config
    best: sweep.Config
    best_row: Row | None
    start_row: Row | None
    steps: list[Step]
    report: core.BenchReport  # every row measured, for rendering and --save


def thread_candidates(physical: int, logical: int, current: int | None) -> list[int]:
    """Half the cores, all physical cores, every logical core (and the current value)."""
    values = {max(1, physical // 2), physical, logical}
    if current:
        values.add(current)
    return sorted(values)


def cache_candidates(current: str | None) -> list[str]:
    """Types no larger than the current one: a profile must never need more memory than r1run planned."""
    cur = current or "f16"
    limit = CACHE_BITS.get(cur, 16)
    return sorted({cur, *[t for t in TUNED_CACHE_TYPES if CACHE_BITS[t] <= limit]}, key=lambda t: -CACHE_BITS[t])


def placement_candidates(cfg: sweep.Config, n_layers: int) -> list[sweep.Config]:
    """Around r1run's placement: more routed experts on the CPU (safe), one fewer (may not fit); or +-layers."""
    out = []
    if cfg.n_cpu_moe is not None:
        for k in (cfg.n_cpu_moe - 1, cfg.n_cpu_moe + 1, cfg.n_cpu_moe + 2):
            if 0 <= k <= n_layers:
                out.append(replace(cfg, n_cpu_moe=k))
    elif cfg.gpu_layers is not None:
        for n in (cfg.gpu_layers - 2, cfg.gpu_layers - 1, cfg.gpu_layers + 1):
            if 0 <= n <= n_layers + 1:
                out.append(replace(cfg, gpu_layers=n))
    return out


def better(a: Row, b: Row, metric: str) -> bool:
    """True when `a` beats `b` on `metric` by more than the noise of both."""
    sa, sb = getattr(a, metric), getattr(b, metric)
    if sa is None:
        return False
    if sb is None:
        return True
    margin = max(MIN_GAIN * sb.median, sa.spread + sb.spread)
    return sa.median > sb.median + margin


def search(o: core.BenchRequest, on_progress: Callable[[str, int, int, Progress], None] | None = None,
        on_setup: Callable[[core.Setup], None] | None = None, on_status: Callable[[str], None] | None = None
           ) -> TuneResult:
    """Tune and return the search; the caller stores the profile (`save_profile`)."""
    core.validate(o)
    setup = core.prepare(o)
    if on_setup is not None:
        on_setup(setup)
    started = time.time()
    all_rows: list[Row] = []
    logs = []
    build = None
    steps: list[Step] = []
    cpu = _cpu()
    current = setup.default
    current_row: Row | None = None

    def sweep_knob(knob: str, values: list, metric: str = "gen") -> None:
        nonlocal build
        values = sweep.unique([getattr(current, knob), *values])
        if len(values) == 1:
            steps.append(Step(knob, values, [], values[0], "the only candidate"))
            return
        inv = sweep.expand(current, {knob: values})
        cb = (lambda i, n, p: on_progress(knob, i, n, p)) if on_progress else None
        rows, b, lg = core.measure(setup, [inv], n_prompt=o.n_prompt, n_gen=o.n_gen, repetitions=o.repetitions,
                                   rpc=o.rpc, on_progress=cb)
        build = build or b
        logs.extend(lg)
        all_rows.extend(rows)
        _choose(knob, values, rows, metric)

    def _choose(knob, values, rows, metric, failed=()):
        nonlocal current, current_row
        here = next((r for r in rows if r.config == current), None)
        if here is not None:
            current_row = here
        best = max((r for r in rows if getattr(r, metric) is not None), key=lambda r: getattr(r, metric).median,
                   default=None)
        if best is not None and best.config != current and (current_row is None or better(best, current_row, metric)):
            reason = f"{_fmt(best, metric)} vs {_fmt(current_row, metric)}"
            current, current_row = best.config, best
        else:
            reason = "no value beat the current one by more than the noise"
        steps.append(Step(knob, values, rows, getattr(current, knob), reason, list(failed)))

    sweep_knob("threads", thread_candidates(cpu.physical_cores, cpu.logical_cores, current.threads))
    sweep_knob("flash_attn", ["on", "off"])
    sweep_knob("cache_type_k", cache_candidates(current.cache_type_k))
    smaller = [u for u in UBATCHES if u < o.n_prompt]
    if smaller:  # ubatch only splits prompts longer than itself: with -p 128 there is nothing to tune
        sweep_knob("ubatch", smaller, metric="prompt")
    if setup.machine.devices or o.rpc:
        _tune_placement(setup, o, current, all_rows, logs, steps, on_progress, _choose)

    for row in all_rows:
        if row.config == setup.default and core.DEFAULT_LABEL not in row.labels:
            row.labels.append(core.DEFAULT_LABEL)
    report = core.finish(setup, all_rows, build, logs, o.n_prompt, o.n_gen, o.repetitions, started, on_status)
    start_row = next((r for r in all_rows if r.config == setup.default), None)
    best_row = next((r for r in reversed(all_rows) if r.config == current), None)
    if best_row is not None and "tuned" not in best_row.labels:
        best_row.labels.append("tuned")
    return TuneResult(setup.default, current, best_row, start_row, steps, report)


def _tune_placement(setup, o, current, all_rows, logs, steps, on_progress, choose) -> None:
    """Each candidate placement in its own llama-bench run: one that runs out of memory must not stop the rest."""
    n_layers = setup.target.info.hparams.block_count
    rows: list[Row] = []
    failed: list[str] = []
    for cfg in [current, *placement_candidates(current, n_layers)]:
        cb = (lambda i, n, p: on_progress("placement", i, n, p)) if on_progress else None
        try:
            got, _b, lg = core.measure(setup, [sweep.Invocation(cfg)], n_prompt=o.n_prompt, n_gen=o.n_gen,
                                       repetitions=o.repetitions, rpc=o.rpc, on_progress=cb)
        except BenchFailed as exc:
            failed.append(f"{cfg.describe()}: {exc.message}")
            continue
        logs.extend(lg)
        rows.extend(got)
    all_rows.extend(rows)
    choose("gpu_layers" if current.n_cpu_moe is None else "n_cpu_moe", [r.config.describe() for r in rows], rows,
           "gen", failed)


def _fmt(row: Row | None, metric: str) -> str:
    stat = getattr(row, metric) if row is not None else None
    return "-" if stat is None else f"{stat.median:.2f} t/s"


def _cpu():
    return detect_cpu()


def profile_record(result: TuneResult, sha256: str, identity: dict, fingerprint: str) -> dict:
    s = result.report.setup
    info = s.target.info

    def figures(row: Row | None) -> dict | None:
        if row is None:
            return None
        return {"prompt": row.prompt.to_dict() if row.prompt else None, "gen": row.gen.to_dict() if row.gen else None}

    return {
        "schema": profile.SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {"name": s.target.name, "path": str(s.target.path), "sha256": sha256,
                  "bytes": sum(sh.file_bytes for sh in info.shards)},
        "machine": {"fingerprint": fingerprint, **identity},
        "llama_cpp": {"build": result.report.build, "origin": s.install.origin},
        "settings": result.best.to_dict(),
        "placement_tuned": any(st.knob in ("gpu_layers", "n_cpu_moe") for st in result.steps),
        "measured": figures(result.best_row),
        "default": {"settings": result.start.to_dict(), **(figures(result.start_row) or {})},
        "test": {"n_prompt": result.report.n_prompt, "n_gen": result.report.n_gen,
                 "repetitions": result.report.repetitions},
        "steps": [{"knob": st.knob, "tried": [str(v) for v in st.tried], "chosen": str(st.chosen),
                   "reason": st.reason, "failed": st.failed} for st in result.steps],
    }


def save_profile(result: TuneResult, rpc: tuple[str, ...] = ()):
    """Hash the model (cached), store the profile; returns (path, record)."""

    s = result.report.setup
    files = [sh.path for sh in s.target.info.shards]

    sha = store.model_sha256(s.home, [Path(f) for f in files])
    identity = store.machine_identity(rpc)
    fp = store.fingerprint(identity)
    record = profile_record(result, sha, identity, fp)
    return profile.save(s.home, record, sha, fp), record
