"""Shapes of the generated test models: DeepSeek-R1-like (deepseek2) and a Mixtral-like MoE.

Every matrix row length (ggml ne[0]) that llama-quantize turns into a K- or IQ-quant is a
multiple of 256, as those block formats need; the one exception is `attn_k_b` (ne[0] =
qk_nope_head_dim = 128, as in DeepSeek-R1), which llama-quantize stores in a fallback type
exactly as it does for the real model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

KvLayout = Literal["original", "mla"]
KV_LAYOUTS: tuple[str, ...] = ("original", "mla")


@dataclass(frozen=True)
class DeepSeekDims:
    """Hyperparameters named as in DeepSeek-R1's config.json (R1 itself in the comments)."""

    n_layer: int            # num_hidden_layers (61)
    n_dense: int            # first_k_dense_replace (3)
    n_embd: int             # hidden_size (7168)
    n_head: int             # num_attention_heads (128)
    q_lora_rank: int        # (1536)
    kv_lora_rank: int       # (512)
    qk_nope_head_dim: int   # (128)
    qk_rope_head_dim: int   # (64)
    v_head_dim: int         # (128)
    n_ff: int               # intermediate_size of the dense layers (18432)
    n_ff_exp: int           # moe_intermediate_size (2048)
    n_expert: int           # n_routed_experts (256)
    n_expert_used: int      # num_experts_per_tok (8)
    n_expert_shared: int    # n_shared_experts (1)
    context_length: int     # max_position_embeddings (163840)
    rope_scaling_factor: float = 4.0        # yarn factor (40)
    rope_original_context: int = 4096       # original_max_position_embeddings (4096)
    expert_weights_scale: float = 2.5       # routed_scaling_factor (2.5)

    @property
    def key_length(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim


@dataclass(frozen=True)
class MoeDims:
    """A Mixtral-shaped MoE (llama architecture with routed experts, grouped-query attention)."""

    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_ff: int               # per expert
    n_expert: int
    n_expert_used: int
    context_length: int

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


DEEPSEEK_PRESETS: dict[str, DeepSeekDims] = {
    # ~25 MB in F16, ~8 MB in Q4_K_M: unit and integration tests.
    "tiny": DeepSeekDims(
        n_layer=4, n_dense=1, n_embd=256, n_head=2, q_lora_rank=256, kv_lora_rank=256,
        qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
        n_ff=512, n_ff_exp=256, n_expert=16, n_expert_used=4, n_expert_shared=1,
        context_length=16384,
    ),
    # R1's own attention sizes (kv_lora_rank 512 + rope 64 = 576-wide MLA keys, heads a multiple of 4), the rest
    # tiny: ik_llama.cpp refuses an MLA-layout file whose attention is not R1's ("Detected incompatible DeepSeek
    # model without a known way to fix it"), so tests that run both engines on the MLA layout use this one.
    "small-mla": DeepSeekDims(
        n_layer=4, n_dense=1, n_embd=256, n_head=4, q_lora_rank=256, kv_lora_rank=512,
        qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
        n_ff=512, n_ff_exp=256, n_expert=16, n_expert_used=4, n_expert_shared=1,
        context_length=16384,
    ),
    # ~1.9e9 parameters, ~1.1 GB in Q4_K_M: benchmarks.
    "bench": DeepSeekDims(
        n_layer=12, n_dense=3, n_embd=1024, n_head=16, q_lora_rank=512, kv_lora_rank=512,
        qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
        n_ff=2816, n_ff_exp=1024, n_expert=64, n_expert_used=8, n_expert_shared=1,
        context_length=32768, rope_scaling_factor=8.0,
    ),
}

MOE_PRESETS: dict[str, MoeDims] = {
    "tiny": MoeDims(n_layer=4, n_embd=256, n_head=8, n_head_kv=2, n_ff=256, n_expert=8, n_expert_used=2,
                    context_length=8192),
}
