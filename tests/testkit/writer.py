"""Write a test model's F16 GGUF: metadata, tokenizer and seeded random weights.

Tensors are streamed one at a time (header first, then each tensor's data), so even the
bench preset (~4 GB in F16) never sits whole in memory.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import gguf
import numpy as np

from testkit import tokenizer
from testkit.specs import DeepSeekDims, MoeDims

# How a tensor is filled and stored: matrices in F16 (what llama-quantize reads), the
# rest in F32 as the converters keep them (norms, router, router bias).
Kind = Literal["matrix", "norm", "router", "bias"]


@dataclass(frozen=True)
class TensorPlan:
    name: str
    ne: tuple[int, ...]     # ggml order: ne[0] is the row length
    kind: Kind


def deepseek2_tensors(d: DeepSeekDims, layout: str, n_vocab: int) -> list[TensorPlan]:
    """The tensors llama.cpp's deepseek2 loader asks for (src/models/deepseek2.cpp, b11434)."""
    t = [TensorPlan("token_embd.weight", (d.n_embd, n_vocab), "matrix")]
    for i in range(d.n_layer):
        b = f"blk.{i}."
        t += [
            TensorPlan(b + "attn_norm.weight", (d.n_embd,), "norm"),
            TensorPlan(b + "attn_q_a_norm.weight", (d.q_lora_rank,), "norm"),
            TensorPlan(b + "attn_kv_a_norm.weight", (d.kv_lora_rank,), "norm"),
            TensorPlan(b + "attn_q_a.weight", (d.n_embd, d.q_lora_rank), "matrix"),
            TensorPlan(b + "attn_q_b.weight", (d.q_lora_rank, d.n_head * d.key_length), "matrix"),
            TensorPlan(b + "attn_kv_a_mqa.weight", (d.n_embd, d.kv_lora_rank + d.qk_rope_head_dim), "matrix"),
        ]
        if layout == "mla":
            t += [
                TensorPlan(b + "attn_k_b.weight", (d.qk_nope_head_dim, d.kv_lora_rank, d.n_head), "matrix"),
                TensorPlan(b + "attn_v_b.weight", (d.kv_lora_rank, d.v_head_dim, d.n_head), "matrix"),
            ]
        else:
            t.append(TensorPlan(b + "attn_kv_b.weight",
                                (d.kv_lora_rank, d.n_head * (d.qk_nope_head_dim + d.v_head_dim)), "matrix"))
        t += [
            TensorPlan(b + "attn_output.weight", (d.n_head * d.v_head_dim, d.n_embd), "matrix"),
            TensorPlan(b + "ffn_norm.weight", (d.n_embd,), "norm"),
        ]
        if i < d.n_dense:
            t += [
                TensorPlan(b + "ffn_gate.weight", (d.n_embd, d.n_ff), "matrix"),
                TensorPlan(b + "ffn_down.weight", (d.n_ff, d.n_embd), "matrix"),
                TensorPlan(b + "ffn_up.weight", (d.n_embd, d.n_ff), "matrix"),
            ]
        else:
            sh = d.n_ff_exp * d.n_expert_shared
            t += [
                TensorPlan(b + "ffn_gate_inp.weight", (d.n_embd, d.n_expert), "router"),
                TensorPlan(b + "exp_probs_b.bias", (d.n_expert,), "bias"),
                TensorPlan(b + "ffn_gate_exps.weight", (d.n_embd, d.n_ff_exp, d.n_expert), "matrix"),
                TensorPlan(b + "ffn_down_exps.weight", (d.n_ff_exp, d.n_embd, d.n_expert), "matrix"),
                TensorPlan(b + "ffn_up_exps.weight", (d.n_embd, d.n_ff_exp, d.n_expert), "matrix"),
                TensorPlan(b + "ffn_gate_shexp.weight", (d.n_embd, sh), "matrix"),
                TensorPlan(b + "ffn_down_shexp.weight", (sh, d.n_embd), "matrix"),
                TensorPlan(b + "ffn_up_shexp.weight", (d.n_embd, sh), "matrix"),
            ]
    t += [
        TensorPlan("output_norm.weight", (d.n_embd,), "norm"),
        TensorPlan("output.weight", (d.n_embd, n_vocab), "matrix"),
    ]
    return t


