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
_CHUNK = re.compile(r"\[(\d+)\](\d+\.\d+),")  # "[1]200.4467,[2]230.5611,": the estimate over the first k chunks


@dataclass(frozen=True)
class Perplexity:
    value: float
    error: float | None  # None: no final line (the estimate over the chunks that were printed)
    line: str           # the line it was read from, quoted in reports
    chunks: tuple[float, ...] = ()  # the running estimate after each chunk




def text_path() -> Path:
    return Path(str(resources.files("r1run.bench").joinpath("data/agreement.txt")))


def argv(program: Path, model: Path, text: Path, out: Path, *, threads: int | None = None,
         run_flags: tuple[str, ...] = ()) -> list[str]:
    """`run_flags`: how the run being compared places and computes the model (`llama.args.run_flags`: -ngl, -ot,
    -fa, -ctk, -rtr...), so the check computes what the run would; then this check's own text and context."""
    args = [str(program), "-m", str(model), *run_flags, "-f", str(text), "-o", str(out)]
    args += [] if "-c" in run_flags else ["-c", str(CTX)]  # run_flags give it at this check's size, or nothing
    return args + (["-t", str(threads)] if threads and "-t" not in run_flags else [])


def parse(lines: list[str]) -> Perplexity | None:
    """The final estimate, with the running one after each chunk. Without the final line (llama.cpp b11434 now and
    then exits 0 before its last output is written) the estimate over the chunks printed, said so in `line`."""
    chunks: dict[int, float] = {}
    for line in lines:
        chunks.update((int(k), float(v)) for k, v in _CHUNK.findall(line))
    running = tuple(chunks[k] for k in range(1, len(chunks) + 1) if k in chunks)
    for line in reversed(lines):
        m = _FINAL.search(line)
        if m:
            return Perplexity(float(m[1]), float(m[2]), line.strip(), running)
    if not running:
        return None
    return Perplexity(running[-1], None, f"[{len(running)}]{running[-1]} (the estimate over the first "
                      f"{len(running)} chunks: no final line was written)", running)


def measure(program: Path, model: Path, log_path: Path, *, threads: int | None = None,
            run_flags: tuple[str, ...] = ()) -> Perplexity | None:
    """The model's perplexity over r1run's text with this engine (its output in `log_path`); None when the
    program printed none. Ctrl-C stops it as any other run."""
    with tempfile.TemporaryDirectory(prefix="r1run-ppl-") as tmp:  # ik writes its logs where it runs
        _, tail = proc.stream(argv(program, model, text_path(), Path(tmp) / "imatrix.out", threads=threads,
                                   run_flags=run_flags),
                              log_path=log_path, cwd=Path(tmp), keep=80)
    return parse(tail)


def agree(a: Perplexity, b: Perplexity, tolerance: float = TOLERANCE) -> bool:
    """Within `tolerance` over the same text: the final estimates, or the running ones after the chunks both
    printed when one has no final line."""
    x, y = a.value, b.value
    if (a.error is None or b.error is None) and a.chunks and b.chunks:
        k = min(len(a.chunks), len(b.chunks))
        x, y = a.chunks[k - 1], b.chunks[k - 1]
    return abs(x - y) <= tolerance * min(x, y)
