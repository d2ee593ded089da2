"""Are r1run's default settings the fastest? An exhaustive llama-bench sweep against r1run's default (issue 7).

    python benchmarks/bench_defaults.py [--llama-bin DIR] [--models r1,smollm2] [-p 64] [-n 32] [-r 3]
                                        [--rounds 2] [--json-out FILE]

For the generated ~1.1 GB DeepSeek-R1-shaped model (benchmarks/make_models.py) and SmolLM2-135M:
1. one llama-bench run over every combination of threads 1,2 x flash attention on,off x K cache
   f16,q8_0,q4_0 x ubatch 256,512 (every other setting pinned to what `r1run chat` uses);
2. head to head, alternating so drift hits all three alike (--rounds times): the fastest configuration,
   r1run's default (exactly what `r1run chat` runs) and llama-bench with none of r1run's flags;
3. prints the sweep, the best, the default's generation speed and its ratio to the best (target >= 97%),
   llama.cpp's defaults with the run-to-run spread, and decode speed as a fraction of the bandwidth bound.

Medians of the repetitions throughout. The machine is shared: the spread column says how much to trust.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import _paths  # noqa: F401  (puts tests/ on sys.path for testkit)
from r1run.bench import core, sweep
from r1run.bench.runner import Row, Stat
from testkit.cache import NoLlamaBuild, cache_root
from testkit.cache import llama_bin as cached_llama_bin

SWEEP = {"threads": [1, 2], "flash_attn": ["on", "off"], "cache_type_k": ["f16", "q8_0", "q4_0"],
         "ubatch": [256, 512]}


def _models(which: list[str], llama_bin: Path) -> list[tuple[str, Path]]:
    out = []
    for name in which:
        if name == "r1":
            from testkit.models import make_deepseek

            m = make_deepseek(cache_root() / "models-gen", preset="bench", kv_layout="original", quant="Q4_K_M",
                              llama_bin=llama_bin)
            out.append(("DeepSeek-R1-shaped bench (Q4_K_M)", m.path))
        elif name == "smollm2":
            path = cache_root() / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
            if not path.is_file():
                sys.exit(f"{path} missing: run the test suite once (fixture smollm2) to fetch it")
            out.append(("SmolLM2-135M-Instruct (Q4_1)", path))
        else:
            sys.exit(f"unknown model {name!r}: use r1 and/or smollm2")
    return out


def _pooled(rows: list[Row], metric: str) -> Stat | None:
    """Median and spread over every repetition of every round (each Stat keeps its range, not its samples)."""
    stats = [getattr(r, metric) for r in rows if getattr(r, metric) is not None]
    if not stats:
        return None
    medians = [s.median for s in stats]
    return Stat(median=statistics.median(medians), mean=statistics.fmean(s.mean for s in stats),
                stddev=statistics.pstdev(medians) if len(medians) > 1 else stats[0].stddev,
                low=min(s.low for s in stats), high=max(s.high for s in stats), n=sum(s.n for s in stats),
                tokens=stats[0].tokens)


def bench_model(label: str, path: Path, llama_bin: Path, a) -> dict:
    print(f"\n=== {label}: {path} ({path.stat().st_size / 2**20:.0f} MiB)", flush=True)
    t0 = time.time()
    setup = core.prepare(core.BenchRequest(model=str(path), llama_bin=llama_bin, n_prompt=a.p, n_gen=a.n,
                                      repetitions=a.r))
    d = setup.default
    print(f"r1run default (what `r1run chat` runs): {d.describe()}")
    inv = sweep.expand(d, SWEEP)
    print(f"sweep: {len(inv.configs())} configurations in one llama-bench run", flush=True)
    rows, build, _ = core.measure(setup, [inv], n_prompt=a.p, n_gen=a.n, repetitions=a.r)
    report = core.finish(setup, rows, build, [], a.p, a.n, a.r, t0)
    ordered = sorted(range(len(rows)), key=lambda i: -(rows[i].gen.median if rows[i].gen else 0))
    print(f"\n{'t':>2} {'fa':>3} {'ctk':>5} {'ub':>4} | {'pp t/s (med ± sd)':>18} | {'tg t/s (med ± sd)':>17} | bound")
    for i in ordered:
        r, b = rows[i], report.bounds[i]
        c = r.config
        pct = b.percent(r.gen.median if r.gen else None)
        print(f"{c.threads:>2} {c.flash_attn:>3} {c.cache_type_k:>5} {c.ubatch:>4} | "
              f"{r.prompt.median:9.1f} ± {r.prompt.stddev:6.1f} | {r.gen.median:8.2f} ± {r.gen.stddev:6.2f} | "
              f"{pct:4.1f}%" + ("   <- r1run default" if r.config == d else ""))
    best = rows[ordered[0]].config
    print(f"sweep best: {best.describe()}", flush=True)

    # head to head: best, default, llama.cpp defaults, alternating
    contenders = {"best": best, "default": d, "llama": sweep.Config()}
    got: dict[str, list[Row]] = {k: [] for k in contenders}
    for _ in range(a.rounds):
        for key, cfg in contenders.items():
            if key == "best" and cfg == d:
                continue
            rs, _b, _l = core.measure(setup, [sweep.Invocation(cfg)], n_prompt=a.p, n_gen=a.n, repetitions=a.r)
            got[key].extend(rs)
    if best == d:
        got["best"] = got["default"]
    pooled = {k: _pooled(v, "gen") for k, v in got.items()}
    bound = report.bounds[ordered[0]]
    pb, pd, pl = pooled["best"], pooled["default"], pooled["llama"]
    ratio = pd.median / pb.median
    spread = max(pd.spread, pl.spread)
    print(f"\nhead to head ({a.rounds} rounds x {a.r} repetitions, tg{a.n}):")
    for key, name in (("best", "sweep best"), ("default", "r1run default"), ("llama", "llama.cpp defaults")):
        s = pooled[key]
        print(f"  {name:<19} {s.median:8.2f} t/s  (range {s.low:.2f}-{s.high:.2f}, spread ±{s.spread:.2f})  "
              f"{100 * s.median / bound.tps:5.1f}% of the bound")
    print(f"r1run default / best: {100 * ratio:.1f}% (target >= 97%)")
    print(f"r1run default - llama.cpp defaults: {pd.median - pl.median:+.2f} t/s (spread ±{spread:.2f}; "
          f"{'ok' if pd.median >= pl.median - spread else 'SLOWER than the spread'})")
    reads = ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in bound.bytes_per_token.items() if v)
    print(f"bandwidth bound: {bound.tps:.1f} t/s ({reads} per token at {setup.machine.cpu_bandwidth / 1e9:.1f} GB/s "
          f"measured RAM bandwidth)")
    print(f"took {time.time() - t0:.0f} s", flush=True)
    return {
        "model": label, "path": str(path), "default": d.to_dict(), "best": best.to_dict(),
        "sweep": [{"config": rows[i].config.to_dict(), "prompt": rows[i].prompt.to_dict(),
                   "gen": rows[i].gen.to_dict(), "bound_percent": report.bounds[i].percent(rows[i].gen.median)}
                  for i in ordered],
        "head_to_head": {k: v.to_dict() for k, v in pooled.items()},
        "ratio_default_to_best": ratio, "bound_tps": bound.tps,
        "bound_fraction": {k: pooled[k].median / bound.tps for k in pooled},
        "ram_bandwidth": setup.machine.cpu_bandwidth, "seconds": time.time() - t0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-bin", type=Path)
    ap.add_argument("--models", default="r1,smollm2")
    ap.add_argument("-p", type=int, default=64, help="prompt tokens")
    ap.add_argument("-n", type=int, default=32, help="generated tokens")
    ap.add_argument("-r", type=int, default=3, help="repetitions per test")
    ap.add_argument("--rounds", type=int, default=2, help="head-to-head rounds")
    ap.add_argument("--json-out", type=Path)
    a = ap.parse_args()
    try:
        llama_bin = cached_llama_bin(a.llama_bin)
    except NoLlamaBuild as e:
        sys.exit(str(e))
    os.environ.setdefault("R1RUN_HOME", str(cache_root() / "bench-home"))
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    results = [bench_model(label, path, llama_bin, a) for label, path in _models(a.models.split(","), llama_bin)]
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    if a.json_out:
        a.json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
