"""Test helpers that ship with r1run so `tests/` and `benchmarks/` share them.

- `models`, `specs`, `writer`, `tokenizer`, `headers`: generated DeepSeek-R1-shaped GGUF models.
- `hubserver`: a local Hugging Face hub with injectable faults (import it directly).
"""

from r1run.testing.models import (
    GENERATOR_VERSION,
    NEEDS_IMATRIX,
    QUANTS,
    GeneratedModel,
    GenerationFailed,
    ModelSpec,
    make_deepseek,
    make_moe,
)
from r1run.testing.specs import DEEPSEEK_PRESETS, KV_LAYOUTS, MOE_PRESETS, DeepSeekDims, MoeDims

__all__ = [
    "DEEPSEEK_PRESETS", "GENERATOR_VERSION", "KV_LAYOUTS", "MOE_PRESETS", "NEEDS_IMATRIX", "QUANTS",
    "DeepSeekDims", "GeneratedModel", "GenerationFailed", "ModelSpec", "MoeDims", "make_deepseek", "make_moe",
]