def moe_tensors(d: MoeDims, n_vocab: int) -> list[TensorPlan]:
    """The tensors llama.cpp's llama loader asks for when the model has experts (Mixtral's layout)."""
    hd = d.head_dim
    t = [TensorPlan("token_embd.weight", (d.n_embd, n_vocab), "matrix")]
    for i in range(d.n_layer):
        b = f"blk.{i}."
        t += [
            TensorPlan(b + "attn_norm.weight", (d.n_embd,), "norm"),
            TensorPlan(b + "attn_q.weight", (d.n_embd, d.n_head * hd), "matrix"),
            TensorPlan(b + "attn_k.weight", (d.n_embd, d.n_head_kv * hd), "matrix"),
            TensorPlan(b + "attn_v.weight", (d.n_embd, d.n_head_kv * hd), "matrix"),
            TensorPlan(b + "attn_output.weight", (d.n_head * hd, d.n_embd), "matrix"),
            TensorPlan(b + "ffn_norm.weight", (d.n_embd,), "norm"),
            TensorPlan(b + "ffn_gate_inp.weight", (d.n_embd, d.n_expert), "router"),
            TensorPlan(b + "ffn_gate_exps.weight", (d.n_embd, d.n_ff, d.n_expert), "matrix"),
            TensorPlan(b + "ffn_down_exps.weight", (d.n_ff, d.n_embd, d.n_expert), "matrix"),
            TensorPlan(b + "ffn_up_exps.weight", (d.n_embd, d.n_ff, d.n_expert), "matrix"),
        ]
    t += [
        TensorPlan("output_norm.weight", (d.n_embd,), "norm"),
        TensorPlan("output.weight", (d.n_embd, n_vocab), "matrix"),
    ]
    return t


