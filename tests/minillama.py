"""A miniature llama.cpp source tree: same layout and program names, builds in seconds.

It exercises r1run's build pipeline (sources, CMake, target discovery, install, manifest) with the
real cmake and compiler; the real llama.cpp is built once per test cache by the `llama_home` fixture.
Each program answers `--version` like llama.cpp and `--help` with a few real llama.cpp flags.
"""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

PROGRAM_C = r"""
#include <stdio.h>
#include <string.h>
#ifndef LLAMA_BUILD_NUMBER
#define LLAMA_BUILD_NUMBER 0
#endif
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--version")) {
            fprintf(stderr, "version: 0.6.0-dev (build %d, commit mini)\nbuilt with cc\n", LLAMA_BUILD_NUMBER);
            return 0;
        }
        if (!strcmp(argv[i], "--help")) {
            printf("----- common params -----\n\n");
            printf("-h,    --help, --usage                  print usage and exit\n");
            printf("-m,    --model FNAME                    model path\n");
            printf("%s\n", HELP_EXTRA);
            return 0;
        }
    }
    return 0;
}
"""

HELP = {
    "llama-cli": "-st,   --single-turn                    run conversation for a single turn only",
    "llama-completion": "-no-cnv, --no-conversation             do not use conversation mode",
    "llama-server": "--api-key KEY                           API key to use for authentication",
    "rpc-server": "  -p PORT, --port PORT      port to bind to (default: 50052)",
    "ggml-rpc-server": "  -p PORT, --port PORT      port to bind to (default: 50052)",
    "llama-bench": "  -ngl, --n-gpu-layers <n>                  (default: 99)",
}


def write_tree(root: Path, programs: tuple[str, ...] = ("llama-cli", "llama-completion", "llama-server",
                                                         "ggml-rpc-server"), broken: bool = False) -> Path:
    """Write the tree at root and return it."""
    (root / "ggml").mkdir(parents=True, exist_ok=True)
    (root / "ggml" / "README").write_text("mini ggml\n")  # git keeps no empty folders
    (root / "include").mkdir(exist_ok=True)
    (root / "include" / "llama.h").write_text("/* mini */\n")
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "program.c").write_text(PROGRAM_C)
    lines = ["cmake_minimum_required(VERSION 3.14)", "project(minillama C)",
             "set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)",
             "if (NOT DEFINED LLAMA_BUILD_NUMBER)", "  set(LLAMA_BUILD_NUMBER 0)", "endif()"]
    if broken:
        lines.append('message(FATAL_ERROR "minillama: this CMakeLists is broken on purpose")')
    for name in programs:
        help_extra = HELP.get(name, "").replace('"', '\\"')
        lines += [f"add_executable({name} src/program.c)",
                  f'target_compile_definitions({name} PRIVATE LLAMA_BUILD_NUMBER=${{LLAMA_BUILD_NUMBER}} '
                  f'"HELP_EXTRA=\\"{help_extra}\\"")']
    (root / "CMakeLists.txt").write_text("\n".join(lines) + "\n")
    return root


def make_tarball(tree: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tf:
        tf.add(tree, arcname="minillama/llama.cpp")
    return dest


def make_git_repo(tree: Path, tag: str) -> str:
    """Turn tree into a git repository tagged `tag`; return its file:// URL."""
    env_args = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "tree"], ["tag", tag]):
        subprocess.run(["git", *env_args, *argv], cwd=tree, check=True, capture_output=True)
    return tree.resolve().as_uri()
