"""What `r1run inspect TARGET` reads: a local path, a hub repo (hf://owner/repo[/path]), or a catalog model + quant."""

from __future__ import annotations

from pathlib import Path

from r1run.errors import BadInput
from r1run.gguf.model import ModelInfo

HF_PREFIX = "hf://"


def parse_hub_target(target: str) -> tuple[str, str]:
    """hf://owner/repo/some/folder -> ('owner/repo', 'some/folder')."""
    rest = target.removeprefix(HF_PREFIX).strip("/")
    parts = rest.split("/", 2)
    if len(parts) < 2 or not all(parts[:2]):
        raise BadInput(f"{target!r} is not a hub location", "write hf://OWNER/REPO or hf://OWNER/REPO/PATH/TO/FILE.gguf")
    return f"{parts[0]}/{parts[1]}", parts[2] if len(parts) == 3 else ""


def resolve_catalog(model: str, quant: str) -> Path:
    """The first file of a downloaded, verified catalog model's quant (its download manifest says where)."""
    from r1run.home import Home
    from r1run.models import resolve_local

    return resolve_local(Home.from_env(), model, quant).main_path


def inspect_target(target: str, quant: str | None = None, revision: str | None = None) -> ModelInfo:
    """ModelInfo of a local file/folder, a hub location (headers only), or a catalog model's quant."""
    from r1run.gguf import read_model, read_remote_model

    if target.startswith(HF_PREFIX):
        repo, path = parse_hub_target(target)
        return read_remote_model(repo, path, revision=revision)
    if quant is not None:
        return read_model(resolve_catalog(target, quant))
    return read_model(Path(target))
