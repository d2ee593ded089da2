"""The generated test models: right shape and metadata, and the real llama.cpp loads and runs them."""

from __future__ import annotations

import re
from pathlib import Path

import gguf
import pytest

from r1run import proc
from r1run.errors import BadInput
from testkit import tokenizer, writer
from testkit.models import NEEDS_IMATRIX, make_deepseek
from testkit.specs import DEEPSEEK_PRESETS, MOE_PRESETS

PROMPT = "<｜User｜>Hi, how are you?<｜Assistant｜>"

# b11434 lines, e.g.
#   0.00.5 I common_perf_print:        eval time =      10.52 ms /    15 runs   (    0.70 ms per token, ...)
#   llama_kv_cache: size =    2.50 MiB (   512 cells,   4 layers,  1/1 seqs), K (f16):    1.50 MiB, V (f16):    1.00 MiB
EVAL_RUNS = re.compile(r"common_perf_print:\s+eval time =\s+[\d.]+ ms /\s+(\d+) runs")
KV_SIZE = re.compile(r"llama_kv_cache: size =\s+([\d.]+) MiB \(\s*(\d+) cells,\s+(\d+) layers,.*?K \((\w+)\):\s+([\d.]+) MiB"
                     r"(?:, V \((\w+)\):\s+([\d.]+) MiB)?")
MODEL_BUFFER = re.compile(r"load_tensors:\s+(\S+) model buffer size =\s+([\d.]+) MiB")


