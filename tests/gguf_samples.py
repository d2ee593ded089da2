"""Small GGUF files for the reader tests: header-only DeepSeek-shaped models, every value type, hand-made bad headers."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import pytest

from r1run.gguf.reader import Header
from testkit.headers import (
    add_deepseek2_metadata,
    deepseek2_header_tensors,
    mixed_types,
    synthetic_vocab,
    write_header_only,
)
from testkit.specs import DeepSeekDims

# Small but R1-shaped: 5 layers (1 dense + 4 MoE), 8 experts (2 used) + 1 shared, q and kv LoRA.
SMALL_DS = DeepSeekDims(n_layer=5, n_dense=1, n_embd=256, n_head=4, q_lora_rank=256, kv_lora_rank=256,
                        qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128, n_ff=512, n_ff_exp=256,
                        n_expert=8, n_expert_used=2, n_expert_shared=1, context_length=4096)
SMALL_VOCAB = 1500  # above Limits.keep_array, so the tokenizer arrays are summarised, not kept


class BytesSource:
    """A GGUF held in memory, as a ByteSource for the reader."""

    def __init__(self, data: bytes, name: str = "<bytes>") -> None:
        self._data = bytes(data)
        self.name = name
        self.size = len(self._data)

    def read(self, offset: int, n: int) -> bytes:
        return self._data[offset:offset + n]


def write_small_deepseek(path: Path, layout: str, *, shards: int = 1, dims: DeepSeekDims = SMALL_DS,
                         name: str = "tiny-r1", endianess=gguf.GGUFEndian.LITTLE) -> list[Path]:
    vocab = synthetic_vocab(SMALL_VOCAB, 1400, seed=1)
    tensors = deepseek2_header_tensors(dims, layout, SMALL_VOCAB, mixed_types)
    return write_header_only(
        path, "deepseek2", tensors,
        lambda w: add_deepseek2_metadata(w, dims, layout, name=name, file_type=gguf.LlamaFileType.MOSTLY_IQ1_S,
                                         vocab=vocab),
        shards=shards, endianess=endianess)


def write_all_value_types(path: Path, arch: str = "llama", endianess=gguf.GGUFEndian.LITTLE) -> Path:
    """One key of every GGUF value type, short and long arrays of each, nested arrays, and two tensors."""
    w = gguf.GGUFWriter(path, arch, endianess=endianess)
    V = gguf.GGUFValueType
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4_000_000_000)
    w.add_int32("t.i32", -2_000_000_000)
    w.add_float32("t.f32", 1.5)
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float64("t.f64", 3.141592653589793)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo ｜ wörld")
    w.add_string("t.empty", "")
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_f32", [0.5, 1.25])
    w.add_array("t.arr_str", ["a", "", "ccc"])
    w.add_array("t.arr_bool", [True, False])
    w.add_array("t.nested", [[1, 2], [3], [4, 5, 6]])
    w.add_key_value("t.long_u8", list(range(256)) * 8, V.ARRAY, sub_type=V.UINT8)
    w.add_array("t.long_str", [f"tok{i}" for i in range(3000)])
    w.add_key_value("t.long_f64", [float(i) for i in range(2000)], V.ARRAY, sub_type=V.FLOAT64)
    w.add_block_count(1)
    import numpy as np

    w.add_tensor("blk.0.attn_norm.weight", np.ones(32, dtype=np.float32))
    w.add_tensor("token_embd.weight", np.ones((4, 32), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def assert_matches_gguf_reader(path: Path, ours: Header) -> None:
    """Every KV, tensor info and offset agrees with the official gguf.GGUFReader."""
    theirs = gguf.GGUFReader(path)
    V = gguf.GGUFValueType
    assert ours.data_offset == theirs.data_offset
    assert ours.alignment == theirs.alignment
    assert ours.byte_order == ("big" if theirs.endianess == gguf.GGUFEndian.BIG else "little")
    fields = {k: f for k, f in theirs.fields.items() if not k.startswith("GGUF.")}
    assert list(ours.kv) == list(fields)
    for key, f in fields.items():
        kv = ours.kv[key]
        assert kv.type == f.types[0], key
        if f.types[0] != V.ARRAY:
            want = f.contents()
            assert kv.value == (pytest.approx(want) if isinstance(want, float) else want), key
            continue
        arr = kv.value
        assert arr.item_type == f.types[1], key
        if arr.item_type == V.ARRAY:  # GGUFReader flattens nested arrays to their leaves
            leaves = _leaves(arr)
            assert [x for x in leaves] == f.contents() and len(leaves) == len(f.data), key
            continue
        assert arr.length == len(f.data), key
        if arr.values is not None:
            _assert_array_values(arr, f.contents(), key)
    assert [t.name for t in ours.tensors] == [t.name for t in theirs.tensors]
    for t, r in zip(ours.tensors, theirs.tensors, strict=True):
        assert t.shape == tuple(int(x) for x in r.shape), t.name
        assert t.ggml_type == int(r.tensor_type), t.name
        assert ours.data_offset + t.offset == r.data_offset, t.name
        assert t.n_bytes == r.n_bytes, t.name
        assert t.n_elements == r.n_elements, t.name


def _assert_array_values(arr, want: list, key: str) -> None:
    got = [_plain(v) for v in arr.values]
    assert got == pytest.approx(want) if want and isinstance(want[0], float) else got == want, key


def _leaves(arr) -> list:
    return [x for sub in arr.values for x in (_leaves(sub) if sub.item_type == 9 else sub.values)]


def _plain(v):
    from r1run.gguf.reader import ArrayValue

    return [_plain(x) for x in v.values] if isinstance(v, ArrayValue) else v


# ---- hand-assembled headers ------------------------------------------------------------------

def gguf_string(s: bytes | str) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def header(n_tensors: int, n_kv: int, body: bytes = b"", version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv) + body


def kv_string(key: str, value: str) -> bytes:
    return gguf_string(key) + struct.pack("<I", 8) + gguf_string(value)


def tensor_info(name: str, dims: tuple[int, ...], ggml_type: int = 0, offset: int = 0, n_dims: int | None = None) -> bytes:
    nd = len(dims) if n_dims is None else n_dims
    return gguf_string(name) + struct.pack("<I", nd) + b"".join(struct.pack("<Q", d) for d in dims) + \
        struct.pack("<IQ", ggml_type, offset)
