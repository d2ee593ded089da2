"""r1run's fixed cost before llama.cpp starts: from `exec r1run chat MODEL -p ...` to llama.cpp's exec.

Target: at most 0.35 s median on the project's 2-core machine. That is all r1run adds to a chat
(afterwards llama.cpp runs on its own; r1run only reads its output), and for DeepSeek-R1, whose load
takes minutes, it is noise; this keeps it from growing unnoticed.

How: `--llama-bin` points at a folder of shims, one per llama.cpp program, each a two-line shell
script that appends the time it started to a file and `exec`s the real program. The cost is that
time less the moment just before r1run was started. The probe cache is warmed first (one run), as
on any machine after the first chat.

    python benchmarks/fixed_cost.py [MODEL.gguf] [--runs 9] [--llama-bin DIR]

Also prints `r1run --help` (target: under 0.3 s median) and the interpreter's own floor. Python runs with
its bytecode cache as users have it (PYTHONDONTWRITEBYTECODE, set by some shells and tools, is dropped).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _paths  # noqa: F401  (puts tests/ on sys.path for testkit)
from testkit.cache import NoLlamaBuild, cache_root
from testkit.cache import llama_bin as default_llama_bin

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def shim_folder(real: Path, dest: Path, stamps: Path) -> Path:
    """A folder of shims that log their start time to `stamps`, then exec the real programs."""
    dest.mkdir(parents=True, exist_ok=True)
    for program in real.iterdir():
        if program.is_file() and os.access(program, os.X_OK):
            shim = dest / program.name
            shim.write_text(f'#!/bin/sh\ndate +%s.%N >> "{stamps}"\nexec "{program}" "$@"\n', encoding="utf-8")
            shim.chmod(0o755)
    return dest


def chat_cost(model: Path, bin_dir: Path, stamps: Path, home: Path) -> float:
    """Seconds from starting `r1run chat` to the start of the llama.cpp program it runs."""
    stamps.write_text("", encoding="utf-8")
    env = {**ENV, "R1RUN_HOME": str(home), "R1RUN_LLAMA_BIN": str(bin_dir)}
    argv = [sys.executable, "-m", "r1run", "chat", str(model), "-p", "Hi", "-n", "1", "-t", "1", "--no-profile"]
    t0 = time.time()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    starts = [float(x) for x in stamps.read_text(encoding="utf-8").split()]
    return starts[-1] - t0  # the last program started is the chat itself (probes run only on a cold cache)


def wall(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=ENV)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", type=Path, default=cache_root() / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--llama-bin", type=Path, default=None)
    a = ap.parse_args()
    try:
        real = default_llama_bin(a.llama_bin)
    except NoLlamaBuild as exc:
        sys.exit(str(exc))
    with tempfile.TemporaryDirectory() as tmp:
        stamps = Path(tmp) / "starts.txt"
        bin_dir = shim_folder(real, Path(tmp) / "bin", stamps)
        home = Path(tmp) / "home"
        chat_cost(a.model, bin_dir, stamps, home)  # warms the probe and model-summary caches
        costs = [chat_cost(a.model, bin_dir, stamps, home) for _ in range(a.runs)]
    wall([sys.executable, "-m", "r1run", "--help"])  # writes the bytecode cache if it was off before
    helps = [wall([sys.executable, "-m", "r1run", "--help"]) for _ in range(a.runs)]
    floor = [wall([sys.executable, "-c", "pass"]) for _ in range(a.runs)]
    print(f"model: {a.model.name}; llama.cpp: {real}; n={a.runs}")
    for name, xs in (("r1run chat: start -> llama.cpp exec", costs), ("r1run --help", helps),
                     ("python -c pass (interpreter floor)", floor)):
        print(f"{name:40s} median {statistics.median(xs) * 1000:6.0f} ms  "
              f"min {min(xs) * 1000:6.0f} ms  max {max(xs) * 1000:6.0f} ms")


if __name__ == "__main__":
    main()
