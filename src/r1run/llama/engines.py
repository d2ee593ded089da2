"""The engines r1run builds and runs: mainline llama.cpp and the ik_llama.cpp fork (faster for DeepSeek on CPU
and CUDA). What differs between them is where the source comes from and which backends exist; what their
programs can do is always probed (r1run.llama.probe), never assumed from the name."""

from __future__ import annotations

import re
from dataclasses import dataclass

from r1run.errors import BadInput
from r1run.llama import PINNED_RELEASE, PYPI_SOURCE_PACKAGE, UPSTREAM_REPO
from r1run.llama.cmake import Backend


@dataclass(frozen=True)
class Engine:
    name: str
    repo: str  # git remote
    pypi_package: str  # the sdist that carries the source offline
    pinned: str  # the release r1run builds by default (a bNNNN tag, or the sdist's version / a commit for ik)
    backends: tuple[Backend, ...]
    id_prefix: str  # build ids: "b11434-cpu", "ik-0.1.5-cpu"


LLAMA_CPP = Engine("llama.cpp", UPSTREAM_REPO, PYPI_SOURCE_PACKAGE, PINNED_RELEASE, tuple(Backend), "")
# ik_llama.cpp has no release tags. Offline, its source is the `vendor/ik_llama.cpp` of the
# ik-llama-cpp-python sdist (version 0.1.5 is the one measured here); online, a pinned commit of its repository
# (the newest one r1run's authors could see, 2026-08-15; not built here, where GitHub is unreachable).
IK_LLAMA_CPP = Engine("ik_llama.cpp", "https://github.com/ikawrakow/ik_llama.cpp", "ik-llama-cpp-python",
                      "0.1.5", (Backend.CPU, Backend.CUDA), "ik-")
IK_PINNED_COMMIT = "8337e4cd3861406fc04e0854b1409cd1b027fbc9"

ENGINES: dict[str, Engine] = {e.name: e for e in (LLAMA_CPP, IK_LLAMA_CPP)}

_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")


def parse_engine(text: str) -> Engine:
    engine = ENGINES.get(text.strip().lower())
    if engine is None:
        raise BadInput(f"unknown engine {text!r}", f"choose one of: {', '.join(ENGINES)}")
    return engine


def check_backend(engine: Engine, backend: Backend) -> None:
    if backend not in engine.backends:
        raise BadInput(f"{engine.name} has no {backend.value} backend: it supports "
                       f"{' and '.join(b.value for b in engine.backends)} only",
                       "use --backend cpu or cuda, or build llama.cpp (`--engine llama.cpp`) for this backend")


def check_ik_ref(ref: str, *, kind: str) -> str:
    """An ik_llama.cpp ref: a version of its PyPI sdist (0.1.5) or, for git, a commit."""
    if kind == "pypi" and not _VERSION.match(ref):
        raise BadInput(f"--ref {ref!r} is not a version of {IK_LLAMA_CPP.pypi_package}",
                       f"give one such as {IK_LLAMA_CPP.pinned} (`pip index versions {IK_LLAMA_CPP.pypi_package}`)")
    if kind == "git" and not _COMMIT.match(ref):
        raise BadInput(f"--ref {ref!r} is not a commit of {IK_LLAMA_CPP.repo}",
                       "ik_llama.cpp has no release tags: give a commit hash (7 to 40 hex digits)")
    return ref
