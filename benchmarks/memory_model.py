"""The memory model against the real llama.cpp: estimate vs actual per buffer, and the error.

    python benchmarks/memory_model.py [--llama-bin DIR] [--ctx 512,4096,16384] [--no-r1]

Part 1 runs `llama-completion -c N -n 1 -lv 4` (one thread) on SmolLM2-135M and the generated
DeepSeek-R1-shaped (both KV layouts, one split in 3 shards) and MoE test models, and compares
r1run's model / KV / compute figures with the buffer lines llama.cpp prints.
Part 2 writes header-only DeepSeek-R1 671B files (real shapes, sparse data) and compares with
the projection of `llama-fit-params`, which reserves the real graph without allocating it.
Models come from the test cache (~/.cache/r1run-tests, made by the test suite or on demand).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import _paths  # noqa: F401  (puts tests/ on sys.path for testkit)
from testkit.cache import NoLlamaBuild, cache_root
from testkit.cache import llama_bin as cached_llama_bin

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from memcheck import estimate, run_llama  # noqa: E402  (the tests' measuring stick)

MiB = 1 << 20


def _models(llama_bin: Path) -> list[tuple[str, Path]]:
    from testkit import make_deepseek, make_moe

    dest = cache_root() / "models-gen"
    out = []
    smol = cache_root() / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if smol.is_file():
        out.append(("SmolLM2-135M Q4_1", smol))
    out.append(("R1-tiny original Q4_K_M", make_deepseek(dest, kv_layout="original", llama_bin=llama_bin).path))
    out.append(("R1-tiny MLA Q4_K_M", make_deepseek(dest, kv_layout="mla", llama_bin=llama_bin).path))
    out.append(("R1-tiny original IQ1_S 3 shards",
                make_deepseek(dest, kv_layout="original", quant="IQ1_S", shards=3, llama_bin=llama_bin).path))
    out.append(("MoE-tiny Q4_K_M", make_moe(dest, llama_bin=llama_bin).path))
    return out


def _err(e: float, r: float) -> str:
    return f"{e / MiB:9.2f} {r / MiB:9.2f} {100 * (e - r) / r:+6.1f}%" if r else f"{e / MiB:9.2f} {'-':>9} {'':>7}"


def part1(llama_bin: Path, contexts: list[int]) -> float:
    from r1run.gguf import read_model
    from r1run.hardware import detect_cpu
    from r1run.planner import memory as mem

    simd = detect_cpu().simd
    print("Part 1: llama-completion b11434, CPU, flash attention auto (on), f16 KV cache, ubatch 512")
    head = f"{'model':32} {'ctx':>6} | {'model MiB est/real err':>27} | {'KV MiB est/real err':>27} | " \
           f"{'compute MiB est/real err':>27} | {'total err':>8}"
    print(head)
    print("-" * len(head))
    worst = 0.0
    for label, path in _models(llama_bin):
        info = read_model(path)
        for ctx in contexts:
            real = run_llama(llama_bin / "llama-completion", path, ctx)
            est = estimate(info, mem.ContextSpec(ctx=ctx), simd)
            total = 100 * (est.total_reported - real.total) / real.total
            for e, r in ((est.weights.reported, real.model), (est.kv.total, real.kv), (est.compute.total, real.compute)):
                worst = max(worst, abs(e - r) / r * 100)
            print(f"{label:32} {ctx:6} | {_err(est.weights.reported, real.model)} | {_err(est.kv.total, real.kv)} | "
                  f"{_err(est.compute.total, real.compute)} | {total:+7.1f}%", flush=True)
    print(f"worst buffer error: {worst:.1f}%")
    return worst


def part2(llama_bin: Path) -> None:
    import re

    from test_planner_memory import _write_r1_header_only  # the test's own writer

    from r1run import proc
    from r1run.gguf import read_model
    from r1run.planner import memory as mem

    print("\nPart 2: DeepSeek-R1 671B shapes (header-only files) vs llama-fit-params' projection (MiB)")
    print(f"{'layout':9} {'ctx':>6} {'fa':>3} | {'KV est/real err':>27} | {'compute est/real err':>27} | phase")
    with tempfile.TemporaryDirectory(prefix="r1run-bench-") as tmp:
        for layout in ("original", "mla"):
            path = _write_r1_header_only(Path(tmp) / layout, layout)
            info = read_model(path)
            for ctx, fa in ((512, "on"), (4096, "on"), (16384, "on"), (4096, "off"), (16384, "off")):
                res = proc.run([llama_bin / "llama-fit-params", "-m", path, "-c", str(ctx), "-fa", fa, "-lv", "4"],
                               timeout=120)
                m = re.search(r"- Host\s*\|\s*(\d+) = (\d+) \+\s*(\d+) \+\s*(\d+)", res.stderr)
                if not m:
                    print(f"{layout:9} {ctx:6} {fa:>3} | llama-fit-params printed no breakdown")
                    continue
                est = estimate(info, mem.ContextSpec(ctx=ctx, flash_attn=fa == "on"))
                print(f"{layout:9} {ctx:6} {fa:>3} | {_err(est.kv.total, int(m[3]) * MiB)} | "
                      f"{_err(est.compute.total, int(m[4]) * MiB)} | {est.compute.phase}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-bin")
    ap.add_argument("--ctx", default="512,4096,16384")
    ap.add_argument("--no-r1", action="store_true", help="skip part 2")
    a = ap.parse_args()
    try:
        llama_bin = cached_llama_bin(a.llama_bin)
    except NoLlamaBuild as e:
        sys.exit(str(e))
    part1(llama_bin, [int(c) for c in a.ctx.split(",")])
    if not a.no_r1:
        part2(llama_bin)


if __name__ == "__main__":
    main()
