"""GGUF reading: fast header parsing, shard sets, and the ModelInfo summary behind `r1run inspect`.

    read_header(source) -> Header          one file or any ByteSource (local, HTTP Range)
    read_model(path) -> ModelInfo          a file, any shard of a split set, or a folder with one model
    model_from_headers(headers) -> ModelInfo
    read_remote_model(repo_id, path, revision=None) -> ModelInfo   headers only, via HTTP Range
"""

from __future__ import annotations

from pathlib import Path

from r1run.gguf.analyze import model_from_headers
from r1run.gguf.model import ModelInfo
from r1run.gguf.reader import DEFAULT_LIMITS, ArrayValue, Header, KeyValue, Limits, TensorInfo, read_header
from r1run.gguf.remote import read_remote_model
from r1run.gguf.shards import locate
from r1run.gguf.source import ByteSource, FileSource

__all__ = [
    "ArrayValue", "ByteSource", "DEFAULT_LIMITS", "FileSource", "Header", "KeyValue", "Limits", "ModelInfo",
    "TensorInfo", "model_from_headers", "read_header", "read_model", "read_remote_model",
]


def read_model(path: Path | str, limits: Limits = DEFAULT_LIMITS) -> ModelInfo:
    """Read every shard's header of the model at `path` and summarise it (no tensor data is read)."""
    files = locate(Path(path))
    headers = [read_header(f, limits) for f in files]
    return model_from_headers(headers, source=str(files[0]))
