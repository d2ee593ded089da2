"""Test helpers shared by `tests/` and `benchmarks/`; not part of r1run and not in its wheel.

Tests import it as `testkit` (pytest puts `tests/` on sys.path); benchmark scripts import
`benchmarks/_paths.py` first, which does the same.

- `models`, `specs`, `writer`, `tokenizer`, `headers`: generated DeepSeek-R1-shaped GGUF models.
- `hubserver`: a local Hugging Face hub with injectable faults (import it directly).
"""

from testkit.models import (
    GENERATOR_VERSION,
    NEEDS_IMATRIX,
    QUANTS,
    GeneratedModel,
    GenerationFailed,
    ModelSpec,
    make_deepseek,
    make_moe,
)
from testkit.specs import DEEPSEEK_PRESETS, KV_LAYOUTS, MOE_PRESETS, DeepSeekDims, MoeDims

__all__ = [
    "DEEPSEEK_PRESETS", "GENERATOR_VERSION", "KV_LAYOUTS", "MOE_PRESETS", "NEEDS_IMATRIX", "QUANTS",
    "DeepSeekDims", "GeneratedModel", "GenerationFailed", "ModelSpec", "MoeDims", "make_deepseek", "make_moe",
]
