"""Real, runnable test models shaped like DeepSeek-R1, made with the built llama.cpp.

The F16 model is written in Python (`writer`), then the real llama.cpp tools do the rest:
`llama-imatrix` computes an importance matrix where the quant type needs one,
`llama-quantize` quantizes, `llama-gguf-split` splits into shards. Every artifact is cached
under `dest_dir` in a folder named for everything that shaped it, so a test session pays for
each model once:

    dest_dir/deepseek2-tiny-original-s0-<hash>/
        base-F16.gguf, imatrix.gguf, logs/
        Q4_K_M/DeepSeek-R1-test-tiny-original-Q4_K_M.gguf
        Q4_K_M/split-3/DeepSeek-R1-test-tiny-original-Q4_K_M-0000{1,2,3}-of-00003.gguf
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from r1run import fsutil, proc
from r1run.errors import BadInput, R1runError, ToolMissing
from testkit import tokenizer, writer
from testkit.specs import (
    DEEPSEEK_PRESETS,
    KV_LAYOUTS,
    MOE_PRESETS,
    DeepSeekDims,
    MoeDims,
)

# Bump when the bytes a given set of parameters produces change (cache keys include it).
GENERATOR_VERSION = 1

# Quant types (llama-quantize's names) known to work on these shapes; "F16" is the base itself.
QUANTS: tuple[str, ...] = (
    "F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_K_S", "Q4_0", "Q3_K_M", "Q2_K", "Q2_K_S",
    "IQ4_XS", "IQ3_XXS", "IQ2_M", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S",
    "TQ2_0",  # ternary, mainline only: ik_llama.cpp 0.1.5 lacks the type (its fallback test)
)
# Types llama-quantize refuses without an importance matrix (llama-quant.cpp,
# tensor_requires_imatrix): IQ1/IQ2 and IQ3_XXS tensors, and Q2_K inside a Q2_K_S file.
NEEDS_IMATRIX = frozenset({"IQ3_XXS", "IQ2_M", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S", "Q2_K_S"})

TOOL_TIMEOUT = 3600.0


class GenerationFailed(R1runError):
    """A llama.cpp tool failed while making a test model; carries its log."""


@dataclass(frozen=True)
class ModelSpec:
    arch: str               # GGUF general.architecture: "deepseek2" or "llama"
    preset: str
    kv_layout: str | None   # deepseek2 only
    quant: str
    shards: int
    seed: int
    dims: DeepSeekDims | MoeDims
    n_vocab: int


@dataclass(frozen=True)
class GeneratedModel:
    paths: tuple[Path, ...]     # shard 1 first; llama.cpp is given paths[0]
    spec: ModelSpec
    imatrix: Path | None

    @property
    def path(self) -> Path:
        return self.paths[0]

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.paths)


def make_deepseek(
    dest_dir: Path,
    *,
    preset: str = "tiny",
    kv_layout: str = "original",
    quant: str = "Q4_K_M",
    shards: int = 1,
    seed: int = 0,
    llama_bin: Path,
) -> GeneratedModel:
    """A DeepSeek-R1-shaped deepseek2 model, made (or found in dest_dir's cache)."""
    if preset not in DEEPSEEK_PRESETS:
        raise BadInput(f"unknown preset {preset!r}", f"choose one of {', '.join(DEEPSEEK_PRESETS)}")
    if kv_layout not in KV_LAYOUTS:
        raise BadInput(f"unknown KV layout {kv_layout!r}", f"choose one of {', '.join(KV_LAYOUTS)}")
    dims = DEEPSEEK_PRESETS[preset]
    stem = f"DeepSeek-R1-test-{preset}-{kv_layout}"
    return _make(
        dest_dir, arch="deepseek2", preset=preset, kv_layout=kv_layout, dims=dims, quant=quant, shards=shards,
        seed=seed, llama_bin=llama_bin, stem=stem,
        write_base=lambda path: writer.write_deepseek2(path, dims, kv_layout, seed=seed, name=stem),
    )


def make_moe(
    dest_dir: Path,
    *,
    preset: str = "tiny",
    quant: str = "Q4_K_M",
    shards: int = 1,
    seed: int = 0,
    llama_bin: Path,
) -> GeneratedModel:
    """A Mixtral-shaped MoE (llama architecture with routed experts), made or found in the cache."""
    if preset not in MOE_PRESETS:
        raise BadInput(f"unknown preset {preset!r}", f"choose one of {', '.join(MOE_PRESETS)}")
    dims = MOE_PRESETS[preset]
    stem = f"MoE-test-{preset}"
    return _make(
        dest_dir, arch="llama", preset=preset, kv_layout=None, dims=dims, quant=quant, shards=shards,
        seed=seed, llama_bin=llama_bin, stem=stem,
        write_base=lambda path: writer.write_moe(path, dims, seed=seed, name=stem),
    )


def _make(
    dest_dir: Path, *, arch: str, preset: str, kv_layout: str | None, dims: DeepSeekDims | MoeDims,
    quant: str, shards: int, seed: int, llama_bin: Path, stem: str, write_base: Callable[[Path], None],
) -> GeneratedModel:
    if quant not in QUANTS:
        raise BadInput(f"unknown quant type {quant!r}", f"choose one of {', '.join(QUANTS)}")
    if shards < 1:
        raise BadInput(f"shards must be at least 1, not {shards}")
    n_vocab = len(tokenizer.build_vocab().tokens)
    spec = ModelSpec(arch=arch, preset=preset, kv_layout=kv_layout, quant=quant, shards=shards, seed=seed,
                     dims=dims, n_vocab=n_vocab)
    key = hashlib.sha256(json.dumps(
        {"v": GENERATOR_VERSION, "arch": arch, "layout": kv_layout, "dims": asdict(dims), "seed": seed,
         "vocab": n_vocab},
        sort_keys=True).encode()).hexdigest()[:12]
    root = Path(dest_dir) / f"{arch}-{preset}-{kv_layout or 'gqa'}-s{seed}-{key}"
    base = root / "base-F16.gguf"

    def ensure_base() -> Path:  # only when something is still to be made from it (bases may be deleted)
        if not base.is_file():
            _produce(base, write_base)
        return base

    with fsutil.locked(root / ".lock"):
        imatrix = None
        if quant in NEEDS_IMATRIX:
            imatrix = root / "imatrix.gguf"
            if not imatrix.is_file():
                _imatrix(llama_bin, ensure_base(), imatrix, root / "logs")
        if quant == "F16":
            single = ensure_base()
        else:
            single = root / quant / f"{stem}-{quant}.gguf"
            if not single.is_file():
                _quantize(llama_bin, ensure_base(), single, quant, imatrix, root / "logs")
        paths: tuple[Path, ...] = (single,)
        if shards > 1:
            paths = _split(llama_bin, single, root / quant / f"split-{shards}", f"{stem}-{quant}", shards,
                           root / "logs")
    return GeneratedModel(paths=paths, spec=spec, imatrix=imatrix)


def _produce(final: Path, make: Callable[[Path], None]) -> None:
    """Make `final` through a temporary name so a killed run never leaves a half file behind."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.partial")
    try:
        make(tmp)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def _tool(llama_bin: Path, name: str) -> Path:
    exe = Path(llama_bin) / name
    if not exe.is_file():
        raise ToolMissing(f"{name} not found in {llama_bin}", "build llama.cpp with `r1run build` first")
    return exe


def _run(argv: list[str | os.PathLike], log_dir: Path, step: str) -> proc.Completed:
    res = proc.run(argv, timeout=TOOL_TIMEOUT)
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{step}.log"
    fsutil.write_atomic(log, f"$ {proc.quote(res.argv)}\n{res.stdout}\n{res.stderr}")
    if res.returncode != 0:
        tail = "\n".join((res.stdout + res.stderr).splitlines()[-15:])
        raise GenerationFailed(f"{Path(res.argv[0]).name} failed (exit {res.returncode}):\n{tail}", f"full log: {log}")
    return res


def _threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS
        return max(1, os.cpu_count() or 1)


def _imatrix(llama_bin: Path, base: Path, out: Path, log_dir: Path) -> None:
    """Compute an importance matrix over tokenizer.CORPUS with the real llama-imatrix."""
    exe = _tool(llama_bin, "llama-imatrix")
    with tempfile.TemporaryDirectory(prefix="r1run-imatrix-") as tmp:
        text = Path(tmp) / "corpus.txt"
        text.write_text(tokenizer.CORPUS * 2, encoding="utf-8")
        # 128-token chunks: the corpus gives about ten, enough to reach every expert of the presets.
        _produce(out, lambda p: _run(
            [exe, "-m", base, "-f", text, "-o", p, "-c", "128", "-b", "128", "-t", str(_threads()),
             "--no-ppl", "--output-format", "gguf"],
            log_dir, "imatrix"))


def _quantize(llama_bin: Path, base: Path, out: Path, quant: str, imatrix: Path | None, log_dir: Path) -> None:
    exe = _tool(llama_bin, "llama-quantize")
    argv: list[str | os.PathLike] = [exe]
    if imatrix is not None:
        argv += ["--imatrix", imatrix]
    _produce(out, lambda p: _run([*argv, base, p, quant, str(_threads())], log_dir, f"quantize-{quant}"))


def _split(llama_bin: Path, model: Path, folder: Path, stem: str, shards: int, log_dir: Path) -> tuple[Path, ...]:
    """Split with llama-gguf-split by tensor count, so layers straddle shard boundaries as in real splits."""
    done = sorted(folder.glob(f"{stem}-*-of-*.gguf")) if folder.is_dir() else []
    if done:
        return tuple(done)
    exe = _tool(llama_bin, "llama-gguf-split")
    n_tensors = _tensor_count(model)
    per_shard = math.ceil(n_tensors / shards)
    if math.ceil(n_tensors / per_shard) != shards:
        raise BadInput(f"{n_tensors} tensors cannot be split into exactly {shards} shards by tensor count",
                       "choose fewer shards")
    tmp = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _run([exe, "--split", "--split-max-tensors", str(per_shard), model, tmp / stem], log_dir, f"split-{shards}")
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tuple(sorted(folder.glob(f"{stem}-*-of-*.gguf")))


def _tensor_count(path: Path) -> int:
    """The tensor count from a GGUF header (magic, version u32, n_tensors u64)."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:4] != b"GGUF":
        raise GenerationFailed(f"{path} is not a GGUF file")
    return int.from_bytes(head[8:16], "little")
