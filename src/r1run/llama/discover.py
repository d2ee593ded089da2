"""Find the llama.cpp to use: --llama-bin / R1RUN_LLAMA_BIN, else r1run's default build of the engine asked for
(llama.cpp unless said otherwise), else (llama.cpp only) PATH."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from r1run import proc
from r1run.errors import BadInput, ToolMissing
from r1run.home import Home
from r1run.llama import manifest
from r1run.llama.cmake import PROGRAM_TARGETS
from r1run.llama.engines import ENGINES
from r1run.llama.manifest import BuildManifest
from r1run.llama.probe import Capabilities, derive, probe_cached


@dataclass(frozen=True)
class LlamaInstall:
    origin: str  # "--llama-bin FOLDER" (or R1RUN_LLAMA_BIN), "build <id>", "PATH"
    programs: dict[str, Path]  # role -> program
    build: BuildManifest | None = None

    @property
    def engine(self) -> str:
        """The engine of an r1run build; programs found elsewhere are called llama.cpp (their probe says more)."""
        return self.build.engine if self.build is not None else "llama.cpp"


def _programs_in(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for role, names in PROGRAM_TARGETS.items():
        for name in names:
            for candidate in (folder / name, folder / f"{name}.exe"):
                if candidate.is_file() and os.access(candidate, os.X_OK):
                    found[role] = candidate
                    break
            if role in found:
                break
    return found


def _programs_on_path() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for role, names in PROGRAM_TARGETS.items():
        for name in names:
            hit = proc.which(name)
            if hit:
                found[role] = Path(hit)
                break
    return found


def find_all(home: Home, llama_bin: Path | None = None, engine: str = "llama.cpp") -> list[LlamaInstall]:
    """Every candidate for `engine` in discovery order (doctor shows them all; the first is the one used)."""
    candidates: list[LlamaInstall] = []
    if llama_bin is not None:
        folder = llama_bin.expanduser()
        if not folder.is_dir():
            raise BadInput(f"--llama-bin {folder}: no such folder",
                           "point it at the folder holding llama-cli, llama-server... (or unset R1RUN_LLAMA_BIN)")
        programs = _programs_in(folder)
        if not programs:
            raise BadInput(f"--llama-bin {folder} holds no llama.cpp programs",
                           "point it at the folder holding llama-cli, llama-server... (often build/bin)")
        candidates.append(LlamaInstall(f"--llama-bin {folder}", programs))
    default = manifest.default_build(home, engine)
    if default is not None:
        programs = {role: Path(p) for role, p in default.binaries.items() if Path(p).is_file()}
        if programs:
            candidates.append(LlamaInstall(f"build {default.id}", programs, default))
    on_path = _programs_on_path() if engine == "llama.cpp" else {}
    if on_path:
        candidates.append(LlamaInstall("PATH", on_path))
    return candidates


def find(home: Home, llama_bin: Path | None = None, engine: str = "llama.cpp") -> LlamaInstall:
    candidates = find_all(home, llama_bin, engine)
    if not candidates:
        if engine != "llama.cpp":
            raise ToolMissing(f"no {engine} build found", f"run `r1run build --engine {engine}`")
        raise ToolMissing("no llama.cpp found: no r1run build, no --llama-bin, none on PATH",
                          "run `r1run build` (or pass --llama-bin DIR)")
    return candidates[0]


def built_engines(home: Home) -> dict[str, BuildManifest]:
    """engine -> its default build, for the engines r1run has built here with all programs in place."""
    found = {}
    for name in ENGINES:
        m = manifest.default_build(home, name)
        if m is not None and not m.missing_binaries():
            found[name] = m
    return found


def capabilities(install: LlamaInstall, home: Home) -> Capabilities:
    cache = home.cache / "probes.json"  # probe_cached writes it when it can
    probes = {role: probe_cached(path, cache) for role, path in install.programs.items()}
    return derive(probes)
