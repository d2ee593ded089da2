"""ModelInfo: what r1run knows about a model from its GGUF headers (the schema of `r1run inspect --json`).

Bytes are exact tensor data sizes (elements / block size * type size), summed across shards.
See docs/inspect.md for the field-by-field description; `SCHEMA_VERSION` changes only when a
field is removed or changes meaning.
"""

from __future__ import annotations

import json
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict

SCHEMA_VERSION = 1

KVLayout = Literal["mla", "original", "standard"]
PerLayer = Union[int, list[int], None]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ShardInfo(_Frozen):
    path: str
    split_no: int               # 0-based, as in split.no
    file_bytes: int
    header_bytes: int           # where the tensor data starts (header + padding)
    tensor_count: int
    tensor_bytes: int


class HParams(_Frozen):
    """Hyperparameters from `{arch}.*` metadata, as stored (None when the file has no such key)."""

    block_count: int
    context_length: Optional[int] = None
    embedding_length: Optional[int] = None
    feed_forward_length: PerLayer = None
    expert_feed_forward_length: Optional[int] = None
    head_count: PerLayer = None
    head_count_kv: PerLayer = None
    key_length: Optional[int] = None
    value_length: Optional[int] = None
    key_length_mla: Optional[int] = None
    value_length_mla: Optional[int] = None
    q_lora_rank: Optional[int] = None
    kv_lora_rank: Optional[int] = None
    rope_dimension_count: Optional[int] = None
    expert_count: Optional[int] = None
    expert_used_count: Optional[int] = None
    expert_shared_count: Optional[int] = None
    leading_dense_block_count: Optional[int] = None
    nextn_predict_layers: Optional[int] = None
    sliding_window: Optional[int] = None
    vocab_size: Optional[int] = None

    def at_layer(self, name: str, layer: int) -> Optional[int]:
        """A per-layer value (head_count, head_count_kv, feed_forward_length) for one layer."""
        v = getattr(self, name)
        if isinstance(v, list):
            return v[layer] if layer < len(v) else None
        return v


class TypeStats(_Frozen):
    tensors: int
    params: int
    bytes: int


class LayerInfo(_Frozen):
    """One `blk.N.*` layer, summed over every shard holding a part of it."""

    index: int
    tensor_count: int
    params: int
    bytes: int
    expert_bytes: int           # routed experts: ffn_{gate,up,down,gate_up}_exps
    shared_expert_bytes: int    # ffn_*_shexp (part of non_expert_bytes)
    non_expert_bytes: int       # everything else: attention, norms, router, shared experts, dense FFN
    moe: bool
    shards: list[int]           # split.no of each shard holding its tensors (several when it straddles)
    types: dict[str, int]       # ggml type name -> bytes


class TensorEntry(_Frozen):
    name: str
    type: str
    shape: list[int]            # GGUF order: ne0 (row length) first
    params: int
    bytes: int
    shard: int
    offset: int                 # relative to the shard's data section
    layer: Optional[int]
    expert: bool                # a routed-expert tensor (ffn_*_exps)


class ModelInfo(_Frozen):
    schema_version: int = SCHEMA_VERSION
    source: str                 # first file (or hf://repo/file for a remote read)
    name: Optional[str]
    architecture: str
    architecture_known: bool    # False: sizes are exact, layer hyperparameters a generic reading
    file_type: Optional[str]    # e.g. IQ1_S, Q4_K_M (general.file_type)
    file_type_id: Optional[int]
    shards: list[ShardInfo]
    hparams: HParams
    kv_layout: KVLayout
    parameter_count: int
    tensor_count: int
    tensor_bytes: int
    file_bytes: int
    bits_per_weight: float
    expert_bytes: int
    shared_expert_bytes: int
    non_expert_bytes: int       # everything but routed experts, non-layer tensors included
    non_layer_bytes: int
    active_bytes_per_token: int  # bytes a decode step reads: see docs/inspect.md
    non_layer_tensors: dict[str, int]
    tensor_types: dict[str, TypeStats]
    layers: list[LayerInfo]
    tensors: list[TensorEntry]
    warnings: list[str]

    @property
    def is_moe(self) -> bool:
        return self.expert_bytes > 0

    @property
    def recurrent_layers(self) -> int:
        """Layers that carry a recurrent state instead of (or beside) attention: state-space and linear-attention
        layers (`ssm_*` tensors: Mamba, Qwen3-Next's Gated DeltaNet; `time_mix_*`: RWKV)."""
        return len({t.layer for t in self.tensors if t.layer is not None
                    and t.name.split(".", 2)[-1].startswith(("ssm_", "time_mix_"))})

    def to_json(self, *, include_tensors: bool = False, indent: int | None = 2) -> str:
        """The documented JSON form; `tensors` is null unless include_tensors."""
        data = self.model_dump(mode="json")
        data = {"schema": f"r1run.inspect/{data.pop('schema_version')}", **data}  # r1run's JSON convention
        if not include_tensors:
            data["tensors"] = None

        return json.dumps(data, indent=indent)