def _values(plan: TensorPlan, seed: int) -> np.ndarray:
    """Seeded per tensor name, so a tensor's values do not depend on the others or their order."""
    rng = np.random.default_rng([seed, zlib.crc32(plan.name.encode())])
    shape = tuple(reversed(plan.ne))  # numpy order
    if plan.kind == "norm":
        return (1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    if plan.kind == "bias":
        return (0.01 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    scale = np.float32(plan.ne[0] ** -0.5)  # unit-variance outputs for unit-variance inputs
    if plan.kind == "router":
        x = rng.standard_normal(shape, dtype=np.float32) * scale
        x += np.copysign(np.float32(1e-3) * scale, x)  # never exactly zero
        return x
    return _random_f16(rng, shape, scale)


def _random_f16(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Random F16 values built from random bits: sign and mantissa uniform, exponent in 4 steps.

    Magnitudes lie in [scale/8, 2*scale) and are never zero (the root mean square is about
    0.9 * scale). Five times faster than drawing normals and converting them, which matters
    for the bench preset's 2e9 weights.
    """
    top = 15 + round(float(np.log2(scale)))  # biased exponent of the largest magnitudes
    bits = rng.integers(0, 1 << 16, size=shape, dtype=np.uint16)
    exponent = bits >> np.uint16(10)
    exponent &= np.uint16(3)
    np.subtract(np.uint16(top), exponent, out=exponent)
    exponent <<= np.uint16(10)
    bits &= np.uint16(0x83FF)  # keep sign and mantissa
    bits |= exponent
    return bits.view(np.float16)


def _dtype(plan: TensorPlan) -> type:
    return np.float16 if plan.kind == "matrix" else np.float32


def _add_tokenizer(w: gguf.GGUFWriter, pre: str, chat_template: str | None) -> int:
    v = tokenizer.build_vocab()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(list(v.tokens))
    w.add_token_types(list(v.token_types))
    w.add_token_merges(list(v.merges))
    w.add_bos_token_id(v.bos_id)
    w.add_eos_token_id(v.eos_id)
    w.add_pad_token_id(v.pad_id)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    if chat_template:
        w.add_chat_template(chat_template)
    return len(v.tokens)


def _write(w: gguf.GGUFWriter, path: Path, plans: list[TensorPlan], seed: int) -> None:
    for p in plans:
        dtype = _dtype(p)
        nbytes = int(np.prod(p.ne)) * np.dtype(dtype).itemsize
        w.add_tensor_info(p.name, tuple(reversed(p.ne)), np.dtype(dtype), nbytes)
    w.open_output_file(path)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for p in plans:
        w.write_tensor_data(_values(p, seed))
    w.close()


def write_deepseek2(path: Path, d: DeepSeekDims, layout: str, *, seed: int, name: str) -> None:
    """An F16 deepseek2 GGUF with the metadata llama.cpp's converter writes for DeepSeek-R1.

    layout "original": the January-2025 files (attn_kv_b; key/value length per head, n_head KV heads).
    layout "mla": the converter since 2025-06 (attn_k_b/attn_v_b; *_mla keys; one KV head of
    kv_lora_rank + rope dims).
    """
    w = gguf.GGUFWriter(None, "deepseek2")
    w.add_name(name)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    n_vocab = _add_tokenizer(w, "deepseek-v3", tokenizer.CHAT_TEMPLATE)
    w.add_vocab_size(n_vocab)
    add_deepseek2_hparams(w, d, layout)
    _write(w, path, deepseek2_tensors(d, layout, n_vocab), seed)


def add_deepseek2_hparams(w: gguf.GGUFWriter, d: DeepSeekDims, layout: str) -> None:
    """The deepseek2 hyperparameter keys llama.cpp's converter writes, for either KV layout."""
    w.add_block_count(d.n_layer)
    w.add_context_length(d.context_length)
    w.add_embedding_length(d.n_embd)
    w.add_feed_forward_length(d.n_ff)
    w.add_head_count(d.n_head)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_expert_used_count(d.n_expert_used)
    w.add_leading_dense_block_count(d.n_dense)
    w.add_q_lora_rank(d.q_lora_rank)
    w.add_kv_lora_rank(d.kv_lora_rank)
    if layout == "mla":
        w.add_head_count_kv(1)
        w.add_key_length(d.kv_lora_rank + d.qk_rope_head_dim)
        w.add_value_length(d.kv_lora_rank)
        w.add_key_length_mla(d.key_length)
        w.add_value_length_mla(d.v_head_dim)
    else:
        w.add_head_count_kv(d.n_head)
        w.add_key_length(d.key_length)
        w.add_value_length(d.v_head_dim)
    w.add_expert_feed_forward_length(d.n_ff_exp)
    w.add_expert_count(d.n_expert)
    w.add_expert_shared_count(d.n_expert_shared)
    w.add_expert_weights_scale(d.expert_weights_scale)
    w.add_expert_weights_norm(True)
    w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
    w.add_rope_dimension_count(d.qk_rope_head_dim)
    w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    w.add_rope_scaling_factor(d.rope_scaling_factor)
    w.add_rope_scaling_orig_ctx_len(d.rope_original_context)
    w.add_rope_scaling_yarn_log_mul(0.1)


def write_moe(path: Path, d: MoeDims, *, seed: int, name: str) -> None:
    """An F16 Mixtral-shaped GGUF (architecture llama with experts)."""
    w = gguf.GGUFWriter(None, "llama")
    w.add_name(name)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    n_vocab = _add_tokenizer(w, "llama-bpe", None)
    w.add_vocab_size(n_vocab)
    w.add_block_count(d.n_layer)
    w.add_context_length(d.context_length)
    w.add_embedding_length(d.n_embd)
    w.add_feed_forward_length(d.n_ff)
    w.add_head_count(d.n_head)
    w.add_head_count_kv(d.n_head_kv)
    w.add_rope_dimension_count(d.head_dim)
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_expert_count(d.n_expert)
    w.add_expert_used_count(d.n_expert_used)
    _write(w, path, moe_tensors(d, n_vocab), seed)
