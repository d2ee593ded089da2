"""Turn a checked set of GGUF headers into a ModelInfo: hyperparameters, bytes per layer, KV layout.

Tensor names follow llama.cpp's (gguf-py `TENSOR_NAMES`), e.g. for DeepSeek-R1:
    token_embd.weight, output_norm.weight, output.weight                      non-layer
    blk.0.attn_q_a.weight, blk.0.attn_kv_a_mqa.weight, blk.0.ffn_down.weight  dense layers 0-2
    blk.3.ffn_gate_exps.weight, blk.3.ffn_up_shexp.weight, blk.3.ffn_gate_inp.weight
    blk.N.attn_kv_b.weight                    original KV layout (January 2025 files)
    blk.N.attn_k_b.weight, blk.N.attn_v_b.weight   MLA layout (with {arch}.attention.key_length_mla)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from r1run.errors import GGUFError
from r1run.gguf.model import HParams, KVLayout, LayerInfo, ModelInfo, ShardInfo, TensorEntry, TypeStats
from r1run.gguf.reader import ArrayValue, Header, Value
from r1run.gguf.shards import check_shard_set

LAYER_RE = re.compile(r"^blk\.(\d+)\.")
EXPERT_RE = re.compile(r"\.ffn_\w+?_(?:ch)?exps\.")
SHARED_EXPERT_RE = re.compile(r"\.ffn_\w+?_shexp\.")
MLA_TENSORS = re.compile(r"\.attn_[kv]_b\.")
ORIGINAL_TENSORS = re.compile(r"\.attn_kv_b\.")
TOKEN_EMBD = "token_embd.weight"
OUTPUT = "output.weight"
MAX_LAYERS = 1 << 16  # R1 has 61; a larger count is a corrupt header, not a model

_INT_KEYS = (
    "context_length", "embedding_length", "expert_feed_forward_length", "expert_count", "expert_used_count",
    "expert_shared_count", "leading_dense_block_count", "nextn_predict_layers", "vocab_size",
)
_ATTN_INT_KEYS = ("key_length", "value_length", "key_length_mla", "value_length_mla", "q_lora_rank", "kv_lora_rank",
                  "sliding_window")
_PER_LAYER_KEYS = {"feed_forward_length": "{a}.feed_forward_length", "head_count": "{a}.attention.head_count",
                   "head_count_kv": "{a}.attention.head_count_kv"}


def model_from_headers(headers: Sequence[Header], source: str | None = None) -> ModelInfo:
    """Check the shard set, then summarise it; headers in shard order, the first holding the metadata."""
    if not headers:
        raise GGUFError("no GGUF files given")
    check_shard_set(headers)
    first = headers[0]
    arch = first.architecture or ""
    warnings: list[str] = []
    known = _known_architecture(arch)
    if not known:
        warnings.append(f"unknown architecture {arch!r}: sizes are exact, but layer hyperparameters and the KV "
                        "cache are a generic estimate")

    tensors: list[TensorEntry] = []
    for shard_no, h in enumerate(headers):
        for t in h.tensors:
            m = LAYER_RE.match(t.name)
            tensors.append(TensorEntry(
                name=t.name, type=t.type_name, shape=list(t.shape), params=t.n_elements, bytes=t.n_bytes,
                shard=shard_no, offset=t.offset, layer=int(m[1]) if m else None,
                expert=bool(EXPERT_RE.search(t.name)),
            ))

    hp = _hparams(first, arch, tensors, warnings)
    layers = _layers(tensors, hp.block_count)
    params = sum(t.params for t in tensors)
    total = sum(t.bytes for t in tensors)
    expert = sum(t.bytes for t in tensors if t.expert)
    shared = sum(t.bytes for t in tensors if SHARED_EXPERT_RE.search(t.name))
    non_layer = {t.name: t.bytes for t in tensors if t.layer is None}
    return ModelInfo(
        source=source or first.name,
        name=_str(first.get("general.name")),
        architecture=arch,
        architecture_known=known,
        file_type=_file_type_name(first.get("general.file_type")),
        file_type_id=_int(first.get("general.file_type")),
        shards=[ShardInfo(path=h.name, split_no=i, file_bytes=h.file_size, header_bytes=h.data_offset,
                          tensor_count=len(h.tensors), tensor_bytes=sum(t.n_bytes for t in h.tensors))
                for i, h in enumerate(headers)],
        hparams=hp,
        kv_layout=_kv_layout(tensors, hp),
        parameter_count=params,
        tensor_count=len(tensors),
        tensor_bytes=total,
        file_bytes=sum(h.file_size for h in headers),
        bits_per_weight=round(total * 8 / params, 4) if params else 0.0,
        expert_bytes=expert,
        shared_expert_bytes=shared,
        non_expert_bytes=total - expert,
        non_layer_bytes=sum(non_layer.values()),
        active_bytes_per_token=_active_bytes(total, expert, non_layer, hp),
        non_layer_tensors=non_layer,
        tensor_types=_type_stats(tensors),
        layers=layers,
        tensors=tensors,
        warnings=warnings,
    )


def _known_architecture(arch: str) -> bool:
    from gguf.constants import MODEL_ARCH_NAMES  # noqa: PLC0415  (heavy, optional: see ggml_types._tables)

    return arch in set(MODEL_ARCH_NAMES.values())


def _int(v: Value | None) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str(v: Value | None) -> str | None:
    return v if isinstance(v, str) else None


def _per_layer(v: Value | None) -> int | list[int] | None:
    if isinstance(v, ArrayValue):
        vals = v.values
        if vals is not None and all(isinstance(x, int) and not isinstance(x, bool) for x in vals):
            return list(vals)
        return None
    return _int(v)


def _hparams(h: Header, arch: str, tensors: list[TensorEntry], warnings: list[str]) -> HParams:
    values: dict[str, object] = {k: _int(h.get(f"{arch}.{k}")) for k in _INT_KEYS}
    values.update({k: _int(h.get(f"{arch}.attention.{k}")) for k in _ATTN_INT_KEYS})
    values.update({k: _per_layer(h.get(key.format(a=arch))) for k, key in _PER_LAYER_KEYS.items()})
    values["rope_dimension_count"] = _int(h.get(f"{arch}.rope.dimension_count"))
    if values["vocab_size"] is None:
        tokens = h.get("tokenizer.ggml.tokens")
        values["vocab_size"] = tokens.length if isinstance(tokens, ArrayValue) else None
    seen_layers = {t.layer for t in tensors if t.layer is not None}
    n_from_tensors = max(seen_layers) + 1 if seen_layers else 0
    block_count = _int(h.get(f"{arch}.block_count"))
    if block_count is None:
        block_count = n_from_tensors
        warnings.append(f"no {arch}.block_count in the metadata: counted {block_count} layers from tensor names")
    negative = [f"{arch}.{k}" for k, v in [("block_count", block_count), *values.items()]
                if isinstance(v, int) and v < 0 or isinstance(v, list) and any(isinstance(x, int) and x < 0 for x in v)]
    if negative:
        raise GGUFError(f"{h.name}: {negative[0]} is negative in the header",
                        "the file is corrupt or was written wrongly; r1run cannot plan with it")
    if max(block_count, n_from_tensors) > MAX_LAYERS:
        raise GGUFError(f"{h.name}: header claims {max(block_count, n_from_tensors)} layers",
                        "the file is corrupt or not a model r1run can read")
    if n_from_tensors > block_count:
        warnings.append(f"{arch}.block_count is {block_count} but tensors name {n_from_tensors} layers")
    return HParams.model_validate({"block_count": block_count, **values})


@dataclass
class _LayerSums:
    tensor_count: int = 0
    params: int = 0
    bytes: int = 0
    expert_bytes: int = 0
    shared_expert_bytes: int = 0
    shards: set[int] = field(default_factory=set)
    types: dict[str, int] = field(default_factory=dict)


def _layers(tensors: list[TensorEntry], block_count: int) -> list[LayerInfo]:
    n = max([block_count] + [t.layer + 1 for t in tensors if t.layer is not None])
    acc = [_LayerSums() for _ in range(n)]
    for t in tensors:
        if t.layer is None:
            continue
        a = acc[t.layer]
        a.tensor_count += 1
        a.params += t.params
        a.bytes += t.bytes
        if t.expert:
            a.expert_bytes += t.bytes
        elif SHARED_EXPERT_RE.search(t.name):
            a.shared_expert_bytes += t.bytes
        a.shards.add(t.shard)
        a.types[t.type] = a.types.get(t.type, 0) + t.bytes
    return [LayerInfo(index=i, tensor_count=a.tensor_count, params=a.params, bytes=a.bytes,
                      expert_bytes=a.expert_bytes, shared_expert_bytes=a.shared_expert_bytes,
                      non_expert_bytes=a.bytes - a.expert_bytes, moe=a.expert_bytes > 0,
                      shards=sorted(a.shards), types=dict(sorted(a.types.items())))
            for i, a in enumerate(acc)]


def _kv_layout(tensors: list[TensorEntry], hp: HParams) -> KVLayout:
    """mla: attn_k_b/attn_v_b (or key_length_mla); original: attn_kv_b (DeepSeek before MLA); else standard."""
    names = [t.name for t in tensors if t.layer is not None]
    if hp.key_length_mla is not None or any(MLA_TENSORS.search(n) for n in names):
        return "mla"
    if any(ORIGINAL_TENSORS.search(n) for n in names):
        return "original"
    return "standard"


def _active_bytes(total: int, expert: int, non_layer: dict[str, int], hp: HParams) -> int:
    """Bytes one decode step reads: routed experts pro rata, and the embedding table only when it is
    also the output matrix (tied embeddings); otherwise a step reads one row of it."""
    used, count = hp.expert_used_count, hp.expert_count
    routed = expert * used // count if expert and used and count else expert
    token_embd = non_layer.get(TOKEN_EMBD, 0) if OUTPUT in non_layer else 0
    return total - expert - token_embd + routed


def _type_stats(tensors: list[TensorEntry]) -> dict[str, TypeStats]:
    acc: dict[str, list[int]] = {}
    for t in tensors:
        a = acc.setdefault(t.type, [0, 0, 0])
        a[0] += 1
        a[1] += t.params
        a[2] += t.bytes
    order = sorted(acc.items(), key=lambda kv: -kv[1][2])
    return {k: TypeStats(tensors=a[0], params=a[1], bytes=a[2]) for k, a in order}


def _file_type_name(v: Value | None) -> str | None:
    ft = _int(v)
    if ft is None:
        return None
    from gguf.constants import LlamaFileType  # noqa: PLC0415  (heavy, optional: see ggml_types._tables)

    guessed = bool(ft & LlamaFileType.GUESSED)
    try:
        name = LlamaFileType(ft & ~LlamaFileType.GUESSED).name
    except ValueError:
        return f"type{ft}"
    name = name.removeprefix("MOSTLY_").removeprefix("ALL_")
    return f"{name} (guessed)" if guessed else name
