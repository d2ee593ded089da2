"""Where the test suite keeps what it builds and fetches, shared with the benchmarks.

R1RUN_TEST_CACHE (default ~/.cache/r1run-tests) holds `llama-home` (an R1RUN_HOME with the real
llama.cpp build), `models/` (SmolLM2 from PyPI) and `models-gen/` (generated R1-shaped models).
"""

from __future__ import annotations

import os
from pathlib import Path


class NoLlamaBuild(RuntimeError):
    """No llama.cpp programs given and none built in the test cache."""


def cache_root() -> Path:
    return Path(os.environ.get("R1RUN_TEST_CACHE", Path.home() / ".cache" / "r1run-tests")).expanduser()


def llama_bin(explicit: str | Path | None = None) -> Path:
    """The llama.cpp programs to benchmark: the one given, else $R1RUN_LLAMA_BIN, else the test build.

    With none of them available, raise NoLlamaBuild saying what to do (benchmark scripts print it and exit).
    """
    if explicit:
        return Path(explicit)
    if env := os.environ.get("R1RUN_LLAMA_BIN"):
        return Path(env)
    from r1run.home import Home
    from r1run.llama import manifest

    m = manifest.default_build(Home(cache_root() / "llama-home"))
    if m is None:
        raise NoLlamaBuild("no llama.cpp build found: pass --llama-bin DIR or run the test suite once to build one")
    return Path(m.path) / "bin"


def register_builds(home: Path) -> dict[str, Path]:
    """Make the test cache's builds (llama.cpp in `llama-home`, ik_llama.cpp in `ik-home`) the builds of the
    R1RUN_HOME `home`, each its engine's default; engine -> its programs' folder, for those that exist."""
    from r1run.home import Home
    from r1run.llama import manifest

    found: dict[str, Path] = {}
    for engine, folder in (("llama.cpp", "llama-home"), ("ik_llama.cpp", "ik-home")):
        m = manifest.default_build(Home(cache_root() / folder), engine)
        if m is None or m.missing_binaries():
            continue
        manifest.save(Home(home), m)
        manifest.set_default(Home(home), m.id, engine)
        found[engine] = Path(m.path) / "bin"
    return found
