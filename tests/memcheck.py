"""The memory model against what the real llama.cpp allocates: the tests' and benchmarks/memory_model.py's
measuring stick, not part of r1run (whose planner counts weights as exact tensor bytes).

`estimate` adds, to r1run's KV cache and compute buffer figures (r1run.planner.memory), the weights as a
CPU-only llama.cpp reports them: the mmap span of each shard plus repacked copies. `run_llama` loads a
model with llama-completion and parses the `-lv 4` lines of a b11434 run (older prefixes in the patterns'
alternatives):

    load_tensors:   CPU_Mapped model buffer size =    92.10 MiB
    load_tensors:   CPU_REPACK model buffer size =     5.20 MiB
    llama_kv_cache: size =   90.00 MiB (  4096 cells,  30 layers,  1/1 seqs), K (f16):   45.00 MiB, V (f16):   45.00 MiB
    sched_reserve:        CPU compute buffer size =   106.77 MiB
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from r1run import proc
from r1run.errors import R1runError
from r1run.gguf.model import ModelInfo
from r1run.planner import memory as mem
from r1run.planner.memory import ContextSpec
from r1run.units import MiB

REPACK_X86_AVX2 = frozenset({"Q4_0", "Q4_K", "IQ4_NL", "MXFP4"})
REPACK_X86_AVX512 = REPACK_X86_AVX2 | {"Q2_K"}
REPACK_ARM_DOTPROD = frozenset({"Q4_0", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "MXFP4", "Q8_0"})


def repack_types(simd: list[str] | tuple[str, ...]) -> frozenset[str]:
    """Which weight types llama.cpp's CPU backend repacks on a CPU with these features (hardware.Cpu.simd)."""
    s = set(simd)
    if "avx512f" in s:
        return REPACK_X86_AVX512
    if "avx2" in s:
        return REPACK_X86_AVX2
    if "asimddp" in s or "FEAT_DotProd" in s or "neon" in s:
        return REPACK_ARM_DOTPROD
    return frozenset()


@dataclass(frozen=True)
class WeightsEstimate:
    """Weights as llama.cpp counts them on a CPU-only run: the mmap span of each shard plus repacked copies."""

    tensor_bytes: int           # exact sum of tensor data
    mapped: int                 # what the CPU_Mapped buffers report (span of the non-repacked tensors per shard)
    repacked: int               # CPU_REPACK: second copies in the layout of the CPU's matmul kernels

    @property
    def reported(self) -> int:
        return self.mapped + self.repacked


def _repackable(t, types: frozenset[str]) -> bool:
    # matmul weights only: token_embd is read by GET_ROWS; 2-D MUL_MAT or 3-D MUL_MAT_ID (experts);
    # MLA's 3-D attn_k_b/attn_v_b are batched MUL_MATs, which the repack buffer does not take.
    if t.type not in types or len(t.shape) < 2 or t.name == "token_embd.weight":
        return False
    if len(t.shape) == 3 and not t.expert:
        return False
    return t.shape[1] % 8 == 0


def weights(info: ModelInfo, simd: list[str] | tuple[str, ...] = ()) -> WeightsEstimate:
    types = repack_types(simd)
    spans: dict[int, list[int]] = {}
    repacked = 0
    cpu_bytes = 0
    for t in info.tensors:
        cpu_bytes += t.bytes
        if _repackable(t, types):
            repacked += t.bytes
            continue
        lo_hi = spans.setdefault(t.shard, [t.offset, t.offset + t.bytes])
        lo_hi[0] = min(lo_hi[0], t.offset)
        lo_hi[1] = max(lo_hi[1], t.offset + t.bytes)
    mapped = sum(hi - lo for lo, hi in spans.values())
    return WeightsEstimate(tensor_bytes=cpu_bytes, mapped=mapped, repacked=repacked)


@dataclass(frozen=True)
class MemoryEstimate:
    """One device (the CPU) running everything: comparable with a CPU-only llama.cpp run."""

    spec: ContextSpec
    weights: WeightsEstimate
    kv: mem.KvEstimate
    compute: mem.ComputeEstimate

    @property
    def total_reported(self) -> int:
        """model + KV + compute as llama.cpp's logs add them up."""
        return self.weights.reported + self.kv.total + self.compute.total


def estimate(info: ModelInfo, spec: ContextSpec, simd: list[str] | tuple[str, ...] = ()) -> MemoryEstimate:
    d = mem.dims_of(info)
    return MemoryEstimate(spec=spec, weights=weights(info, simd), kv=mem.kv_cache(info, spec, d),
                          compute=mem.compute_buffer(info, spec, d))


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
    """Load `model` with llama-completion, generate one token, and return what it allocated.

    llama.cpp writes its log from a worker thread, and since llama.cpp#22273 a build r1run did not patch can exit
    before that thread has written the last lines (seen in CI before the patch, llama.patches: a run whose log
    stopped after the model buffers, with no KV or compute line). For such builds (benchmarks take any), a run whose
    log lacks any of the three buffers is run again, at most three times in all; a run that fails is not.
    """
    argv = [str(completion), "-m", str(model), "-c", str(ctx), "-n", "1", "-p", "hi", "-no-cnv", "-lv", "4",
            "-t", str(threads), "--no-warmup", *(extra or [])]
    for _ in range(3):
        res = proc.run(argv, timeout=timeout)
        measured = parse_memory(res.stderr + "\n" + res.stdout)
        if res.returncode != 0 or not measured.model:
            tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-5:])
            raise R1runError(f"llama-completion failed on {model.name} (exit {res.returncode}): {tail}")
        if measured.kv and measured.compute:
            return measured
    raise R1runError(f"llama-completion's log on {model.name} lacked its KV or compute buffer line three times")
