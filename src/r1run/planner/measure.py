"""Ask the real llama.cpp how it would fit a model, to show `llama-fit-params` beside r1run.

`llama-fit-params` prints the flags on stdout, e.g. `-c 4096 -ngl 23 -ot "blk\\.30\\.ffn_(up|down|gate)_(ch|)exps=CPU"`.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from r1run import proc


@dataclass(frozen=True)
class FitAnswer:
    ok: bool
    flags: list[str]            # what llama.cpp would pass itself, e.g. ["-c", "4096", "-ngl", "23", ...]
    message: str                # its last line when it could not fit


def fit_params(program: Path, model: Path, args: list[str], *, timeout: float = 120) -> FitAnswer:
    """Run `llama-fit-params -m MODEL ARGS` and return the flags it prints."""
    res = proc.run([str(program), "-m", str(model), *args], timeout=timeout)
    lines = [ln for ln in res.stdout.strip().splitlines() if ln.strip()]
    if res.returncode == 0 and lines:
        try:
            return FitAnswer(True, shlex.split(lines[-1]), "")
        except ValueError:
            return FitAnswer(True, lines[-1].split(), "")
    last = (res.stderr.strip().splitlines() or ["no output"])[-1]
    return FitAnswer(False, [], re.sub(r"^[\d.]+ [IWE] ", "", last))
