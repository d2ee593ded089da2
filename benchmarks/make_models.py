"""Make the benchmark-size DeepSeek-R1-shaped model (or any preset) and print its path and size.

    python benchmarks/make_models.py [--preset bench] [--layout original|mla] [--quant Q4_K_M]
                                     [--shards 1] [--llama-bin DIR] [--dest DIR]

Without --llama-bin it uses $R1RUN_LLAMA_BIN, else the test cache's build
(~/.cache/r1run-tests/llama-home, made by the test suite). Models are cached in --dest
(default ~/.cache/r1run-tests/models-gen), so a second run prints at once.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import _paths  # noqa: F401  (puts tests/ on sys.path for testkit)
from testkit.cache import NoLlamaBuild, cache_root
from testkit.cache import llama_bin as cached_llama_bin
from testkit.models import QUANTS, make_deepseek
from testkit.specs import DEEPSEEK_PRESETS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="bench", choices=sorted(DEEPSEEK_PRESETS))
    ap.add_argument("--layout", default="original", choices=["original", "mla"])
    ap.add_argument("--quant", default="Q4_K_M", choices=QUANTS)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--llama-bin", type=Path)
    ap.add_argument("--dest", type=Path, default=cache_root() / "models-gen")
    args = ap.parse_args()

    try:
        llama_bin = cached_llama_bin(args.llama_bin)
    except NoLlamaBuild as e:
        sys.exit(str(e))
    t0 = time.perf_counter()
    model = make_deepseek(args.dest, preset=args.preset, kv_layout=args.layout, quant=args.quant,
                          shards=args.shards, seed=args.seed, llama_bin=llama_bin)
    seconds = time.perf_counter() - t0
    d = model.spec.dims
    print(f"{model.spec.arch} {args.preset} {args.layout} {args.quant}: {d.n_layer} layers ({d.n_dense} dense), "
          f"n_embd {d.n_embd}, {d.n_expert} experts ({d.n_expert_used} used + {d.n_expert_shared} shared)")
    for p in model.paths:
        print(f"{p}  {p.stat().st_size / 2**20:.1f} MiB")
    print(f"total {model.size / 2**20:.1f} MiB ({model.size} bytes) in {seconds:.1f} s")


if __name__ == "__main__":
    main()
