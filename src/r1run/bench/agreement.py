"""Do two engines compute the same function on a model? Perplexity over the same text, from each engine's own
`llama-imatrix` (both engines build it; it prints the perplexity of the text it reads as it goes).

A faster engine is only faster if it computes the same thing: ik_llama.cpp 0.1.5 on this machine gives
SmolLM2's Q4_1 file a perplexity of 228 where llama.cpp gives 46.5 (on Q8_0 of the same weights both give
47, within 0.4%; greedy answers part after ten tokens). `r1run bench --engine llama.cpp,ik_llama.cpp` runs
this check beside the speeds and `--engine auto` never chooses an engine that failed it.

    argv(program, model, text, out)  -> the command (pure)
    parse(lines)                     -> Perplexity from "Final estimate: PPL = 46.4990 +/- 6.93428"
    measure(...)                     -> runs it
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from r1run import proc

TOLERANCE = 0.01        # relative: the "within 1%"
CTX = 256               # tokens per chunk: the shipped text (about 1,000 tokens) makes 3 or 4 chunks
_FINAL = re.compile(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)")


@dataclass(frozen=True)
class Perplexity:
    value: float
    error: float
    line: str           # the line it was read from, quoted in reports


def text_path() -> Path:
    return Path(str(resources.files("r1run.bench").joinpath("data/agreement.txt")))


def argv(program: Path, model: Path, text: Path, out: Path, *, threads: int | None = None) -> list[str]:
    args = [str(program), "-m", str(model), "-f", str(text), "-c", str(CTX), "-o", str(out)]
    return args + (["-t", str(threads)] if threads else [])


def parse(lines: list[str]) -> Perplexity | None:
    for line in reversed(lines):
        m = _FINAL.search(line)
        if m:
            return Perplexity(float(m[1]), float(m[2]), line.strip())
    return None


def measure(program: Path, model: Path, log_path: Path, *, threads: int | None = None) -> Perplexity | None:
    """The model's perplexity over r1run's text with this engine (its output in `log_path`); None when the
    program printed none. Ctrl-C stops it as any other run."""
    with tempfile.TemporaryDirectory(prefix="r1run-ppl-") as tmp:  # ik writes its logs where it runs
        _, tail = proc.stream(argv(program, model, text_path(), Path(tmp) / "imatrix.out", threads=threads),
                              log_path=log_path, cwd=Path(tmp), keep=80)
    return parse(tail)


def agree(a: Perplexity, b: Perplexity, tolerance: float = TOLERANCE) -> bool:
    return abs(a.value - b.value) <= tolerance * min(a.value, b.value)
