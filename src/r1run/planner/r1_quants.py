"""DeepSeek-R1's Unsloth quants as SYNTHETIC header-only models, so `plan` works before (and without) a download.

`data/r1_quants.json` lists, per quant, the tensor types of each tensor class; this module turns
them into the GGUF headers llama.cpp's converter would write (real R1 tensor names and shapes,
llama-gguf-split-style shards) and summarises them with the same `model_from_headers` a real file
goes through. The result is labelled synthetic in its warnings; a real header always wins.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

from r1run.errors import BadInput
from r1run.gguf.analyze import model_from_headers
from r1run.gguf.ggml_types import tensor_nbytes
from r1run.gguf.model import ModelInfo
from r1run.gguf.reader import ArrayValue, Header, KeyValue, TensorInfo

ALIGN = 32
SYNTHETIC_NOTE = ("synthetic header: tensor types reconstructed from Unsloth's published recipe and sizes, not read "
                  "from the real file (download it, or let r1run reach the hub, for the exact figures)")
_U32, _F32, _STR, _ARR, _BOOL = 4, 6, 8, 9, 7


@functools.lru_cache(maxsize=1)
def _data() -> dict:
    text = resources.files("r1run.planner").joinpath("data/r1_quants.json").read_text(encoding="utf-8")
    return json.loads(text)


def quant_names() -> list[str]:
    return list(_data()["quants"])


def _types():
    from gguf.constants import GGMLQuantizationType  # noqa: PLC0415  (heavy, optional: see ggml_types._tables)

    return GGMLQuantizationType


def _file_type(name: str) -> int:
    from gguf.constants import LlamaFileType  # noqa: PLC0415  (heavy, optional: see ggml_types._tables)

    return int(LlamaFileType[f"MOSTLY_{name}"])


def _tensors(d: dict, q: dict) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, ne, type) in the order llama.cpp's converter writes R1's tensors."""
    E, H, nv = d["n_embd"], d["n_head"], d["n_vocab"]
    kn, r, vh = d["qk_nope_head_dim"], d["qk_rope_head_dim"], d["v_head_dim"]
    ql, kvl, ff, fe, ne = d["q_lora_rank"], d["kv_lora_rank"], d["n_ff"], d["n_ff_exp"], d["n_expert"]
    o, x = q["other"], q["experts"]
    out: list[tuple[str, tuple[int, ...], str]] = [("token_embd.weight", (E, nv), o["token_embd"])]
    for i in range(d["n_layer"]):
        b = f"blk.{i}."
        out += [(b + "attn_norm.weight", (E,), "F32"), (b + "attn_q_a_norm.weight", (ql,), "F32"),
                (b + "attn_kv_a_norm.weight", (kvl,), "F32"),
                (b + "attn_q_a.weight", (E, ql), o["attn"]), (b + "attn_q_b.weight", (ql, H * (kn + r)), o["attn"]),
                (b + "attn_kv_a_mqa.weight", (E, kvl + r), o["attn"]),
                (b + "attn_kv_b.weight", (kvl, H * (kn + vh)), o["attn_kv_b"]),
                (b + "attn_output.weight", (H * vh, E), o["attn"]), (b + "ffn_norm.weight", (E,), "F32")]
        if i < d["n_dense"]:
            out += [(b + "ffn_gate.weight", (E, ff), o["dense"]), (b + "ffn_down.weight", (ff, E), o["dense_down"]),
                    (b + "ffn_up.weight", (E, ff), o["dense"])]
            continue
        sh = fe * d["n_expert_shared"]
        down = x["down_hi"] if i < d["n_dense"] + x["down_hi_layers"] else x["down"]
        out += [(b + "ffn_gate_inp.weight", (E, ne), "F32"), (b + "exp_probs_b.bias", (ne,), "F32"),
                (b + "ffn_gate_exps.weight", (E, fe, ne), x["gate_up"]),
                (b + "ffn_down_exps.weight", (fe, E, ne), down),
                (b + "ffn_up_exps.weight", (E, fe, ne), x["gate_up"]),
                (b + "ffn_gate_shexp.weight", (E, sh), o["shexp"]), (b + "ffn_down_shexp.weight", (sh, E), o["shexp"]),
                (b + "ffn_up_shexp.weight", (E, sh), o["shexp"])]
    out += [("output_norm.weight", (E,), "F32"), ("output.weight", (E, nv), o["output"])]
    return out


def _kv(key: str, vtype: int, value) -> tuple[str, KeyValue]:
    return key, KeyValue(key, vtype, value)


