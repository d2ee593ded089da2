"""The GGUF header reader and ModelInfo, cross-checked against the official gguf.GGUFReader."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest

from gguf_samples import (
    SMALL_VOCAB,
    BytesSource,
    assert_matches_gguf_reader,
    write_all_value_types,
    write_small_deepseek,
)
from r1run import proc
from r1run.gguf import read_header, read_model
from r1run.gguf.ggml_types import bits_per_weight, tensor_nbytes
from r1run.gguf.reader import ArrayValue

Q = gguf.GGMLQuantizationType


# --- type sizes -----------------------------------------------------------------------------

@pytest.mark.parametrize("t, bpw", [(Q.IQ1_S, 1.5625), (Q.IQ1_M, 1.75), (Q.IQ2_XXS, 2.0625), (Q.Q2_K, 2.625),
                                    (Q.Q4_K, 4.5), (Q.Q6_K, 6.5625), (Q.Q8_0, 8.5), (Q.F16, 16), (Q.F32, 32)])
def test_bits_per_weight_of_the_types_r1_quants_use(t, bpw):
    assert bits_per_weight(t) == bpw


def test_tensor_bytes_are_blocks_times_block_size():
    # One R1 routed-expert gate tensor: 7168 x 2048 x 256 elements.
    assert tensor_nbytes(Q.IQ1_S, (7168, 2048, 256)) == 7168 * 2048 * 256 // 256 * 50
    assert tensor_nbytes(Q.IQ1_M, (7168, 2048, 256)) == 7168 * 2048 * 256 // 256 * 56


# --- cross-checks ---------------------------------------------------------------------------

def test_smollm2_matches_gguf_reader(smollm2):
    h = read_header(smollm2)
    assert_matches_gguf_reader(smollm2, h)
    tokens = h.get("tokenizer.ggml.tokens")
    assert isinstance(tokens, ArrayValue) and tokens.length == 49152 and tokens.values is None
    info = read_model(smollm2)
    assert info.architecture == "llama" and info.architecture_known
    assert info.hparams.block_count == 30 and info.hparams.head_count_kv == 3
    assert info.tensor_bytes == 96_576_768  # llama.cpp: "CPU_Mapped model buffer size = 92.10 MiB"
    assert info.kv_layout == "standard" and info.expert_bytes == 0
    assert info.file_type == "Q4_1" and info.hparams.vocab_size == 49152
    assert sum(layer.bytes for layer in info.layers) + info.non_layer_bytes == info.tensor_bytes
    # Tied embeddings: no output.weight, so every token reads token_embd as the output matrix.
    assert info.active_bytes_per_token == info.tensor_bytes


@pytest.mark.parametrize("endian", [gguf.GGUFEndian.LITTLE, gguf.GGUFEndian.BIG])
def test_every_value_type_matches_gguf_reader(tmp_path, endian):
    path = write_all_value_types(tmp_path / "types.gguf", endianess=endian)
    h = read_header(path)
    assert_matches_gguf_reader(path, h)
    assert h.get("t.str") == "héllo ｜ wörld" and h.get("t.u64") == 2**63 + 5 and h.get("t.bool") is True
    nested = h.get("t.nested")
    assert isinstance(nested, ArrayValue) and [a.values for a in nested.values] == [(1, 2), (3,), (4, 5, 6)]
    assert h.get("t.long_str").values is None and h.get("t.long_str").length == 3000


@pytest.mark.parametrize("layout", ["original", "mla"])
def test_deepseek_shaped_file_matches_gguf_reader(tmp_path, layout):
    [path] = write_small_deepseek(tmp_path / "ds.gguf", layout)
    assert_matches_gguf_reader(path, read_header(path))
    info = read_model(path)
    hp = info.hparams
    assert info.architecture == "deepseek2" and info.kv_layout == layout
    assert (hp.block_count, hp.leading_dense_block_count) == (5, 1)
    assert (hp.expert_count, hp.expert_used_count, hp.expert_shared_count) == (8, 2, 1)
    assert (hp.q_lora_rank, hp.kv_lora_rank, hp.rope_dimension_count) == (256, 256, 64)
    assert hp.vocab_size == SMALL_VOCAB and hp.context_length == 4096
    if layout == "mla":
        assert (hp.key_length_mla, hp.value_length_mla, hp.key_length, hp.head_count_kv) == (192, 128, 320, 1)
    else:
        assert (hp.key_length, hp.value_length, hp.key_length_mla, hp.head_count_kv) == (192, 128, None, 4)
    assert [layer.moe for layer in info.layers] == [False, True, True, True, True]
    assert {"IQ1_S", "IQ1_M", "IQ2_XXS", "Q2_K", "Q4_K", "Q6_K", "F16", "F32"} <= set(info.tensor_types)
    theirs = gguf.GGUFReader(path)
    assert info.parameter_count == sum(int(t.n_elements) for t in theirs.tensors)
    assert info.tensor_bytes == sum(int(t.n_bytes) for t in theirs.tensors)
    exps = sum(int(t.n_bytes) for t in theirs.tensors if "_exps." in t.name)
    assert info.expert_bytes == exps and info.non_expert_bytes == info.tensor_bytes - exps
    assert info.non_layer_tensors.keys() == {"token_embd.weight", "output_norm.weight", "output.weight"}
    for layer in info.layers:
        mine = [t for t in theirs.tensors if t.name.startswith(f"blk.{layer.index}.")]
        assert layer.bytes == sum(int(t.n_bytes) for t in mine)
        assert layer.expert_bytes == sum(int(t.n_bytes) for t in mine if "_exps." in t.name)
    # A decode step reads the non-expert weights (less the embedding table) and 2 of 8 experts.
    want = info.tensor_bytes - exps - info.non_layer_tensors["token_embd.weight"] + exps * 2 // 8
    assert info.active_bytes_per_token == want


def test_big_endian_deepseek_file(tmp_path):
    [path] = write_small_deepseek(tmp_path / "be.gguf", "mla", endianess=gguf.GGUFEndian.BIG)
    h = read_header(path)
    assert h.byte_order == "big"
    assert_matches_gguf_reader(path, h)


def test_reads_from_any_byte_source(tmp_path):
    [path] = write_small_deepseek(tmp_path / "ds.gguf", "original")
    data = path.read_bytes()

    class CountingSource(BytesSource):
        reads = 0

        def read(self, offset, n):
            CountingSource.reads += 1
            return super().read(offset, n)

    a, b = read_header(path), read_header(CountingSource(data, name="mem"))
    assert (a.kv, a.tensors, a.data_offset) == (b.kv, b.tensors, b.data_offset)
    assert CountingSource.reads <= 2  # a small header comes in one chunk


# --- shard sets -------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["original", "mla"])
def test_shard_set_sums_layers_across_shards(tmp_path, layout):
    [whole] = write_small_deepseek(tmp_path / "one" / "m.gguf", layout)
    files = write_small_deepseek(tmp_path / "split" / "m.gguf", layout, shards=3)
    assert [f.name for f in files] == [f"m-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    for f in files:
        assert_matches_gguf_reader(f, read_header(f))
    a, b = read_model(whole), read_model(files[1])  # any shard finds the set
    assert [s.split_no for s in b.shards] == [0, 1, 2]
    assert [(x.bytes, x.expert_bytes) for x in a.layers] == [(x.bytes, x.expert_bytes) for x in b.layers]
    assert (a.tensor_bytes, a.parameter_count, a.hparams, a.kv_layout) == \
           (b.tensor_bytes, b.parameter_count, b.hparams, b.kv_layout)
    assert any(len(layer.shards) > 1 for layer in b.layers), "no layer straddles a shard boundary"
    assert read_model(tmp_path / "split").tensor_bytes == a.tensor_bytes  # the folder


@pytest.mark.llama
def test_llama_gguf_split_shards(tmp_path, llama_bin):
    [whole] = write_small_deepseek(tmp_path / "m.gguf", "mla")
    out = tmp_path / "split"
    out.mkdir()
    res = proc.run([llama_bin / "llama-gguf-split", "--split", "--split-max-tensors", "40", whole, out / "m"],
                   timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    files = sorted(out.glob("*.gguf"))
    assert len(files) >= 3
    for f in files:
        assert_matches_gguf_reader(f, read_header(f))
    a, b = read_model(whole), read_model(files[0])
    assert len(b.shards) == len(files)
    assert [x.bytes for x in a.layers] == [x.bytes for x in b.layers]
    assert any(len(layer.shards) > 1 for layer in b.layers)
    assert a.tensor_bytes == b.tensor_bytes and a.hparams == b.hparams


# --- speed --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def r1_headers(tmp_path_factory) -> list[Path]:
    from testkit.headers import write_r1_headers

    return write_r1_headers(tmp_path_factory.mktemp("r1") / "DeepSeek-R1-UD-IQ1_S")


def test_r1_sized_shard_set_reads_from_headers(r1_headers):
    # how fast: benchmarks/inspect_speed.py (a clock in a test is flaky on a shared machine)
    info = read_model(r1_headers[0])
    assert info.hparams.block_count == 61 and len(info.layers) == 61 and info.hparams.vocab_size == 129280
    assert 670e9 < info.parameter_count < 672e9
    assert info.hparams.leading_dense_block_count == 3 and sum(layer.moe for layer in info.layers) == 58
    assert sum(s.tensor_count for s in info.shards) == info.tensor_count == len(info.tensors)
    assert any(len(layer.shards) > 1 for layer in info.layers)
