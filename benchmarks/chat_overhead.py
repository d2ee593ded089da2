"""Wall time of a one-shot `r1run chat --prompt` vs the same llama.cpp command run directly.

Target: r1run costs at most 5% more. The llama.cpp command is the one r1run prints with --dry-run,
so both runs do the same work; runs alternate to share the machine's noise. Prints medians and the ratio
for each answer length: r1run's cost is a fixed start-up (Python, option parsing, planning), so the
ratio shrinks as answers grow (DeepSeek-R1's answers, with their reasoning, run to hundreds of tokens).

    python benchmarks/chat_overhead.py [MODEL.gguf] [--runs 5] [--n-predict 128,512]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from r1run.testing.cache import cache_root


def _default_model() -> Path:
    cache = cache_root()
    found = sorted((cache / "models-gen").glob("deepseek2-bench-original-*/Q4_K_M/*.gguf"))
    return found[0] if found else cache / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", type=Path, default=None)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--n-predict", default="128,512", help="comma list of answer lengths")
    a = ap.parse_args()
    model = a.model or _default_model()
    for n in (int(x) for x in a.n_predict.split(",")):
        measure(model, n, a.runs)


def measure(model: Path, n_predict: int, runs: int) -> None:
    # Threads fixed so both sides do the same work (r1run's default adapts to the machine's load).
    r1run = [sys.executable, "-m", "r1run", "chat", str(model), "-p", "Tell me about the sea.", "-n", str(n_predict),
             "--seed", "1", "--threads", "2", "--", "--ignore-eos"]
    dry = subprocess.run([*r1run[:-2], "--dry-run", *r1run[-2:]], capture_output=True, text=True, check=True)
    direct = shlex.split(dry.stdout)
    print(f"\n-n {n_predict}; model: {model}\nllama.cpp: {shlex.join(direct)[:160]}...")

    def timed(argv: list[str]) -> float:
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        return time.perf_counter() - t0

    timed(direct)  # warm the page cache and r1run's caches
    timed(r1run)
    d, r = [], []
    for _ in range(runs):
        d.append(timed(direct))
        r.append(timed(r1run))
    md, mr = statistics.median(d), statistics.median(r)
    print(f"direct llama.cpp: median {md:.3f} s  (runs: {', '.join(f'{x:.2f}' for x in d)})")
    print(f"r1run chat:       median {mr:.3f} s  (runs: {', '.join(f'{x:.2f}' for x in r)})")
    print(f"overhead: {mr - md:+.3f} s = {100 * (mr / md - 1):+.1f}% (target <= +5%)")


if __name__ == "__main__":
    main()
