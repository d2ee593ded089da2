"""ggml tensor types and their sizes, from the official `gguf` package's tables.

A tensor of type T with shape (ne0, ne1, ...) stores ne0*ne1*... elements in blocks of
`block_size` elements, each block `type_size` bytes (GGML_QUANT_SIZES), and ne0 must be
a whole number of blocks. E.g. IQ1_S: 256 elements per 50-byte block = 1.5625 bits per weight.
"""

from __future__ import annotations

import functools
import math

from r1run.errors import GGUFError


@functools.lru_cache(maxsize=None)
def _tables() -> tuple[dict[int, str], dict[int, tuple[int, int]]]:
    # Heavy and optional: the official gguf package imports numpy and yaml (~110 ms); only reading a header
    # r1run has not summarised yet needs these tables.
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType  # noqa: PLC0415

    names = {int(t): t.name for t in GGMLQuantizationType}
    sizes = {int(t): (int(b), int(s)) for t, (b, s) in GGML_QUANT_SIZES.items()}
    return names, sizes


def type_name(ggml_type: int) -> str:
    """`Q4_K` for 12; `type99` for a type this gguf package does not know."""
    return _tables()[0].get(ggml_type, f"type{ggml_type}")


def block_layout(ggml_type: int) -> tuple[int, int]:
    """(elements per block, bytes per block) of a ggml type."""
    names, sizes = _tables()
    if ggml_type in sizes:
        return sizes[ggml_type]
    if ggml_type in names:
        raise GGUFError(f"tensor type {names[ggml_type]} ({ggml_type}) is no longer supported by llama.cpp",
                        "convert the model again with a current llama.cpp")
    raise GGUFError(f"unknown tensor type {ggml_type}",
                    "the file may be newer than r1run's `gguf` package (upgrade it: pip install -U gguf) or corrupt")


def bits_per_weight(ggml_type: int) -> float:
    block, size = block_layout(ggml_type)
    return size * 8 / block


def tensor_nbytes(ggml_type: int, shape: tuple[int, ...]) -> int:
    """Bytes a tensor's data takes: elements / block_size * type_size (ne0 must be whole blocks)."""
    block, size = block_layout(ggml_type)
    ne0 = shape[0] if shape else 1
    if ne0 % block:
        raise GGUFError(f"tensor row of {ne0} elements is not a multiple of the {type_name(ggml_type)} block "
                        f"size {block}", "the file is corrupt")
    return math.prod(shape) // block * size
