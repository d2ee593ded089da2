"""How well r1run's expected speed predicts published runs (leave-one-out) and this machine (before calibrating).

    python benchmarks/speed_model.py            # the leave-one-out table over planner/data/published_runs.json
    python benchmarks/speed_model.py --write    # ...and store the full fit in planner/data/speed_model.json
    python benchmarks/speed_model.py --here     # r1run bench on SmolLM2 and the R1-shaped models (both KV
                                                # layouts): measured vs expected, with the shipped parameters
                                                # and this CPU's measured arithmetic; medians of --rounds 3
    python benchmarks/speed_model.py --plan-time  # `r1run plan deepseek-r1 --all-quants` offline, median of 5

Leave-one-out: the parameters are fitted without a run, then that run is predicted; the factor is
max(predicted/published, published/predicted). The issue's target: every run within 2x, the median within
1.5x. --here uses the test cache's llama.cpp build and models (run the test suite once first).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _paths  # noqa: F401  (puts tests/ on sys.path)
from r1run.planner import published_runs
from r1run.planner import speed as sp
from r1run.planner import speed_fit as fit

DATA = Path(__file__).resolve().parent.parent / "src" / "r1run" / "planner" / "data" / "speed_model.json"


def _label(c: fit.Case) -> str:
    r, m = c.run, c.run.machine
    gpus = " + ".join(f"{g.count}x {g.name}" if g.count > 1 else g.name for g in m.gpus)
    host = m.cpu or ("Apple" if m.unified else "?")
    where = gpus if m.unified else (f"{host} + {gpus}" if gpus else host)
    rpc = f", RPC x{m.rpc_hosts}" if m.rpc_hosts else ""
    return f"{where}{rpc}, {r.model} {r.quant}, {r.engine}"


def published() -> int:
    t0 = time.perf_counter()
    cases, skipped = fit.cases(published_runs.runs())
    params = fit.fit(cases)
    full = {c.run.id: sp.gen_tps(c.workload, params) or 0.0 for c in cases}
    checks = fit.leave_one_out(cases)
    median, worst, spread = fit.summary(checks)
    print(f"{'run':44} {'kind':7} {'published':>9} {'fit':>7} {'held out':>8} {'factor':>6}")
    for ch in checks:
        r = ch.case.run
        print(f"{r.id[:44]:44} {ch.case.workload.kind:7} {r.gen_tps:9.2f} {full[r.id]:7.2f} {ch.predicted:8.2f} "
              f"{ch.factor:6.2f}")
    within2 = sum(ch.factor <= 2 for ch in checks)
    print(f"\n{len(checks)} runs; leave-one-out factor: median {median:.2f}, worst {worst:.2f}, 80% within "
          f"{spread:.2f}; within 2x: {within2}/{len(checks)}")
    for why in skipped:
        print(f"skipped: {why}")
    print("fitted on all runs: " + ", ".join(f"{k}={v:.3g}" for k, v in params.to_dict().items()))
    print(f"({time.perf_counter() - t0:.1f} s)")
    if args.write:
        data = {
            "_what": "planner.speed's parameters fitted on data/published_runs.json by benchmarks/speed_model.py "
                     "--write (squared log error of generation speed, Nelder-Mead). leave_one_out: each run "
                     "predicted by a fit without it; spread: the factor that holds 80% of those predictions, "
                     "the range plan shows. prompt_ratio: published prompt / generation t/s by kind of run. "
                     "runs: what plan compares to find the closest published run.",
            "schema": 1,
            "params": {k: float(f"{v:.6g}") for k, v in params.to_dict().items()},
            "spread": round(spread, 3),
            "fitted_on": len(cases),
            "leave_one_out": {"median_factor": round(median, 3), "worst_factor": round(worst, 3),
                              "within_2x": within2},
            "prompt_ratio": fit.prompt_ratios(cases),
            "runs": [{"id": c.run.id, "label": _label(c), **sp.summary(c.workload), "gen_tps": c.run.gen_tps,
                      "prompt_tps": c.run.prompt_tps, "source": c.run.source} for c in cases],
        }
        DATA.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {DATA}")
    return 0


def here() -> int:
    """r1run bench on this machine's models: what was expected (shipped parameters, this CPU's arithmetic measured
    afresh each round, no calibration) and measured; medians over --rounds rounds, each in a fresh R1RUN_HOME."""
    from testkit.cache import cache_root, llama_bin  # noqa: PLC0415

    root = cache_root()
    models = [root / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"]
    models += sorted((root / "models-gen").glob("deepseek2-bench-*/Q4_K_M/*.gguf"))
    found: dict[str, list[tuple[float, float]]] = {}
    for r in range(args.rounds):
        env = {**os.environ, "R1RUN_HOME": tempfile.mkdtemp(prefix="r1run-speed-"),
               "R1RUN_LLAMA_BIN": str(llama_bin())}
        for m in models:
            if not m.is_file():
                print(f"missing {m}: run the test suite (SmolLM2) and benchmarks/make_models.py [--layout mla]")
                continue
            res = subprocess.run([sys.executable, "-m", "r1run", "bench", str(m), "--prompt-tokens", "64", "-n", "64",
                                  "-r", str(args.repetitions), "--json"], env=env, capture_output=True, text=True)
            if res.returncode != 0:
                print(f"{m.name}: bench failed: {res.stderr.strip().splitlines()[-1:]}")
                continue
            row = next(x for x in json.loads(res.stdout)["rows"] if "r1run default" in x["labels"])
            got, want = row["gen"]["median"], row["expected_tps"]
            found.setdefault(m.name, []).append((got, want))
            print(f"round {r + 1}: {m.name[:52]:52} measured {got:7.1f}  expected {want:7.1f}  {want / got:5.2f}")
    print(f"\n{'model':52} {'measured':>9} {'expected':>9} {'ratio':>6}   (medians of {args.rounds} rounds)")
    ratios = []
    for name, pairs in found.items():
        got, want = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
        ratios.append(want / got)
        print(f"{name[:52]:52} {got:9.1f} {want:9.1f} {want / got:6.2f}")
    if ratios:
        print(f"expected / measured: median {statistics.median(ratios):.2f}, worst "
              f"{max(max(ratios), 1 / min(ratios)):.2f} (target: within 1.25)")
    return 0


def plan_time() -> int:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "R1RUN_HOME": tempfile.mkdtemp(prefix="r1run-plan-")}
    times = []
    for _ in range(6):  # the first run measures RAM bandwidth once and caches it: not counted
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "r1run", "plan", "deepseek-r1", "--all-quants"], env=env,
                             capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if res.returncode != 0:
            print(res.stderr)
            return 1
    print(f"plan deepseek-r1 --all-quants, offline: median {statistics.median(times[1:]):.2f} s over 5 runs "
          f"(first, measuring RAM: {times[0]:.2f} s; target under 1 s)")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--here", action="store_true")
    ap.add_argument("--plan-time", action="store_true")
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="--here: rounds, each probing this CPU afresh")
    args = ap.parse_args()
    sys.exit(here() if args.here else plan_time() if args.plan_time else published())
