"""Where the test suite keeps what it builds and fetches, shared with the benchmarks.

R1RUN_TEST_CACHE (default ~/.cache/r1run-tests) holds `llama-home` (an R1RUN_HOME with the real
llama.cpp build), `models/` (SmolLM2 from PyPI) and `models-gen/` (generated R1-shaped models).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("R1RUN_TEST_CACHE", Path.home() / ".cache" / "r1run-tests")).expanduser()


def llama_bin(explicit: str | Path | None = None) -> Path:
    """The llama.cpp programs to benchmark: the one given, else $R1RUN_LLAMA_BIN, else the test build.

    Benchmarks are scripts: with none of them available, exit with a line saying what to do.
    """
    if explicit:
        return Path(explicit)
    if env := os.environ.get("R1RUN_LLAMA_BIN"):
        return Path(env)
    from r1run.home import Home
    from r1run.llama import manifest

    m = manifest.default_build(Home(cache_root() / "llama-home"))
    if m is None:
        sys.exit("no llama.cpp build found: pass --llama-bin DIR or run the test suite once to build one")
    return Path(m.path) / "bin"
