"""The memory model: what llama.cpp (b11434) allocates for a model at a context, buffer by buffer.

Three buffers, named as llama.cpp logs them with `-lv 4`:

    load_tensors:   CPU_Mapped model buffer size =    92.10 MiB      weights (exact tensor bytes here)
    llama_kv_cache: size =  180.00 MiB (  8192 cells,  30 layers,  1/1 seqs), K (f16): ..., V (f16): ...
    sched_reserve:        CPU compute buffer size =   109.64 MiB      activations of the worst-case ubatch

KV cache (src/llama-kv-cache.cpp, llama-context.cpp): n_ctx is padded to 256 cells (per sequence
when slots do not share one cache); each layer with attention stores K rows of
n_embd_head_k * n_head_kv elements and V rows of n_embd_head_v * n_head_kv, in the cache types'
row size (ggml_row_size). deepseek2 files without MLA keys keep n_head_kv = n_head (K 128*192, V
128*128 for R1); MLA files cache only kv_lora_rank + rope (576 for R1) with no V at all (V is a
view of K since early 2026, b11434 included).

Compute buffer: llama.cpp reserves the prompt-processing graph for T = min(n_ctx, n_ubatch)
tokens with T outputs, and ggml-alloc keeps the peak of the tensors alive at once. The peak is
one of a few phases, each a count of f32 values per token (derived from the graph dumps of
GGML_SCHED_DEBUG=2 and checked against llama.cpp's reservation, see benchmarks/memory_model.py):

    output      n_vocab + 5 n_embd                        logits of T outputs (SmolLM2, R1 with a full vocabulary)
    dense FFN   3 n_ff + 4 n_embd                          gate, up and their SwiGLU
    MoE         max(3 n_ff_exp n_used + 5.25 n_embd, 2 n_embd n_used + 2 n_embd)
    attention   standard: (2 n_head + 2 n_head_kv) head_dim + 5 n_embd
                deepseek2 original: n_head (2 K + (K - rope + V) + 2 V + rope) + 5 n_embd
                deepseek2 MLA: n_head (K_mla + 2 kv_lora + 2 rope) + 5 n_embd
                without flash attention: the KQ matrix n_kv x T x n_head f32, plus 3/4 of the above (all for MLA)

plus the attention mask, an input alive throughout: n_kv x T in f16 with flash attention, f32
without. Figures are estimates; the accuracy table lives in docs/plan.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from r1run.errors import BadInput
from r1run.gguf.model import ModelInfo

CTX_PAD = 256  # llama-context.cpp: cparams.n_ctx = GGML_PAD(n_ctx, 256)

# llama.cpp's accepted -ctk/-ctv types (common/arg.cpp kv_cache_types): name -> (block elements, block bytes)
KV_CACHE_TYPES: dict[str, tuple[int, int]] = {
    "f32": (1, 4), "f16": (1, 2), "bf16": (1, 2), "q8_0": (32, 34), "q4_0": (32, 18), "q4_1": (32, 20),
    "iq4_nl": (32, 18), "q5_0": (32, 22), "q5_1": (32, 24),
}

# Weight types the CPU backend keeps a second, repacked copy of (ggml-cpu/repack.cpp,
# ggml_repack_get_optimal_repack_type) when the tensor is a matmul weight with ne[1] % 8 == 0.
def kv_type(name: str) -> str:
    t = name.lower()
    if t not in KV_CACHE_TYPES:
        raise BadInput(f"unknown KV cache type {name!r}", f"choose one of {', '.join(KV_CACHE_TYPES)}")
    return t


def row_bytes(type_name: str, n: int) -> int:
    block, size = KV_CACHE_TYPES[type_name]
    if n % block:
        raise BadInput(f"KV cache type {type_name} needs rows that are multiples of {block} elements (this model "
                       f"has {n})", "choose f16 or q8_0")
    return n // block * size


@dataclass(frozen=True)
class ContextSpec:
    """How llama.cpp will be run: what the memory model needs besides the model."""

    ctx: int
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    ubatch: int = 512
    flash_attn: bool = True
    parallel: int = 1           # slots (-np); each gets ctx / parallel cells unless the cache is unified
    kv_unified: bool = False

    def __post_init__(self) -> None:
        if self.ctx <= 0:
            raise BadInput(f"context must be a positive number of tokens, not {self.ctx}", "e.g. --ctx 8192")
        if self.ubatch <= 0 or self.parallel <= 0:
            raise BadInput("ubatch and parallel must be positive")
        object.__setattr__(self, "cache_type_k", kv_type(self.cache_type_k))
        object.__setattr__(self, "cache_type_v", kv_type(self.cache_type_v))

    @property
    def cells(self) -> int:
        """KV cells llama.cpp allocates: n_ctx padded to 256 (per sequence when not unified)."""
        n = -(-self.ctx // CTX_PAD) * CTX_PAD
        if self.kv_unified or self.parallel == 1:
            return n
        per_seq = -(-(n // self.parallel) // CTX_PAD) * CTX_PAD
        return per_seq * self.parallel

    @property
    def tokens(self) -> int:
        """Tokens of the worst-case ubatch llama.cpp reserves the compute graph for."""
        return min(self.cells, self.ubatch)


@dataclass(frozen=True)
class Dims:
    """The hyperparameters the memory model uses, read from ModelInfo (generic defaults when missing)."""

    arch: str
    layout: str                 # mla | original | standard
    n_layer: int
    n_embd: int
    n_vocab: int
    n_head: int
    n_head_kv: list[int]        # per layer
    k_elems: list[int]          # K cache elements per token, per layer (0: no KV)
    v_elems: list[int]
    n_ff: int
    n_ff_exp: int
    n_expert: int
    n_expert_used: int
    head_dim_k: int
    head_dim_v: int
    rope: int
    kv_lora: int
    generic: bool               # unknown architecture: a generic reading
    notes: tuple[str, ...] = ()


def _largest(value: int | list[int] | None) -> int:
    """A hyperparameter that may be per layer: its largest value (0 when absent)."""
    if isinstance(value, list):
        return max(value, default=0)
    return value or 0


def _int_or(value: int | list[int] | None, default: int) -> int:
    return value if isinstance(value, int) else default


def dims_of(info: ModelInfo) -> Dims:
    hp = info.hparams
    notes: list[str] = []
    n_layer = hp.block_count
    emb = next((t for t in info.tensors if t.name == "token_embd.weight"), None)
    n_embd = hp.embedding_length or (emb.shape[0] if emb else 0)
    n_vocab = hp.vocab_size or (emb.shape[1] if emb and len(emb.shape) > 1 else 0)
    heads = [hp.at_layer("head_count", i) or 0 for i in range(n_layer)]
    n_head = max(heads) if heads else 0
    generic = not info.architecture_known or not n_embd or not n_head
    if generic:
        notes.append(f"architecture {info.architecture!r} is not one r1run knows: KV cache and compute buffer "
                     "are a generic estimate")
        n_head = n_head or max(1, n_embd // 128)
        heads = [n_head] * n_layer
    kv_heads = [_int_or(hp.at_layer("head_count_kv", i), heads[i]) for i in range(n_layer)]
    hd_k = hp.key_length or (n_embd // n_head if n_head else 0)
    hd_v = hp.value_length or hd_k
    rope = hp.rope_dimension_count or 0
    kv_lora = hp.kv_lora_rank or 0
    layout = info.kv_layout
    if info.architecture.startswith("deepseek2") and layout == "mla":
        # MLA: key_length holds kv_lora_rank + rope and head_count_kv is 1; no V rows (b11434)
        k_elems = [hd_k * kv_heads[i] for i in range(n_layer)]
        v_elems = [0] * n_layer
    else:
        k_elems = [hd_k * kv_heads[i] for i in range(n_layer)]
        v_elems = [hd_v * kv_heads[i] for i in range(n_layer)]
    n_ff = _largest(hp.feed_forward_length) or 4 * n_embd
    return Dims(
        arch=info.architecture, layout=layout, n_layer=n_layer, n_embd=n_embd, n_vocab=n_vocab, n_head=n_head,
        n_head_kv=kv_heads, k_elems=k_elems, v_elems=v_elems, n_ff=n_ff,
        n_ff_exp=_largest(hp.expert_feed_forward_length) or (n_ff if info.is_moe else 0),
        n_expert=hp.expert_count or 0, n_expert_used=hp.expert_used_count or 0,
        head_dim_k=hp.key_length_mla if layout == "mla" and hp.key_length_mla else hd_k,
        head_dim_v=hp.value_length_mla if layout == "mla" and hp.value_length_mla else hd_v,
        rope=rope, kv_lora=kv_lora, generic=generic, notes=tuple(notes),
    )


@dataclass(frozen=True)
class KvEstimate:
    total: int
    k: int
    v: int
    cells: int
    layers: int                 # layers holding a cache
    per_layer: list[int]        # bytes per layer (0 for layers without a cache)
    bytes_per_token: int        # over all layers, at the chosen types


def kv_cache(info: ModelInfo, spec: ContextSpec, dims: Dims | None = None) -> KvEstimate:
    d = dims or dims_of(info)
    cells = spec.cells
    k_rows = [row_bytes(spec.cache_type_k, e) if e else 0 for e in d.k_elems]
    v_rows = [row_bytes(spec.cache_type_v, e) if e else 0 for e in d.v_elems]
    per_layer = [(k + v) * cells for k, v in zip(k_rows, v_rows, strict=True)]
    return KvEstimate(total=sum(per_layer), k=sum(k_rows) * cells, v=sum(v_rows) * cells, cells=cells,
                      layers=sum(1 for e in d.k_elems if e), per_layer=per_layer,
                      bytes_per_token=sum(k_rows) + sum(v_rows))


@dataclass(frozen=True)
class ComputeEstimate:
    total: int                  # the compute buffer of one device running the whole graph
    phase: str                  # which part of the graph sets the peak
    mask: int                   # the attention mask (input), included in total
    output: int                 # llama_context's host output buffer (logits of one token per slot), separate


def compute_buffer(info: ModelInfo, spec: ContextSpec, dims: Dims | None = None) -> ComputeEstimate:
    d = dims or dims_of(info)
    T, n_kv, E = spec.tokens, spec.cells, d.n_embd
    phases: dict[str, float] = {"output": d.n_vocab + 5 * E}
    dense_layers = [layer for layer in info.layers if not layer.moe]
    if dense_layers:
        phases["dense FFN"] = 3 * d.n_ff + 4 * E
    if info.is_moe and d.n_expert_used:
        fu = d.n_ff_exp * d.n_expert_used
        phases["MoE"] = max(3 * fu + 5.25 * E, 2 * E * d.n_expert_used + 2 * E)
    H = d.n_head
    attn: float  # elements per token of the attention phase
    if d.layout == "mla":
        attn = H * (d.head_dim_k + 2 * d.kv_lora + 2 * d.rope) + 5 * E
    elif d.layout == "original":
        K, V, R = d.head_dim_k, d.head_dim_v, d.rope
        attn = H * (2 * K + (K - R + V) + 2 * V + R) + 5 * E
    else:
        hkv = max(d.n_head_kv) if d.n_head_kv else H
        attn = (2 * H + 2 * hkv) * max(d.head_dim_k, d.head_dim_v) + 5 * E
    if not spec.flash_attn:
        # the KQ matrix (f32) replaces the fused kernel; fewer of the other attention tensors are alive beside it
        # (measured: all of them with MLA, about three quarters otherwise)
        attn *= 1.0 if d.layout == "mla" else 0.75
    phases["attention"] = attn
    attn_extra = 0 if spec.flash_attn else n_kv * T * H * 4
    values = {k: int(v * T * 4) for k, v in phases.items()}
    values["attention"] += attn_extra
    phase = max(values, key=values.__getitem__)
    mask = n_kv * T * (2 if spec.flash_attn else 4)
    slots = max(1, spec.parallel)
    return ComputeEstimate(total=values[phase] + mask, phase=phase, mask=mask, output=d.n_vocab * slots * 4)