def _metadata(name: str, d: dict, q: dict) -> dict[str, KeyValue]:
    a = "deepseek2"
    ints = {f"{a}.block_count": d["n_layer"], f"{a}.context_length": d["context_length"],
            f"{a}.embedding_length": d["n_embd"], f"{a}.feed_forward_length": d["n_ff"],
            f"{a}.attention.head_count": d["n_head"], f"{a}.attention.head_count_kv": d["n_head"],
            f"{a}.attention.key_length": d["qk_nope_head_dim"] + d["qk_rope_head_dim"],
            f"{a}.attention.value_length": d["v_head_dim"], f"{a}.attention.q_lora_rank": d["q_lora_rank"],
            f"{a}.attention.kv_lora_rank": d["kv_lora_rank"], f"{a}.rope.dimension_count": d["qk_rope_head_dim"],
            f"{a}.expert_feed_forward_length": d["n_ff_exp"], f"{a}.expert_count": d["n_expert"],
            f"{a}.expert_used_count": d["n_expert_used"], f"{a}.expert_shared_count": d["n_expert_shared"],
            f"{a}.leading_dense_block_count": d["n_dense"], f"{a}.vocab_size": d["n_vocab"],
            "general.file_type": _file_type(q["file_type"])}
    kv = dict(_kv(k, _U32, v) for k, v in ints.items())
    kv.update([_kv("general.architecture", _STR, a), _kv("general.name", _STR, name),
               _kv("tokenizer.ggml.tokens", _ARR, ArrayValue(_STR, d["n_vocab"]))])
    return kv


def model_info(quant: str) -> ModelInfo:
    """The synthetic ModelInfo of one of Unsloth's DeepSeek-R1 quants (see the module docstring)."""
    data = _data()
    q = next((v for k, v in data["quants"].items() if k.lower() == quant.lower()), None)
    if q is None:
        raise BadInput(f"no built-in description of DeepSeek-R1 quant {quant!r}; known: {', '.join(quant_names())}",
                       "plan a downloaded file by its path instead")
    key = next(k for k in data["quants"] if k.lower() == quant.lower())
    return _build(key, data["dims"], q)


@functools.lru_cache(maxsize=8)
def _cached(key: str) -> ModelInfo:
    data = _data()
    return _build_uncached(key, data["dims"], data["quants"][key])


def _build(key: str, d: dict, q: dict) -> ModelInfo:
    return _cached(key)


def _build_uncached(key: str, d: dict, q: dict) -> ModelInfo:
    Q = _types()
    tensors = [(n, ne, int(Q[t]), tensor_nbytes(int(Q[t]), ne)) for n, ne, t in _tensors(d, q)]
    n_shards = q["shards"]
    total = sum(t[3] for t in tensors)
    groups: list[list] = [[]]
    done = 0
    for t in tensors:  # split by size like llama-gguf-split --split-max-size: layers straddle shards
        if len(groups) < n_shards and done >= total * len(groups) / n_shards and groups[-1]:
            groups.append([])
        groups[-1].append(t)
        done += t[3]
    stem = f"DeepSeek-R1-{key}/DeepSeek-R1-{key}"
    headers = []
    for i, group in enumerate(groups):
        infos, off = [], 0
        for name, ne, ty, nb in group:
            infos.append(TensorInfo(name, tuple(ne), ty, off, nb))
            off += -(-nb // ALIGN) * ALIGN
        kv = _metadata(f"DeepSeek-R1 {key} (synthetic header)", d, q) if i == 0 else {
            "general.architecture": KeyValue("general.architecture", _STR, "deepseek2")}
        kv.update([_kv("split.no", _U32, i), _kv("split.count", _U32, len(groups)),
                   _kv("split.tensors.count", _U32, len(tensors))])
        header_bytes = 6 * 1024 * 1024 if i == 0 else 64 * 1024  # the first shard carries the 129k-token vocabulary
        headers.append(Header(name=f"hf://{data_repo()}/{stem}-{i + 1:05d}-of-{len(groups):05d}.gguf", version=3,
                              byte_order="little", kv=kv, tensors=tuple(infos), alignment=ALIGN,
                              data_offset=header_bytes, file_size=header_bytes + off))
    info = model_from_headers(headers, source=f"synthetic:{key}")
    return info.model_copy(update={"warnings": [*info.warnings, SYNTHETIC_NOTE]})


def data_repo() -> str:
    return _data()["repo"]
