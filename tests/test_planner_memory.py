"""The memory model against the real llama.cpp: every buffer within 5%, the total never more than 2% under.

Real runs (`llama-completion -lv 4`) on SmolLM2 and the generated DeepSeek-R1-shaped and MoE models at
three contexts; and, at DeepSeek-R1's full size, llama.cpp's own projection (`llama-fit-params`
reserves the real graph without allocating) on header-only R1 files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from memcheck import MemoryEstimate, estimate, parse_memory, run_llama
from r1run.gguf import read_model
from r1run.hardware import detect_cpu
from r1run.planner import memory as mem

CONTEXTS = (512, 4096, 16384)
MODELS = ("smollm2", "r1_tiny", "r1_tiny_mla", "r1_tiny_split", "moe_tiny")


def _path(request, name: str) -> Path:
    value = request.getfixturevalue(name)
    return Path(value) if isinstance(value, (str, Path)) else value.path


def check(est: MemoryEstimate, real) -> list[str]:
    problems = []
    for what, e, r in (("model", est.weights.reported, real.model), ("kv", est.kv.total, real.kv),
                       ("compute", est.compute.total, real.compute)):
        if abs(e - r) > 0.05 * r:
            problems.append(f"{what}: estimate {e / 2**20:.2f} MiB, llama.cpp {r / 2**20:.2f} MiB")
    if est.total_reported < 0.98 * real.total:
        problems.append(f"total {est.total_reported / 2**20:.2f} MiB is under llama.cpp's {real.total / 2**20:.2f}")
    return problems


@pytest.mark.llama
@pytest.mark.parametrize("model", MODELS)
def test_memory_model_matches_llama_cpp(request, llama_bin: Path, model: str):
    path = _path(request, model)
    info = read_model(path)
    simd = detect_cpu().simd
    problems = []
    for ctx in CONTEXTS:
        real = run_llama(llama_bin / "llama-completion", path, ctx)
        assert real.flash_attn is not False
        est = estimate(info, mem.ContextSpec(ctx=ctx), simd)
        problems += [f"ctx {ctx}: {p}" for p in check(est, real)]
    assert not problems, "\n".join(problems)


@pytest.mark.llama
def test_flash_attention_off(llama_bin: Path, r1_tiny):
    info = read_model(r1_tiny.path)
    real = run_llama(llama_bin / "llama-completion", r1_tiny.path, 4096, extra=["-fa", "off", "-ctk", "q8_0"])
    est = estimate(info, mem.ContextSpec(ctx=4096, flash_attn=False, cache_type_k="q8_0"), detect_cpu().simd)
    assert not check(est, real)


def _write_r1_header_only(folder: Path, layout: str) -> Path:
    """DeepSeek-R1 671B's real shapes, header only (sparse data), with a vocabulary llama.cpp accepts."""
    import gguf

    from testkit import headers as H

    n = H.R1_VOCAB
    toks = [chr(0x100 + i) if i >= 94 else chr(33 + i) for i in range(256)] + [f"w{i}" for i in range(n - 259)]
    toks += ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>"]
    vocab = (toks, [1] * (n - 3) + [3] * 3, ["w 1"])
    tensors = H.deepseek2_header_tensors(H.R1_DIMS, layout, n)

    def meta(w):
        H.add_deepseek2_metadata(w, H.R1_DIMS, layout, name="R1", file_type=gguf.LlamaFileType.MOSTLY_IQ1_S,
                                 vocab=vocab)

    folder.mkdir(parents=True, exist_ok=True)
    return H.write_header_only(folder / "R1.gguf", "deepseek2", tensors, meta)[0]


@pytest.mark.llama
@pytest.mark.parametrize("layout", ["original", "mla"])
def test_r1_sized_kv_and_compute_match_llama_fit_params(tmp_path: Path, llama_bin: Path, layout: str):
    from r1run import proc

    path = _write_r1_header_only(tmp_path / layout, layout)
    info = read_model(path)
    for ctx, fa in ((4096, "on"), (16384, "on"), (4096, "off")):
        res = proc.run([llama_bin / "llama-fit-params", "-m", path, "-c", str(ctx), "-fa", fa, "-lv", "4"], timeout=120)
        real = _breakdown(res.stderr)
        est = estimate(info, mem.ContextSpec(ctx=ctx, flash_attn=fa == "on"))
        assert abs(est.kv.total - real["context"]) <= 0.01 * real["context"] + 2**20
        assert abs(est.compute.total - real["compute"]) <= 0.05 * real["compute"], (ctx, fa, est.compute, real)


def _breakdown(text: str) -> dict[str, int]:
    """`common_memory_breakdown_print: |   - Host  |  156270 = 136423 +   19520 +     326  |` (MiB)."""
    import re

    m = re.search(r"- Host\s*\|\s*(\d+) = (\d+) \+\s*(\d+) \+\s*(\d+)", text)
    assert m, text[-2000:]
    return {"model": int(m[2]) << 20, "context": int(m[3]) << 20, "compute": int(m[4]) << 20}


def test_parse_memory_reads_b11434_lines():
    text = """\
0.00.409.868 I load_tensors:   CPU_Mapped model buffer size =     6.89 MiB
0.00.409.869 I load_tensors:   CPU_REPACK model buffer size =     5.20 MiB
0.00.413.745 I llama_kv_cache:        CPU KV buffer size =    90.00 MiB
0.00.527.147 I llama_kv_cache: size =   90.00 MiB (  4096 cells,  30 layers,  1/1 seqs), K (f16):   45.00 MiB, V (f16):   45.00 MiB
0.00.530.700 I resolve_fused_ops: Flash Attention enabled
0.00.530.712 I sched_reserve:        CPU compute buffer size =   106.77 MiB
"""
    m = parse_memory(text)
    assert m.model == round(6.89 * 2**20) + round(5.20 * 2**20)
    assert m.kv == 90 * 2**20 and m.compute == round(106.77 * 2**20) and m.flash_attn is True
