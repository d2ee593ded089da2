"""Which model to run: a GGUF path or MODEL --quant Q from the catalog, with its recommended settings."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from r1run import gguf
from r1run.catalog import Settings
from r1run.errors import BadInput
from r1run.fsutil import write_atomic
from r1run.gguf.model import ModelInfo
from r1run.gguf.shards import locate, split_parts
from r1run.home import Home
from r1run.models import choose, resolve_local

DEEPSEEK_TEMPLATE = "<｜User｜>{prompt}<｜Assistant｜>"
CHATML_TEMPLATE = "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"

# What DeepSeek-R1 runs best with (Unsloth's and DeepSeek's recommendations), for files given by path.
R1_SETTINGS = Settings(temperature=0.6, min_p=0.05, cache_type_k="q4_0", ctx=8192, prompt_template=DEEPSEEK_TEMPLATE)


@dataclass(frozen=True)
class Target:
    name: str  # what to call it in messages
    path: Path  # the file for -m (first shard of a split model)
    settings: Settings
    settings_source: str  # "catalog", "model file", "none"
    info: ModelInfo
    prompt_template: str | None  # None: send the prompt as is
    key: str = ""  # what usage records: catalog key, repo id, or the file's absolute path
    quant: str = ""
    chosen_because: str | None = None  # why r1run picked this model when the user named none
    served_name: str = ""  # what llama-server calls it (`serve --alias` overrides): catalog key:quant, or file stem

    def render(self, prompt: str) -> str:
        """The raw one-turn prompt in the model's format (as is when no format is known)."""
        return self.prompt_template.replace("{prompt}", prompt) if self.prompt_template else prompt

    @property
    def starts_thinking(self) -> bool:
        """The format opens a `<think>` block itself, so the answer starts inside the reasoning."""
        return bool(self.prompt_template and self.prompt_template.rstrip().endswith("<think>"))


def prompt_template_for(chat_template: str | None) -> str | None:
    """A raw one-turn prompt format recognised from a GGUF's `tokenizer.chat_template`."""
    if not chat_template:
        return None
    if "<｜User｜>" in chat_template and "<｜Assistant｜>" in chat_template:
        return DEEPSEEK_TEMPLATE
    if "<|im_start|>" in chat_template:
        return CHATML_TEMPLATE
    return None


def read_cached(path: Path, cache_dir: Path) -> tuple[ModelInfo, str | None]:
    """ModelInfo and chat template of a local model, read once per (files, sizes, mtimes).

    Reading a header walks the whole vocabulary (and imports numpy through `gguf`); a cached summary
    keeps a one-shot chat's start-up close to llama.cpp's own.
    """
    files = locate(path)
    key = hashlib.sha256(json.dumps([(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns)
                                     for f in files]).encode()).hexdigest()[:32]
    entry = cache_dir / f"{key}.json"
    try:
        data = json.loads(entry.read_text(encoding="utf-8"))
        return ModelInfo.model_validate(data["info"]), data["chat_template"]
    except (OSError, ValueError, KeyError):
        pass
    headers = [gguf.read_header(f) for f in files]
    info = gguf.model_from_headers(headers, source=str(files[0]))
    template = headers[0].get("tokenizer.chat_template")
    template = template if isinstance(template, str) else None
    try:
        write_atomic(entry, json.dumps({"info": info.model_dump(mode="json"), "chat_template": template}))
    except OSError:
        pass  # a cache: a home that cannot be written only costs the next run this read
    return info, template


def resolve(home: Home, model: str | None, quant: str | None) -> Target:
    """The model to run; without MODEL, the one `r1run.models.choose` picks (and why)."""
    choice = choose(home, model, quant)
    spec, quant = choice.model, choice.quant
    path = Path(spec).expanduser()
    if path.is_dir():
        firsts = sorted(path.glob("*-00001-of-*.gguf")) or sorted(path.glob("*.gguf"))
        if not firsts:
            raise BadInput(f"{path} holds no .gguf file", "give a .gguf file or MODEL --quant Q")
        path, spec = firsts[0], str(firsts[0])
    if path.suffix == ".gguf" and not path.exists():
        raise BadInput(f"{path}: no such file", "check the path, or use MODEL --quant Q (see `r1run models`)")
    local = resolve_local(home, str(path) if path.is_file() else spec, quant)
    info, chat_template = read_cached(local.main_path, home.cache / "models")
    detected = prompt_template_for(chat_template)
    settings, source = local.settings, "catalog"
    if local.manifest is None:  # a file given by path: no catalog entry
        if info.architecture == "deepseek2" and detected == DEEPSEEK_TEMPLATE:
            settings, source = R1_SETTINGS, "DeepSeek-R1 recommendations (deepseek2 model)"
        else:
            source = "none"
    template = settings.prompt_template or detected
    key = local.model if local.manifest is not None else str(local.main_path.resolve())
    if local.manifest is not None:
        served = f"{local.model}:{local.quant}" if local.quant else local.model
    else:  # the file's name without .gguf, and without -00001-of-00003 for a split model
        parts = split_parts(local.main_path.name)
        served = parts[0] if parts else local.main_path.stem
    return Target(local.model if local.manifest is not None else path.name, local.main_path, settings, source, info,
                  template, key=key, quant=local.quant, chosen_because=choice.reason and choice.describe(),
                  served_name=served)
