"""Header-only GGUF files for reader tests and benchmarks: real metadata and tensor infos, no data.

The tensor data section is a sparse hole (the file is truncated to its full length), so a
DeepSeek-R1-sized shard set of ~130 GiB takes a few MB on disk yet is, byte for byte, what a
GGUF reader sees in a real download's headers. Shards follow llama-gguf-split's layout: the
first holds all metadata, every shard holds split.no / split.count / split.tensors.count.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from r1run.gguf.ggml_types import tensor_nbytes
from testkit.specs import DeepSeekDims
from testkit.writer import add_deepseek2_hparams, deepseek2_tensors

Q = gguf.GGMLQuantizationType

# DeepSeek-R1 671B as converted by llama.cpp (config.json of deepseek-ai/DeepSeek-R1).
R1_DIMS = DeepSeekDims(
    n_layer=61, n_dense=3, n_embd=7168, n_head=128, q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128,
    qk_rope_head_dim=64, v_head_dim=128, n_ff=18432, n_ff_exp=2048, n_expert=256, n_expert_used=8,
    n_expert_shared=1, context_length=163840, rope_scaling_factor=40.0, rope_original_context=4096,
)
R1_VOCAB = 129280
R1_MERGES = 127741


@dataclass(frozen=True)
class HeaderTensor:
    name: str
    ne: tuple[int, ...]     # ggml order
    type: int               # GGMLQuantizationType


def ud_iq1_s_type(name: str, ne: tuple[int, ...]) -> int:
    """Types like Unsloth's dynamic 1.58-bit R1: routed experts IQ1_S (down IQ2_XXS), the rest 4-6 bits."""
    if len(ne) == 1 or "ffn_gate_inp" in name or "exp_probs_b" in name:
        return Q.F32
    if ne[0] % 256:
        return Q.Q8_0 if ne[0] % 32 == 0 else Q.F16
    if "_exps" in name:
        return Q.IQ2_XXS if "down" in name else Q.IQ1_S
    if name == "output.weight":
        return Q.Q6_K
    return Q.Q4_K


def mixed_types(name: str, ne: tuple[int, ...]) -> int:
    """A spread of types (IQ1_S, IQ1_M, IQ2_XXS, Q2_K, Q4_K, Q6_K, Q8_0, F16, F32) for reader tests."""
    if len(ne) == 1 or "ffn_gate_inp" in name or "exp_probs_b" in name:
        return Q.F32
    if ne[0] % 256:
        return Q.Q8_0 if ne[0] % 32 == 0 else Q.F16
    for part, t in (("gate_exps", Q.IQ1_S), ("up_exps", Q.IQ1_M), ("down_exps", Q.IQ2_XXS), ("shexp", Q.Q2_K),
                    ("attn_output", Q.Q4_K), ("output.weight", Q.Q6_K), ("token_embd", Q.Q4_K), ("attn_kv", Q.F16)):
        if part in name:
            return t
    return Q.Q4_K


def deepseek2_header_tensors(d: DeepSeekDims, layout: str, n_vocab: int,
                             types: Callable[[str, tuple[int, ...]], int] = ud_iq1_s_type) -> list[HeaderTensor]:
    return [HeaderTensor(p.name, p.ne, int(types(p.name, p.ne))) for p in deepseek2_tensors(d, layout, n_vocab)]


def synthetic_vocab(n_tokens: int, n_merges: int, seed: int = 0) -> tuple[list[str], list[int], list[str]]:
    """Byte-level-BPE-looking tokens (`Ġthe`, `ing`, ...), their types, and `a b` merges; deterministic."""
    if n_tokens < 8:
        raise ValueError("synthetic_vocab needs at least 8 tokens")
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    tokens = [chr(0x100 + i) if i >= 94 else chr(33 + i) for i in range(min(256, n_tokens - 4))]
    while len(tokens) < n_tokens - 3:
        word = "".join(rng.choice(letters) for _ in range(max(1, int(rng.expovariate(1 / 5.5)))))
        tokens.append(("Ġ" if rng.random() < 0.6 else "") + word)
    tokens += ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>"][: n_tokens - len(tokens)]
    types = [1] * (len(tokens) - 3) + [3] * min(3, len(tokens))
    lo, hi = min(256, len(tokens) - 4), len(tokens) - 3
    merges = [f"{tokens[rng.randrange(lo, hi)]} {tokens[rng.randrange(lo, hi)]}" for _ in range(n_merges)]
    return tokens[:n_tokens], types[:n_tokens], merges


