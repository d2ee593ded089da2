"""What `r1run inspect TARGET` reads: a local path, a hub repo (hf://owner/repo[/path]), or a catalog model + quant
(downloaded, else its header from the hub)."""

from __future__ import annotations

from pathlib import Path

from r1run import catalog as cat
from r1run.errors import BadInput, R1runError
from r1run.gguf import read_model, read_remote_model
from r1run.gguf.model import ModelInfo
from r1run.home import Home
from r1run.models import ModelNotReady, choose, resolve_local
from r1run.planner.plan import folder_of

HF_PREFIX = "hf://"


def parse_hub_target(target: str) -> tuple[str, str]:
    """hf://owner/repo/some/folder -> ('owner/repo', 'some/folder')."""
    rest = target.removeprefix(HF_PREFIX).strip("/")
    parts = rest.split("/", 2)
    if len(parts) < 2 or not all(parts[:2]):
        raise BadInput(f"{target!r} is not a hub location", "write hf://OWNER/REPO or hf://OWNER/REPO/PATH/TO/FILE.gguf")
    return f"{parts[0]}/{parts[1]}", parts[2] if len(parts) == 3 else ""


def resolve_catalog(model: str, quant: str | None) -> Path:
    """The first file of a downloaded, verified catalog model's quant (its download manifest says where)."""
    return resolve_local(Home.from_env(), model, quant).main_path


def inspect_target(target: str | None, quant: str | None = None,
                   revision: str | None = None) -> tuple[ModelInfo, str | None]:
    """ModelInfo of a local file/folder, a hub location (headers only), or a catalog model's quant; without a
    target, of the model `r1run.models.choose` picks. Also returns why that model, when r1run chose it."""
    if target is not None and target.startswith(HF_PREFIX):
        repo, path = parse_hub_target(target)
        return read_remote_model(repo, path, revision=revision), None
    looks_like_path = target is not None and (target.endswith(".gguf") or target.startswith(("/", ".", "~")))
    if target is not None and (looks_like_path or quant is None and Path(target).expanduser().exists()):
        return read_model(Path(target)), None
    choice = choose(Home.from_env(), target, quant)
    why = choice.reason and choice.describe()
    if choice.model.endswith(".gguf"):
        return read_model(Path(choice.model)), why
    return _catalog_model(choice.model, choice.quant, revision), why


def _catalog_model(model: str, quant: str | None, revision: str | None) -> ModelInfo:
    """A catalog quant's headers: from its verified download, else from the hub (headers only, HTTP Range)."""
    try:
        return read_model(resolve_catalog(model, quant))
    except ModelNotReady as not_ready:
        c = cat.load(Home.from_env())
        entry = c.model(model)
        q = c.quant(entry, quant)
        try:
            return read_remote_model(entry.repo, folder_of(q.include), revision=revision)
        except R1runError as exc:
            raise R1runError(f"{entry.key} {q.name} is not downloaded and its header could not be read from the hub "
                             f"({exc.message})", not_ready.hint) from None
