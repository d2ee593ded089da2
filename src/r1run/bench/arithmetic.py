"""How fast this CPU computes a model streamed from RAM, measured with the engine's own kernels.

The speed model (planner.speed) times a CPU token as the slower (cube-norm) of its reads at the RAM's bandwidth
and its arithmetic. Fitted on published runs, one thread does about 44 G active parameters a second; but
published thread sweeps give 20-60 G with the core, its clock and the quant type's kernel, and a thread of a VM
can do far less: here one thread computed 13.6 G parameters/s of Q4_1 on a model in its caches, 7.2 G on one
from RAM (its loads stall its arithmetic: a thread's own reads, not the machine's bandwidth, set its pace), and a
second thread gave 1.86x. So on this machine r1run measures it, once per build and quant type:

- a small llama model (gguf.synth: 103 M parameters, 57-110 MB once quantized, more than a core's caches), written
  with seeded random weights and quantized by the build's `llama-quantize` to the plan's type;
- `llama-bench -p 0 -n 32 -r 3` on it at 1 thread and at 2 (the run's threads, at most 2: more would meet the RAM's
  bandwidth, which the model counts apart; the second thread's speed-up is carried along its line);
- less the per-layer costs the model counts anyway: seconds per byte (and per parameter) for one thread, and how
  much faster those threads were than one (`CpuArithmetic`). Per byte, because a thread whose reads stall its
  arithmetic pays for bytes: a model's mix of types (SmolLM2's Q8_0 output beside its Q4_1 layers) costs what it
  weighs.

Types llama-quantize makes only with an importance matrix (IQ1_S, IQ2_XXS...) are measured as Q4_K_M and keep
the model's fitted i-quant factor. The result is cached in R1RUN_HOME/cache/arithmetic.json by the programs'
paths and times, the type and the threads; a failed probe is cached too (the plan says why it fell back).

A probe that shared the CPUs is not this CPU's speed: seen here, a 2-thread run at a third of the 1-thread one
while tests ran beside it. So r1run counts the CPU time that other programs (and, on a VM, other guests: steal)
used during the probe (r1run.cpuload); above its limit the result is used but said, and measured again next
time, up to cpuload.SETTLE_PROBES probes, keeping the quietest.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from r1run import cpuload, proc
from r1run.errors import ToolMissing
from r1run.fsutil import write_atomic
from r1run.gguf import synth
from r1run.perf import bench as perf_bench
from r1run.planner import speed

N_LAYER = synth.N_LAYER
PROBE_PARAMS = synth.PARAMS
MAX_THREADS = 2   # more would meet the RAM's bandwidth (counted apart); the speed-up of a second thread is carried
                  # along its line to more (CpuArithmetic.speedup_at)
GEN_TOKENS = 32
REPETITIONS = 3
# llama-quantize refuses these without an importance matrix (tools/quantize: "please use an importance matrix")
NEEDS_IMATRIX = frozenset({"IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "Q2_K_S"})
STAND_IN = "Q4_K_M"
CACHE_VERSION = 2


def probe_type(file_type: str | None) -> str:
    """The type to quantize the probe to for a model of `file_type` (general.file_type's name)."""
    name = (file_type or "").upper()
    if not name or name in NEEDS_IMATRIX or " " in name:  # "all F32 (guessed)": a mix llama.cpp cannot name
        return STAND_IN
    return name


def from_speeds(tps_one: float, tps_many: float, threads: int, quant: str, *, file_type: str | None,
                params: speed.Params, probe_bytes: int) -> speed.CpuArithmetic:
    """Seconds per parameter and per byte for one thread, and the threads' speed-up, from the probe's two decode
    speeds and its file's size (pure).

    A probe token's time is its arithmetic with its reads plus the per-layer costs the speed model counts anyway
    (its output layer over 259 tokens is 0.3 M parameters, 0.3%, and left in): those are taken out so they are
    not counted twice."""
    def layers_s(t: int) -> float:
        return N_LAYER * (params.cpu_layer_s + params.cpu_thread_layer_s * t)

    one = max(1.0 / tps_one - layers_s(1), 0.05 / tps_one)
    param_s, byte_s = one / PROBE_PARAMS, one / probe_bytes
    many = max(1.0 / tps_many - layers_s(threads), 0.05 / tps_many)
    speedup = min(max(one / many, 1.0), float(threads)) if threads > 1 else 1.0
    return speed.CpuArithmetic(param_s=param_s, threads=threads, speedup=speedup, quant=quant,
                               covers_type=quant == (file_type or "").upper(), byte_s=byte_s)


class ProbeFailed(Exception):
    """A step of the probe failed; its message is one line saying which and why."""


def _last_line(res: proc.Completed) -> str:
    lines = [ln.strip() for ln in (res.stderr + "\n" + res.stdout).splitlines() if ln.strip()]
    return lines[-1][:200] if lines else f"exit {res.returncode}, no output"


def run_probe(bench: Path, quantize: Path, quant: str, threads: int, folder: Path) -> tuple[float, float, int]:
    """Decode tokens/s of the probe model quantized to `quant`, at 1 thread and at `threads` (medians), and the
    quantized file's bytes."""
    model, res = synth.quantized(quantize, folder, quant)
    if res.returncode != 0 or not model.is_file():
        raise ProbeFailed(f"llama-quantize could not make {quant}: {_last_line(res)}")
    counts = "1" if threads <= 1 else f"1,{threads}"
    res = proc.run([bench, "-m", model, "-p", "0", "-n", str(GEN_TOKENS), "-r", str(REPETITIONS), "-t", counts,
                    "-o", "csv"], timeout=300)
    rows = perf_bench.parse_csv(res.stdout)
    speeds: dict[int, list[float]] = {}
    for row in rows:
        try:
            speeds.setdefault(int(row["n_threads"]), []).append(float(row["avg_ts"]))
        except (KeyError, ValueError):
            continue
    if res.returncode != 0 or 1 not in speeds or max(threads, 1) not in speeds:
        raise ProbeFailed(f"llama-bench gave no decode speed: {_last_line(res)}")
    return statistics.median(speeds[1]), statistics.median(speeds[max(threads, 1)]), model.stat().st_size


def _key(bench: Path, quantize: Path, quant: str, threads: int) -> str:
    def stamp(p: Path) -> str:
        try:
            return f"{p.resolve()}@{p.stat().st_mtime_ns}"
        except OSError:
            return str(p)
    return f"v{CACHE_VERSION} {stamp(bench)} {stamp(quantize)} {quant} t{threads}"


def measured(cache_dir: Path, bench: Path | None, quantize: Path | None, file_type: str | None, threads: int,
             *, on_status: Callable[[str], None] | None = None,
             params: speed.Params | None = None) -> speed.CpuArithmetic | None:
    """This CPU's arithmetic for a model of `file_type` run on `threads` threads: cached, else probed (a few
    seconds, once). None when the build lacks llama-bench or llama-quantize, or the probe failed (cached too, so
    a broken build is not probed on every plan)."""
    if bench is None or quantize is None:
        return None
    quant = probe_type(file_type)
    threads = max(1, min(threads, MAX_THREADS))
    path = cache_dir / "arithmetic.json"
    key = _key(bench, quantize, quant, threads)
    try:
        cache = json.loads(path.read_text())
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    hit = cache.get(key)
    covers = quant == (file_type or "").upper()
    earlier: dict | None = None  # a result measured on a busy machine, measured again now
    if isinstance(hit, dict):
        if hit.get("failed"):
            return None
        try:
            cached = speed.CpuArithmetic(**{**hit["result"], "covers_type": covers})
        except (KeyError, TypeError):
            cached = None
        if cached is not None and cpuload.settled(hit):
            return cached
        earlier = hit if cached is not None else None
    if on_status is not None:
        on_status(f"measuring this CPU's {quant} arithmetic with {bench.name} " + (
            f"again (other programs used {float(earlier['busy_share']):.0%} of the CPUs the last time)"
            if earlier else "(once per build and type)"))
    entry: dict = {"measured_at": time.time()}
    result: speed.CpuArithmetic | None
    try:
        before = cpuload.CpuClock.now()
        with tempfile.TemporaryDirectory(prefix="r1run-arith-") as tmp:
            one, many, size = run_probe(bench, quantize, quant, threads, Path(tmp))
        share = cpuload.others_share(before, cpuload.CpuClock.now())
        fresh = from_speeds(one, many, threads, quant, file_type=file_type, params=params or speed.shipped().params,
                            probe_bytes=size)
        entry = cpuload.after_probe(  # the quieter measurement stands
            earlier, {**entry, "result": asdict(fresh), "tps": {"1": one, str(threads): many}, "probe_bytes": size},
            share, lambda old, new: float(old["busy_share"]) < new["busy_share"])
        result = speed.CpuArithmetic(**{**entry["result"], "covers_type": covers})
        if share > cpuload.busy_limit() and on_status is not None:
            on_status(f"other programs used {share:.0%} of the CPUs while r1run measured: "
                      + ("it measures again next time" if not cpuload.settled(entry) else
                         f"keeping the quietest of {entry['probes']} measurements"))
    except (ProbeFailed, ToolMissing, OSError) as exc:
        if earlier is not None:  # measured before, on a busy machine: that stands, and is not measured again
            entry = {**earlier, "probes": cpuload.SETTLE_PROBES}
            result = speed.CpuArithmetic(**{**earlier["result"], "covers_type": covers})
        else:
            result = None
            entry["failed"] = str(exc)
    cache[key] = entry
    try:
        write_atomic(path, json.dumps(cache, indent=1))
    except OSError:
        pass  # a cache: an unwritable home only costs the next plan a probe
    return result


def for_capabilities(home, caps, file_type: str | None, threads: int,
                     on_status: Callable[[str], None] | None = None) -> speed.CpuArithmetic | None:
    """`measured` with the programs of an engine's build (llama.probe.Capabilities), cached in `home`."""
    return measured(home.cache, caps.path("bench"), caps.path("quantize"), file_type, threads, on_status=on_status)


def finder(home, on_status: Callable[[str], None] | None = None
           ) -> Callable[[object, str | None, int], speed.CpuArithmetic | None]:
    """What `run.plan.plan` calls to learn this CPU's arithmetic (its ArithmeticFinder), saying when it measures."""
    return lambda caps, file_type, threads: for_capabilities(home, caps, file_type, threads, on_status)
