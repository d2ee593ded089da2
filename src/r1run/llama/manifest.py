"""The build manifest: what was built, from what, how, and where its programs are."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ValidationError

from r1run.fsutil import write_atomic
from r1run.home import Home

MANIFEST_NAME = "manifest.json"


class SourceInfo(BaseModel):
    kind: str  # git | pypi | dir | tarball
    location: str
    digest: str


class UiInfo(BaseModel):
    """llama-server's web UI in this build."""

    source: str  # npm | prebuilt | tree | none
    reason: str


class BuildManifest(BaseModel):
    """Schema version 1 of `<R1RUN_HOME>/builds/<id>/manifest.json` (also `r1run build --json`)."""

    schema_version: int = 1
    id: str
    engine: str = "llama.cpp"  # r1run.llama.engines; builds made before ik_llama.cpp support are llama.cpp
    release: str
    source: SourceInfo
    backend: str
    backend_reason: str
    cmake_flags: list[str]
    cmake_version: str | None
    compiler: str | None
    jobs: int
    targets: dict[str, str]  # role -> CMake target
    binaries: dict[str, str]  # role -> absolute path
    build_seconds: float
    built_at: str  # ISO 8601, UTC
    r1run_version: str
    path: str
    ui: UiInfo | None = None  # None: built by an r1run that did not record it
    patches: list[str] | None = None  # r1run's fixes in its tree (llama.patches); None: built before r1run had any

    def missing_binaries(self) -> list[str]:
        return [role for role, p in self.binaries.items() if not Path(p).is_file()]


def manifest_path(home: Home, build_id: str) -> Path:
    return home.builds / build_id / MANIFEST_NAME


def load(home: Home, build_id: str) -> BuildManifest | None:
    path = manifest_path(home, build_id)
    try:
        return BuildManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError):
        return None


def save(home: Home, manifest: BuildManifest) -> None:
    write_atomic(manifest_path(home, manifest.id), manifest.model_dump_json(indent=2) + "\n")


def _default_file(home: Home, engine: str) -> Path:
    # Each engine has its own default build, so building ik_llama.cpp never changes which llama.cpp runs.
    return home.default_build_file if engine == "llama.cpp" else home.builds / f"default-{engine}"


def default_id(home: Home, engine: str = "llama.cpp") -> str | None:
    try:
        text = _default_file(home, engine).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


def set_default(home: Home, build_id: str, engine: str = "llama.cpp") -> None:
    write_atomic(_default_file(home, engine), build_id + "\n")


def default_build(home: Home, engine: str = "llama.cpp") -> BuildManifest | None:
    build_id = default_id(home, engine)
    return load(home, build_id) if build_id else None


def all_builds(home: Home) -> list[BuildManifest]:
    if not home.builds.is_dir():
        return []
    found = [load(home, p.name) for p in sorted(home.builds.iterdir()) if (p / MANIFEST_NAME).is_file()]
    return [m for m in found if m is not None]


def to_json(manifest: BuildManifest) -> str:
    """`build --json`: the manifest, tagged `r1run.build/<schema_version>` first (docs/json.md)."""
    data = manifest.model_dump()
    return json.dumps({"schema": f"r1run.build/{data.pop('schema_version')}", **data}, indent=2)
