"""Ask the real llama.cpp what it allocates, to check the memory model and to show `llama-fit-params` beside r1run.

Parses the `-lv 4` lines of a b11434 run (older prefixes in the patterns' alternatives):

    load_tensors:   CPU_Mapped model buffer size =    92.10 MiB
    load_tensors:   CPU_REPACK model buffer size =     5.20 MiB
    llama_kv_cache: size =   90.00 MiB (  4096 cells,  30 layers,  1/1 seqs), K (f16):   45.00 MiB, V (f16):   45.00 MiB
    sched_reserve:        CPU compute buffer size =   106.77 MiB

and the flags `llama-fit-params` prints on stdout, e.g. `-c 4096 -ngl 23 -ot "blk\\.30\\.ffn_(up|down|gate)_(ch|)exps=CPU"`.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from r1run import proc
from r1run.errors import R1runError

MiB = 1 << 20
_MODEL = re.compile(r"(?:llm_)?load_tensors:\s+(\S+) (?:model )?buffer size =\s*([\d.]+) MiB")
_KV = re.compile(r"(?:llama_kv_cache|llama_kv_cache_init|\w+): (?:size|KV self size)\s*=\s*([\d.]+) MiB")
_COMPUTE = re.compile(r"\w+:\s+(\S+) compute buffer size =\s*([\d.]+) MiB")
_FLASH = re.compile(r"resolve_fused_ops: Flash Attention (enabled|disabled)|flash_attn\s*=\s*(\d)")


@dataclass(frozen=True)
class Measured:
    """Buffers (bytes) one llama.cpp run reported; `model_buffers` keeps each line's name."""

    model: int
    kv: int
    compute: int
    model_buffers: dict[str, int] = field(default_factory=dict)
    compute_buffers: dict[str, int] = field(default_factory=dict)
    flash_attn: bool | None = None

    @property
    def total(self) -> int:
        return self.model + self.kv + self.compute


def parse_memory(text: str) -> Measured:
    """Sum each kind of buffer line in a run's log (split models print one model line per shard and type)."""
    models: dict[str, int] = {}
    computes: dict[str, int] = {}
    kv = 0
    fa: bool | None = None
    for line in text.splitlines():
        if m := _MODEL.search(line):
            models[m[1]] = models.get(m[1], 0) + round(float(m[2]) * MiB)
        elif "KV buffer size" not in line and "llama_kv_cache" in line and (m := _KV.search(line)):
            kv += round(float(m[1]) * MiB)
        elif m := _COMPUTE.search(line):
            computes[m[1]] = round(float(m[2]) * MiB)  # the last reservation is the one kept
        elif m := _FLASH.search(line):
            fa = (m[1] == "enabled") if m[1] else fa
    return Measured(sum(models.values()), kv, sum(computes.values()), models, computes, fa)


def run_llama(completion: Path, model: Path, ctx: int, *, extra: list[str] | None = None, threads: int = 1,
              timeout: float = 300) -> Measured:
    """Load `model` with llama-completion, generate one token, and return what it allocated."""
    argv = [str(completion), "-m", str(model), "-c", str(ctx), "-n", "1", "-p", "hi", "-no-cnv", "-lv", "4",
            "-t", str(threads), "--no-warmup", *(extra or [])]
    res = proc.run(argv, timeout=timeout)
    measured = parse_memory(res.stderr + "\n" + res.stdout)
    if res.returncode != 0 or not measured.model:
        tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-5:])
        raise R1runError(f"llama-completion failed on {model.name} (exit {res.returncode}): {tail}")
    return measured


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