def add_deepseek2_metadata(w: gguf.GGUFWriter, d: DeepSeekDims, layout: str, *, name: str, file_type: int,
                           vocab: tuple[list[str], list[int], list[str]]) -> None:
    """The deepseek2 keys llama.cpp's converter writes (as testkit.writer does for runnable models)."""
    w.add_name(name)
    w.add_file_type(file_type)
    w.add_quantization_version(2)
    w.add_vocab_size(len(vocab[0]))
    add_deepseek2_hparams(w, d, layout)
    tokens, types, merges = vocab
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("deepseek-v3")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(len(tokens) - 3)
    w.add_eos_token_id(len(tokens) - 2)
    w.add_add_bos_token(True)
    w.add_chat_template("{% for m in messages %}<｜{{ m['role'] }}｜>{{ m['content'] }}{% endfor %}<｜Assistant｜>")


def write_header_only(path: Path, arch: str, tensors: Sequence[HeaderTensor],
                      add_metadata: Callable[[gguf.GGUFWriter], None], *, shards: int = 1,
                      endianess: gguf.GGUFEndian = gguf.GGUFEndian.LITTLE) -> list[Path]:
    """Write `path` (or PATH-0000k-of-0000n.gguf shards split by size) with sparse tensor data; return the files."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(path, arch, endianess=endianess)
    add_metadata(w)
    sizes = [tensor_nbytes(t.type, t.ne) for t in tensors]
    total, done, boundary = sum(sizes), 0, 1
    for t, n in zip(tensors, sizes, strict=True):
        if shards > 1 and boundary < shards and done >= total * boundary / shards and w.tensors[-1]:
            w.tensors.append({})  # what GGUFWriter does itself on split_max_size, but landing on exactly `shards`
            boundary += 1
        w.add_tensor_info(t.name, tuple(reversed(t.ne)), np.dtype(np.float32), n, raw_dtype=Q(t.type))
        done += n
    files = w.format_shard_names(Path(path))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    assert w.fout is not None
    for fout, group in zip(w.fout, w.tensors, strict=True):
        data_start = gguf.GGUFWriter.ggml_pad(fout.tell(), w.data_alignment)
        fout.truncate(data_start + sum(gguf.GGUFWriter.ggml_pad(ti.nbytes, w.data_alignment) for ti in group.values()))
    w.close()
    return files


def write_r1_headers(folder: Path, *, layout: str = "original", shards: int = 3, dims: DeepSeekDims = R1_DIMS,
                     n_vocab: int = R1_VOCAB, n_merges: int = R1_MERGES,
                     types: Callable[[str, tuple[int, ...]], int] = ud_iq1_s_type,
                     stem: str = "DeepSeek-R1-UD-IQ1_S") -> list[Path]:
    """A DeepSeek-R1-shaped header-only shard set (R1 671B's real tensor names and shapes by default)."""
    vocab = synthetic_vocab(n_vocab, n_merges)
    tensors = deepseek2_header_tensors(dims, layout, n_vocab, types)

    def meta(w: gguf.GGUFWriter) -> None:
        add_deepseek2_metadata(w, dims, layout, name=stem, file_type=gguf.LlamaFileType.MOSTLY_IQ1_S, vocab=vocab)

    return write_header_only(folder / f"{stem}.gguf", "deepseek2", tensors, meta, shards=shards)
