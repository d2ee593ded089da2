"""llama.cpp against ik_llama.cpp, side by side, each in r1run's default configuration (issue 12).

    python benchmarks/engines.py [--layout original|mla] [--model FILE] [-p 128] [-n 32] [--rounds 3]
                                 [--threads 2] [--sweep] [--json-out FILE]

--sweep first runs a sweep of mainline llama.cpp (flash attention, K/V cache types, micro-batch; the threads
fixed) and adds its fastest configurations (by generation, and by prompt when another) to the rounds as
"llama.cpp best": the issue's target is ik_llama.cpp's default against mainline's best.

Uses the test cache's two builds (`llama-home`: llama.cpp b11434, `ik-home`: ik_llama.cpp from the
ik-llama-cpp-python 0.1.5 sdist; the test suite builds both) and the generated ~1.1 GB DeepSeek-R1-shaped
model (benchmarks/make_models.py, Q4_K_M). For each engine, the llama-bench configuration is the one
`r1run bench MODEL --engine E` calls "r1run default" (what `r1run chat --engine E` runs: for ik_llama.cpp
`-fa 1 -rtr 1` with its own MLA / fused-MoE defaults; for llama.cpp `-fa auto`), with the same thread count.
Rounds alternate the engines (the order flips every round) so drift on this shared machine hits both alike;
each round is one llama-bench run (-r 1) per engine. Prints medians over the rounds with the spread (half
the range), the ratios ik / llama.cpp, and generation as a fraction of r1run's bandwidth bound.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import _paths  # noqa: F401  (puts tests/ on sys.path for testkit)
from r1run.bench import bound as bnd
from r1run.bench import core, sweep
from r1run.planner import placement as pl
from testkit.cache import cache_root, register_builds

ENGINES = ("llama.cpp", "ik_llama.cpp")


def _model(args: argparse.Namespace, llama_bin: Path) -> Path:
    if args.model:
        return args.model
    from testkit.models import make_deepseek

    return make_deepseek(cache_root() / "models-gen", preset="bench", kv_layout=args.layout, quant="Q4_K_M",
                         llama_bin=llama_bin).path


def _fmt(samples: list[float]) -> str:
    return f"{statistics.median(samples):7.1f} ± {(max(samples) - min(samples)) / 2:5.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layout", default="original", choices=["original", "mla"])
    ap.add_argument("--model", type=Path, help="a GGUF file instead of the generated R1-shaped model")
    ap.add_argument("-p", "--prompt-tokens", type=int, default=128)
    ap.add_argument("-n", "--gen-tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache-type", help="K and V cache type for both engines instead of r1run's defaults (mainline "
                    "b11434 refuses an MLA-layout file with K q4_0 and V f16: 'model does not support different K and V "
                    "cache types')")
    ap.add_argument("--sweep", action="store_true", help="also measure mainline's best configuration (a sweep first)")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="r1run-engines-") as scratch:
        run(args, Path(scratch))


def run(args: argparse.Namespace, home: Path) -> None:
    """Both builds registered in the scratch R1RUN_HOME `home`, then the rounds."""
    os.environ["R1RUN_HOME"] = str(home)
    os.environ.pop("R1RUN_LLAMA_BIN", None)
    built = register_builds(home)
    if set(built) != set(ENGINES):
        sys.exit(f"need both builds in {cache_root()} (llama-home, ik-home); found {sorted(built) or 'none'}: "
                 "run the test suite once (fixtures llama_home and ik_home)")
    model = _model(args, built["llama.cpp"])

    setups, configs = {}, {}
    for engine in ENGINES:
        s = core.prepare(core.BenchRequest(model=str(model), engine=engine))
        cfg = replace(s.default, threads=args.threads)
        if args.cache_type:
            cfg = replace(cfg, cache_type_k=args.cache_type, cache_type_v=args.cache_type)
        setups[engine], configs[engine] = s, cfg
    info = setups["llama.cpp"].target.info
    print(f"model: {model} ({info.architecture}, {sum(sh.file_bytes for sh in info.shards) / 2**30:.2f} GiB); "
          f"pp{args.prompt_tokens} / tg{args.gen_tokens}, {args.rounds} rounds, {args.threads} threads; "
          f"load {os.getloadavg()[0]:.2f} at start")

    contenders = {e: (e, configs[e]) for e in ENGINES}
    if args.sweep:
        for name, cfg in _mainline_best(args, setups["llama.cpp"], configs["llama.cpp"], info.kv_layout).items():
            contenders[name] = ("llama.cpp", cfg)
    names = tuple(contenders)
    prompt: dict[str, list[float]] = {e: [] for e in names}
    gen: dict[str, list[float]] = {e: [] for e in names}
    for r in range(args.rounds):
        for engine in (names if r % 2 == 0 else names[::-1]):
            which, cfg = contenders[engine]
            inv = sweep.Invocation(cfg, label=engine)
            rows, _build, _logs = core.measure(setups[which], [inv], n_prompt=args.prompt_tokens,
                                               n_gen=args.gen_tokens, repetitions=1)
            (row,) = rows
            assert row.prompt is not None and row.gen is not None
            prompt[engine].append(row.prompt.median)
            gen[engine].append(row.gen.median)
            print(f"  round {r + 1} {engine:13} pp {row.prompt.median:7.1f}  tg {row.gen.median:6.1f}", flush=True)

    print(f"\n{'engine':22} {'prompt t/s':>15} {'gen t/s':>15} {'% of bound':>10}  configuration")
    result = {"model": str(model), "layout": args.layout, "rounds": args.rounds, "threads": args.threads,
              "engines": {}}
    for engine in names:
        which, cfg = contenders[engine]
        s = setups[which]
        b = bnd.for_config(s.target.info, s.machine, pl.Caps.from_capabilities(s.caps), cfg, s.default,
                           s.default_plan, which)
        tg = statistics.median(gen[engine])
        pct = f"{100 * tg / b.tps:9.0f}%" if b.tps else "         ?"
        flags = sweep.argv(s.program, model, sweep.Invocation(cfg), n_prompt=args.prompt_tokens,
                           n_gen=args.gen_tokens, repetitions=1, **{**core.bench_format(s.caps), "progress": False})
        shown = " ".join(flags[flags.index("-o") + 2:])
        print(f"{engine:22} {_fmt(prompt[engine]):>15} {_fmt(gen[engine]):>15} {pct}  {shown}")
        result["engines"][engine] = {"prompt": prompt[engine], "gen": gen[engine], "bound_tps": b.tps,
                                     "flags": flags[1:]}
    pp_ratio = statistics.median(prompt["ik_llama.cpp"]) / statistics.median(prompt["llama.cpp"])
    tg_ratio = statistics.median(gen["ik_llama.cpp"]) / statistics.median(gen["llama.cpp"])
    print(f"\nik_llama.cpp / llama.cpp (r1run defaults): prompt {pp_ratio:.2f}x, generation {tg_ratio:.2f}x")
    best = [n for n in names if n.startswith("llama.cpp best")]
    if best:
        top_pp = max(statistics.median(prompt[n]) for n in best + ["llama.cpp"])
        top_tg = max(statistics.median(gen[n]) for n in best + ["llama.cpp"])
        print(f"ik_llama.cpp / mainline's best: prompt {statistics.median(prompt['ik_llama.cpp']) / top_pp:.2f}x, "
              f"generation {statistics.median(gen['ik_llama.cpp']) / top_tg:.2f}x (issue 12 target: >= 1.4x and "
              ">= 1.25x)")
    result |= {"prompt_ratio": pp_ratio, "gen_ratio": tg_ratio}
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2))


def _mainline_best(args, setup, default, layout: str) -> dict[str, sweep.Config]:
    """Mainline's fastest configurations from a sweep (one llama-bench run per cache type, 2 repetitions): by
    generation, and by prompt when that is another. An MLA-layout file needs K and V of one type, and a
    quantized V needs flash attention."""
    invs = []
    for ct in ("f16", "q8_0", "q4_0"):
        base = replace(default, cache_type_k=ct, cache_type_v=ct if layout == "mla" else "f16")
        fa = ["on", "off"] if ct == "f16" or layout != "mla" else ["on"]
        invs.append(sweep.expand(base, {"flash_attn": fa, "ubatch": [256, 512]}))
    rows, _build, _logs = core.measure(setup, invs, n_prompt=args.prompt_tokens, n_gen=args.gen_tokens,
                                       repetitions=2)
    done = [r for r in rows if r.prompt is not None and r.gen is not None]
    print(f"mainline sweep: {len(done)} configurations ({sum(len(i.configs()) for i in invs)} asked)")
    for r in sorted(done, key=lambda r: -r.gen.median)[:5]:
        print(f"  pp {r.prompt.median:7.1f}  tg {r.gen.median:6.1f}  {r.config.describe()}")
    by_gen = max(done, key=lambda r: r.gen.median).config
    by_pp = max(done, key=lambda r: r.prompt.median).config
    out = {"llama.cpp best (gen)": by_gen}
    if by_pp != by_gen:
        out["llama.cpp best (prompt)"] = by_pp
    return out


if __name__ == "__main__":
    main()