def complete(llama_bin: Path, model: Path, *extra: str, n: int = 16, ctx: int = 512) -> proc.Completed:
    """One llama-completion run, its whole log: the test build drains b11434's leaked logger at exit
    (llama.patches; unpatched, 1 run in 6 to 1 in 20 lost its last lines here)."""
    res = proc.run([llama_bin / "llama-completion", "-m", model, "-p", PROMPT, "-no-cnv", "-n", str(n),
                    "-c", str(ctx), "-t", "2", "--seed", "1", "-lv", "4", *extra], timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def eval_runs(res: proc.Completed) -> int:
    m = EVAL_RUNS.search(res.stderr)
    assert m, res.stderr[-3000:]
    return int(m.group(1))


# --- without llama.cpp ---------------------------------------------------------------------

def test_vocab_has_deepseek_specials_and_all_bytes() -> None:
    v = tokenizer.build_vocab()
    assert v.tokens[:2] == (tokenizer.BOS, tokenizer.EOS)
    for t in (tokenizer.USER, tokenizer.ASSISTANT, tokenizer.THINK, tokenizer.END_THINK):
        assert t in v.tokens
    assert len(set(v.tokens)) == len(v.tokens)
    assert len(v.merges) > 300
    # every merge's halves and result are tokens, as llama.cpp's BPE needs
    toks = set(v.tokens)
    for m in v.merges:
        a, b = m.split(" ")
        assert a in toks and b in toks and a + b in toks


@pytest.mark.parametrize("layout", ["original", "mla"])
def test_deepseek2_tensor_names_are_llama_cpp_names(layout: str) -> None:
    d = DEEPSEEK_PRESETS["tiny"]
    plans = writer.deepseek2_tensors(d, layout, 1000)
    known = {gguf.TENSOR_NAMES[t] for t in gguf.MODEL_TENSORS[gguf.MODEL_ARCH.DEEPSEEK2]}
    for p in plans:
        base = re.sub(r"^blk\.\d+\.", "blk.{bid}.", p.name.rsplit(".", 1)[0])
        assert base in known, p.name
    names = {p.name for p in plans}
    assert ("blk.1.attn_kv_b.weight" in names) == (layout == "original")
    assert ("blk.1.attn_k_b.weight" in names) == (layout == "mla")
    assert "blk.0.ffn_gate.weight" in names and "blk.0.ffn_gate_exps.weight" not in names  # leading dense
    assert "blk.1.ffn_gate_exps.weight" in names and "blk.1.ffn_up_shexp.weight" in names


@pytest.mark.parametrize("preset", sorted(DEEPSEEK_PRESETS))
def test_quantized_rows_fit_256_blocks(preset: str) -> None:
    d = DEEPSEEK_PRESETS[preset]
    for layout in ("original", "mla"):
        for p in writer.deepseek2_tensors(d, layout, 1000):
            if p.kind == "matrix" and "attn_k_b" not in p.name:
                assert p.ne[0] % 256 == 0, (preset, p.name, p.ne)


def test_f16_base_metadata_and_determinism(tmp_path: Path) -> None:
    d = DEEPSEEK_PRESETS["tiny"]
    a, b, c = tmp_path / "a.gguf", tmp_path / "b.gguf", tmp_path / "c.gguf"
    writer.write_deepseek2(a, d, "mla", seed=0, name="t")
    writer.write_deepseek2(b, d, "mla", seed=0, name="t")
    writer.write_deepseek2(c, d, "mla", seed=1, name="t")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    r = gguf.GGUFReader(a)
    f = {k: v.contents() for k, v in r.fields.items() if not k.startswith("tokenizer.ggml.")}
    assert f["general.architecture"] == "deepseek2"
    assert f["deepseek2.block_count"] == d.n_layer
    assert f["deepseek2.leading_dense_block_count"] == d.n_dense
    assert f["deepseek2.attention.key_length_mla"] == 192 and f["deepseek2.attention.value_length_mla"] == 128
    assert f["deepseek2.attention.key_length"] == d.kv_lora_rank + 64
    assert f["deepseek2.expert_gating_func"] == 2
    assert "<｜Assistant｜>" in f["tokenizer.chat_template"]
    emb = next(t for t in r.tensors if t.name == "blk.1.ffn_up_exps.weight")
    assert (emb.data != 0).all()


def test_bad_parameters_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        make_deepseek(tmp_path, preset="huge", llama_bin=tmp_path)
    with pytest.raises(BadInput):
        make_deepseek(tmp_path, kv_layout="paged", llama_bin=tmp_path)
    with pytest.raises(BadInput):
        make_deepseek(tmp_path, quant="Q9_X", llama_bin=tmp_path)


# --- with the real llama.cpp ---------------------------------------------------------------

@pytest.mark.llama
@pytest.mark.parametrize("layout,quant", [
    ("original", "Q4_K_M"), ("mla", "Q4_K_M"),
    ("original", "IQ1_S"), ("mla", "IQ1_M"), ("mla", "IQ2_XXS"), ("original", "Q2_K"), ("mla", "Q8_0"),
])
def test_deepseek_loads_and_generates(gen_models_dir: Path, llama_bin: Path, layout: str, quant: str) -> None:
    m = make_deepseek(gen_models_dir, preset="tiny", kv_layout=layout, quant=quant, llama_bin=llama_bin)
    assert (m.imatrix is not None) == (quant in NEEDS_IMATRIX)
    r = gguf.GGUFReader(m.path)
    types = {t.tensor_type.name for t in r.tensors}
    assert quant.split("_")[0] in " ".join(types), types  # the main type is really there
    res = complete(llama_bin, m.path)
    assert eval_runs(res) >= 1
    assert re.search(r"print_info: arch\s+= deepseek2", res.stderr)


@pytest.mark.llama
def test_kv_cache_original_layout(r1_tiny, llama_bin: Path) -> None:
    d = r1_tiny.spec.dims
    res = complete(llama_bin, r1_tiny.path, ctx=512)
    m = KV_SIZE.search(res.stderr)
    assert m, res.stderr[-3000:]
    cells, layers = int(m.group(2)), int(m.group(3))
    assert (cells, layers) == (512, d.n_layer)
    k_mib = cells * layers * d.n_head * (d.qk_nope_head_dim + d.qk_rope_head_dim) * 2 / 2**20
    v_mib = cells * layers * d.n_head * d.v_head_dim * 2 / 2**20
    assert float(m.group(5)) == pytest.approx(k_mib, abs=0.01)
    assert m.group(7) is not None and float(m.group(7)) == pytest.approx(v_mib, abs=0.01)
    assert MODEL_BUFFER.search(res.stderr)


@pytest.mark.llama
def test_kv_cache_mla_layout(r1_tiny_mla, llama_bin: Path) -> None:
    d = r1_tiny_mla.spec.dims
    res = complete(llama_bin, r1_tiny_mla.path, ctx=512)
    m = KV_SIZE.search(res.stderr)
    assert m, res.stderr[-3000:]
    cells, layers = int(m.group(2)), int(m.group(3))
    k_mib = cells * layers * (d.kv_lora_rank + d.qk_rope_head_dim) * 2 / 2**20
    assert float(m.group(5)) == pytest.approx(k_mib, abs=0.01)
    assert m.group(7) is None or float(m.group(7)) == 0.0  # no V cache: V is a view of K
    assert MODEL_BUFFER.search(res.stderr)


@pytest.mark.llama
def test_split_shards_load_from_the_first(r1_tiny_split, llama_bin: Path) -> None:
    paths = r1_tiny_split.paths
    assert len(paths) == 3
    assert [re.search(r"-(\d+)-of-(\d+)\.gguf$", p.name).groups() for p in paths] == [(f"0000{i}", "00003") for i in (1, 2, 3)]
    counts = [int(gguf.GGUFReader(p).fields["split.count"].contents()) for p in paths]
    assert counts == [3, 3, 3]
    res = complete(llama_bin, paths[0])
    assert eval_runs(res) >= 1


@pytest.mark.llama
def test_tokenizer_matches_special_tokens_whole(r1_tiny, llama_bin: Path) -> None:
    res = complete(llama_bin, r1_tiny.path, "--verbose-prompt", n=1)
    v = tokenizer.build_vocab()
    out = res.stdout + res.stderr
    for tok in (tokenizer.USER, tokenizer.ASSISTANT):
        assert re.search(rf"\b{v.id_of(tok)} -> '{re.escape(tok)}'", out), out[-3000:]
    assert re.search(rf"\b{v.bos_id} -> '{re.escape(tokenizer.BOS)}'", out)  # add_bos_token
    assert re.search(r"-> ' are'", out)  # a merged English word, with its leading space


@pytest.mark.llama
def test_generic_moe_generates(moe_tiny, llama_bin: Path) -> None:
    assert moe_tiny.spec.dims == MOE_PRESETS["tiny"]
    res = complete(llama_bin, moe_tiny.path)
    assert eval_runs(res) >= 1
    m = KV_SIZE.search(res.stderr)
    d = moe_tiny.spec.dims
    assert m and float(m.group(5)) == pytest.approx(512 * d.n_layer * d.n_head_kv * d.head_dim * 2 / 2**20, abs=0.01)


@pytest.mark.llama
def test_cache_returns_the_same_files(r1_tiny, gen_models_dir: Path, llama_bin: Path) -> None:
    again = make_deepseek(gen_models_dir, preset="tiny", kv_layout="original", quant="Q4_K_M", llama_bin=llama_bin)
    assert again.paths == r1_tiny.paths
    assert again.path.stat().st_mtime == r1_tiny.path.stat().st_mtime
