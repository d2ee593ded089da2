"""How often llama-completion loses its last output lines at exit, read as r1run reads it.

llama.cpp releases since April 2026 (llama.cpp#22273) never stop their logger at exit, so lines still queued
when a program ends are lost (llama.cpp#25504): the end of the answer and the timings. r1run patches the trees
it fetches (`r1run.llama.patches`, manifest `patches: ["log-flush-at-exit"]`). This counts the loss for each
llama-completion given: stdout a pipe read line by line, stderr a file, a short answer (the tiny R1-shaped
model, -n 8, so the exit comes soon after the last lines), idle and beside one CPU spinner.

    python benchmarks/log_loss.py [--runs 200] LLAMA_COMPLETION [LLAMA_COMPLETION...]

Default: the test build's llama-completion (patched when r1run built it). A run counts as lost when its stderr
lacks `common_perf_print`'s "total time" line, or its stdout lacks the text llama-completion ends with.
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import tempfile
from pathlib import Path

import _paths  # noqa: F401  (puts tests/ on sys.path for testkit)
from testkit.cache import cache_root, llama_bin


def _spin() -> None:
    while True:
        pass


def _model() -> Path:
    found = sorted((cache_root() / "models-gen").glob("deepseek2-tiny-original-*/Q4_K_M/*.gguf"))
    if not found:
        raise SystemExit("no tiny R1-shaped model in the test cache: run the test suite once")
    return found[0]


def lost(program: Path, model: Path, runs: int) -> int:
    n = 0
    for _ in range(runs):
        with tempfile.TemporaryFile() as err:
            child = subprocess.Popen([str(program), "-m", str(model), "-t", "2", "-c", "256", "-p", "Hello", "-n", "8",
                                      "-no-cnv", "--temp", "0", "--ignore-eos"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=err)
            assert child.stdout is not None
            out = b"".join(child.stdout)  # line by line, as r1run reads
            child.wait()
            err.seek(0)
            tail = err.read()
        # llama-completion's answer ends with the "\n\n" it writes before its timings
        if b"total time" not in tail or not out.endswith(b"\n\n"):
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("programs", nargs="*", type=Path)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    programs = args.programs or [llama_bin() / "llama-completion"]
    model = _model()
    print(f"model: {model.name}; {args.runs} runs per program and load; stdout a pipe, stderr a file")
    for spinners in (0, 1):
        hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(spinners)]
        for h in hogs:
            h.start()
        try:
            for program in programs:
                print(f"  {spinners} CPU spinner(s)  {program}: lost the end in {lost(program, model, args.runs)} "
                      f"of {args.runs}")
        finally:
            for h in hogs:
                h.terminate()


if __name__ == "__main__":
    main()
