"""`r1run inspect`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from r1run.cli.common import JsonOpt, handle_errors, out, print_json, status, warn
from r1run.cli.runopts import QuantOpt
from r1run.inspect_target import inspect_target
from r1run.units import size

if TYPE_CHECKING:
    from r1run.gguf.model import ModelInfo


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)


@handle_errors
def inspect(
    target: Annotated[Optional[str], typer.Argument(
        help="A .gguf file, any shard of a split model, a folder holding one model, hf://OWNER/REPO[/PATH] (headers "
             "only, over HTTP Range), or a catalog model [default: the model you downloaded or ran last].",
        metavar="TARGET", show_default=False)] = None,
    quant: QuantOpt = None,
    revision: Annotated[Optional[str], typer.Option(help="Hub revision for hf:// targets.", show_default=False)] = None,
    layers: Annotated[bool, typer.Option("--layers", help="Also show bytes per layer.")] = False,
    tensors: Annotated[bool, typer.Option(
        "--tensors", help="With --json: include every tensor (name, type, shape, bytes, shard).")] = False,
    json_: JsonOpt = False,
) -> None:
    """Show what a GGUF model holds: architecture, sizes, expert/non-expert bytes per layer, KV layout, shards."""

    info, chosen_because = inspect_target(target, quant=quant, revision=revision)
    if chosen_because:
        status(f"model: {chosen_because}")
    for w in info.warnings:
        warn(w)
    if json_:
        print_json(info.to_json(include_tensors=tensors))
        return
    _render(info, with_layers=layers)


def _per_layer(v: "int | list[int] | None") -> str:
    if isinstance(v, list):
        return f"{min(v)}-{max(v)} (per layer)" if len(set(v)) > 1 else str(v[0])
    return "-" if v is None else f"{v:,}"


def _render(info: "ModelInfo", *, with_layers: bool) -> None:
    hp = info.hparams
    t = Table(title=info.name or info.source, show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    arch = info.architecture + ("" if info.architecture_known else "  (unknown to r1run: generic estimate)")
    moe = (f"{hp.expert_count} routed ({hp.expert_used_count} active), {hp.expert_shared_count or 0} shared; "
           f"{hp.leading_dense_block_count or 0} leading dense layers") if hp.expert_count else "no (dense)"
    rows = [
        ("architecture", arch),
        ("file type", f"{info.file_type or '-'}  ({info.bits_per_weight:.2f} bits per weight)"),
        ("parameters", f"{info.parameter_count / 1e9:,.2f} B"),
        ("tensor data", f"{size(info.tensor_bytes)}  ({info.tensor_bytes:,} bytes, {info.tensor_count} tensors)"),
        ("files", f"{len(info.shards)} shard(s), {size(info.file_bytes)}"),
        ("layers", f"{hp.block_count}"),
        ("experts", moe),
        ("  routed-expert bytes", size(info.expert_bytes)),
        ("  non-expert bytes", f"{size(info.non_expert_bytes)} (shared experts {size(info.shared_expert_bytes)}, "
                               f"non-layer {size(info.non_layer_bytes)})"),
        ("  read per token", f"{size(info.active_bytes_per_token)}"),
        ("context length", _per_layer(hp.context_length)),
        ("embedding", _per_layer(hp.embedding_length)),
        ("heads (q / kv)", f"{_per_layer(hp.head_count)} / {_per_layer(hp.head_count_kv)}"),
        ("key / value length", f"{_per_layer(hp.key_length)} / {_per_layer(hp.value_length)}"),
    ]
    if hp.key_length_mla is not None or hp.value_length_mla is not None:
        rows.append(("  MLA key / value", f"{_per_layer(hp.key_length_mla)} / {_per_layer(hp.value_length_mla)}"))
    if hp.q_lora_rank is not None or hp.kv_lora_rank is not None:
        rows.append(("q / kv LoRA rank", f"{_per_layer(hp.q_lora_rank)} / {_per_layer(hp.kv_lora_rank)}"))
    rows += [
        ("rope dims", _per_layer(hp.rope_dimension_count)),
        ("vocabulary", _per_layer(hp.vocab_size)),
        ("KV cache layout", info.kv_layout),
        ("tensor types", ", ".join(f"{k} {v.tensors}x {size(v.bytes)}" for k, v in info.tensor_types.items())),
    ]
    for k, v in rows:
        t.add_row(k, v)
    out().print(t, highlight=False)
    if with_layers:
        _render_layers(info)


def _render_layers(info: "ModelInfo") -> None:
    t = Table(title="per layer (summed across shards)", title_justify="left")
    for col in ("layer", "kind", "bytes", "experts", "non-expert", "types", "shards"):
        t.add_column(col, justify="right" if col in ("layer", "bytes", "experts", "non-expert") else "left")
    for layer in info.layers:
        t.add_row(str(layer.index), "moe" if layer.moe else "dense", size(layer.bytes), size(layer.expert_bytes),
                  size(layer.non_expert_bytes), " ".join(layer.types), ",".join(str(s + 1) for s in layer.shards))
    t.add_row("-", "non-layer", size(info.non_layer_bytes), "-", size(info.non_layer_bytes),
              " ".join(sorted({tt.type for tt in info.tensors if tt.layer is None})), "")
    out().print(t, highlight=False)
