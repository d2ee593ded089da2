"""A small llama model r1run writes itself, to measure this machine with the engine's own programs.

8 layers of 1024 x 2816 (103 M parameters in the matrices a token multiplies: 57-110 MB once quantized, more than
the cache a core reads from: measured here, 2 layers (16 MB) ran 1.9x faster a thread than 8, from the caches),
seeded random weights in F16, a byte-level SentencePiece vocabulary of 259 tokens; rows of 256 so that
llama-quantize makes every k-quant of it. Used by `bench.arithmetic` (how fast this CPU computes a model streamed
from RAM) and `llama.amx` (does this build's AMX kernel run here).
"""

from __future__ import annotations

import os
from pathlib import Path

from r1run import proc

N_EMBD, N_FF, N_LAYER, N_HEAD = 1024, 2816, 8, 8   # rows of 256 (k-quant blocks); 128 per head
PARAMS = N_LAYER * (4 * N_EMBD * N_EMBD + 3 * N_EMBD * N_FF)  # the matrices a token multiplies


def write_llama(path: Path) -> None:
    """The F16 model: seeded random weights, a byte-level SentencePiece vocabulary of 259 tokens."""
    import gguf  # noqa: PLC0415  (numpy and gguf only when a probe runs: once per build and type)
    import numpy as np  # noqa: PLC0415

    rng = np.random.default_rng(0)
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("r1run probe")
    w.add_context_length(512)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * len(tokens))
    w.add_token_types([gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
                      + [gguf.TokenType.BYTE] * 256)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    pool = (rng.standard_normal(1 << 20, dtype=np.float32) * 0.02).astype(np.float16)  # tiled: seconds saved

    def matrix(rows: int, cols: int) -> np.ndarray:
        return np.resize(np.roll(pool, rows * 7 + cols), (rows, cols))

    w.add_tensor("token_embd.weight", matrix(len(tokens), N_EMBD))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    for i in range(N_LAYER):
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(b + name + ".weight", matrix(N_EMBD, N_EMBD))
        w.add_tensor(b + "ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(b + "ffn_gate.weight", matrix(N_FF, N_EMBD))
        w.add_tensor(b + "ffn_up.weight", matrix(N_FF, N_EMBD))
        w.add_tensor(b + "ffn_down.weight", matrix(N_EMBD, N_FF))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def quantized(quantize: Path, folder: Path, quant: str) -> tuple[Path, proc.Completed]:
    """The model written in `folder` and quantized to `quant` by the build's `llama-quantize` (all CPU threads);
    the quantized file's path and llama-quantize's run, which the caller judges."""
    base, model = folder / "probe-f16.gguf", folder / f"probe-{quant}.gguf"
    write_llama(base)
    return model, proc.run([quantize, base, model, quant, str(os.cpu_count() or 1)], timeout=300)
