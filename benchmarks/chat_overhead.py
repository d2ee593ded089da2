"""Wall time of a one-shot `r1run chat --prompt` vs the same llama.cpp command run directly.

Target: r1run costs at most 5% more. The llama.cpp command is the one r1run prints with --dry-run,
so both runs do the same work; runs alternate to share the machine's noise. Two r1run figures:

- "repeat": the command line ran before, so r1run starts llama.cpp from its memo while it decides
  (r1run.chat.early). This is every run after the first of a given command line, whatever the prompt.
- "first": the memo is deleted before each run, so r1run decides before llama.cpp starts (the first
  run of a command line, or one that used a GPU or RPC worker, which is never remembered).

r1run's cost is a fixed start-up, so the ratio shrinks as answers grow (DeepSeek-R1's answers, with
their reasoning, run to hundreds of tokens, and its load takes minutes, not seconds).

    python benchmarks/chat_overhead.py [MODEL.gguf] [--runs 7] [--n-predict 128,512]

Set R1RUN_LLAMA_BIN to the llama.cpp to use and R1RUN_HOME to a scratch folder.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import _paths  # noqa: F401  (puts tests/ on sys.path for testkit)

from r1run.home import Home
from testkit.cache import cache_root


def _default_model() -> Path:
    cache = cache_root()
    found = sorted((cache / "models-gen").glob("deepseek2-bench-original-*/Q4_K_M/*.gguf"))
    return found[0] if found else cache / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", type=Path, default=None)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--n-predict", default="128,512", help="comma list of answer lengths")
    a = ap.parse_args()
    model = a.model or _default_model()
    for n in (int(x) for x in a.n_predict.split(",")):
        measure(model, n, a.runs)


def measure(model: Path, n_predict: int, runs: int) -> None:
    # Threads fixed so the three sides do the same work (r1run's default adapts to the machine's load).
    def r1run(prompt: str) -> list[str]:
        return [sys.executable, "-m", "r1run", "chat", str(model), "-p", prompt, "-n", str(n_predict), "--seed", "1",
                "--threads", "2", "--", "--ignore-eos"]

    def direct(prompt: str) -> list[str]:
        argv = r1run(prompt)
        dry = subprocess.run([*argv[:-2], "--dry-run", *argv[-2:]], capture_output=True, text=True, check=True)
        return shlex.split(dry.stdout)

    def timed(argv: list[str]) -> float:
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        return time.perf_counter() - t0

    memos = Home.from_env().cache / "launch"

    def first(prompt: str) -> float:
        shutil.rmtree(memos, ignore_errors=True)
        return timed(r1run(prompt))

    print(f"\n-n {n_predict}; model: {model}\nllama.cpp: {shlex.join(direct('x'))[:160]}...")
    timed(direct("Warm up."))  # the page cache and r1run's caches
    first("Warm up.")
    d, rep, fst = [], [], []
    for i in range(runs):
        # Each round asks something else, and "repeat" runs from the memo the last round's "first" left
        # with another prompt: the memo serves any prompt.
        prompt = f"Tell me about the sea, part {i + 1}."
        d.append(timed(direct(prompt)))
        rep.append(timed(r1run(prompt)))
        fst.append(first(prompt))
    md = statistics.median(d)
    print(f"direct llama.cpp:     median {md:.3f} s  (runs: {', '.join(f'{x:.2f}' for x in d)})")
    for name, xs in (("r1run chat, repeat", rep), ("r1run chat, first", fst)):
        m = statistics.median(xs)
        # Also the median of each round's own ratio: rounds run back to back, so it cancels slow drift.
        paired = statistics.median(x / y for x, y in zip(xs, d))
        print(f"{name + ':':<21} median {m:.3f} s  (runs: {', '.join(f'{x:.2f}' for x in xs)})  "
              f"overhead {m - md:+.3f} s = {100 * (m / md - 1):+.1f}%; paired {100 * (paired - 1):+.1f}%")
    print("target: <= +5%")


if __name__ == "__main__":
    main()
