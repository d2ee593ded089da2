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


# The web UI the way b11434 provisions it (tools/ui/CMakeLists.txt, scripts/ui-assets.cmake), in miniature:
# the same options and defaults, the same `UI: ...` messages, the same generated ui.h; npm really runs
# (`npm ci` on a lockfile without dependencies, then `npm run build`), and the prebuilt download really
# fails (a closed local port, as on a machine that cannot reach the hub).
UI_ASSETS_CMAKE = r"""
set(provisioned FALSE)
if(BUILD_UI)
    find_program(NPM_EXECUTABLE npm)
    if(NOT NPM_EXECUTABLE)
        message(STATUS "UI: npm not found, skipping npm build")
    else()
        file(COPY "${UI_SOURCE_DIR}/" DESTINATION "${UI_BINARY_DIR}/ui-src")
        message(STATUS "UI: running npm ci")
        execute_process(COMMAND ${NPM_EXECUTABLE} ci WORKING_DIRECTORY "${UI_BINARY_DIR}/ui-src" RESULT_VARIABLE rc)
        if(NOT rc EQUAL 0)
            message(STATUS "UI: npm ci failed (${rc})")
        else()
            message(STATUS "UI: running npm run build, output -> ${UI_BINARY_DIR}/dist")
            execute_process(COMMAND ${CMAKE_COMMAND} -E env "LLAMA_UI_OUT_DIR=${UI_BINARY_DIR}/dist"
                                    ${NPM_EXECUTABLE} run build
                            WORKING_DIRECTORY "${UI_BINARY_DIR}/ui-src" RESULT_VARIABLE rc)
            if(NOT rc EQUAL 0)
                message(STATUS "UI: npm run build failed (${rc})")
            else()
                message(STATUS "UI: npm build succeeded")
                set(provisioned TRUE)
            endif()
        endif()
    endif()
endif()
if(NOT provisioned AND HF_ENABLED)
    message(STATUS "UI: downloading from latest: http://127.0.0.1:1/dist.tar.gz")
    file(DOWNLOAD "http://127.0.0.1:1/dist.tar.gz.sha256" "${UI_BINARY_DIR}/dist.tar.gz.sha256" STATUS status TIMEOUT 10)
    list(GET status 1 errmsg)
    message(STATUS "UI: download dist.tar.gz.sha256 from latest failed: ${errmsg}")
    message(STATUS "UI: HF download failed")
endif()
if(provisioned)
    file(WRITE "${UI_BINARY_DIR}/ui.h" "#define LLAMA_UI_HAS_ASSETS 1\n")
    message(STATUS "UI: embedded 1 assets")
else()
    message(WARNING "UI: no assets available - building without an embedded UI.")
    file(WRITE "${UI_BINARY_DIR}/ui.h" "/* #undef LLAMA_UI_HAS_ASSETS */\n")
    message(STATUS "UI: embedded 0 assets")
endif()
"""

UI_CMAKELISTS = r"""
add_custom_target(llama-ui-assets ALL
    BYPRODUCTS "${CMAKE_CURRENT_BINARY_DIR}/ui.h"
    COMMAND ${CMAKE_COMMAND} "-DUI_SOURCE_DIR=${CMAKE_CURRENT_SOURCE_DIR}" "-DUI_BINARY_DIR=${CMAKE_CURRENT_BINARY_DIR}"
            "-DBUILD_UI=${LLAMA_BUILD_UI}" "-DHF_ENABLED=${LLAMA_USE_PREBUILT_UI}"
            -P "${PROJECT_SOURCE_DIR}/scripts/ui-assets.cmake"
    VERBATIM)
"""

UI_BUILD_JS = """const fs = require("fs");
if (fs.existsSync("FAIL")) { console.error("mini ui: failing on purpose"); process.exit(1); }
fs.mkdirSync(process.env.LLAMA_UI_OUT_DIR, { recursive: true });
fs.writeFileSync(process.env.LLAMA_UI_OUT_DIR + "/index.html", "<!doctype html><title>mini ui</title>");
"""


def write_ui(root: Path, fail: bool = False) -> None:
    """A tools/ui npm project (no dependencies, so `npm ci` needs no registry) and its CMake plumbing."""
    ui = root / "tools" / "ui"
    ui.mkdir(parents=True, exist_ok=True)
    (ui / "package.json").write_text('{"name": "mini-ui", "version": "1.0.0", "private": true, '
                                     '"scripts": {"build": "node build.js"}}\n')
    (ui / "package-lock.json").write_text('{"name": "mini-ui", "version": "1.0.0", "lockfileVersion": 3, '
                                          '"requires": true, "packages": {"": {"name": "mini-ui", "version": "1.0.0"}}}\n')
    (ui / ".npmrc").write_text("audit=false\nfund=false\nupdate-notifier=false\n")
    (ui / "build.js").write_text(UI_BUILD_JS)
    if fail:
        (ui / "FAIL").write_text("")
    (ui / "CMakeLists.txt").write_text(UI_CMAKELISTS)
    (root / "scripts").mkdir(exist_ok=True)
    (root / "scripts" / "ui-assets.cmake").write_text(UI_ASSETS_CMAKE)


def write_tree(root: Path, programs: tuple[str, ...] = ("llama-cli", "llama-completion", "llama-server",
                                                         "ggml-rpc-server"), broken: bool = False,
               ui: str | None = None) -> Path:
    """Write the tree at root and return it; `ui` "ok" or "fail" adds a tools/ui whose npm build works or fails."""
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
    if ui is not None:
        write_ui(root, fail=ui == "fail")
        lines += ['option(LLAMA_BUILD_UI "build the web UI with npm" OFF)',
                  'option(LLAMA_USE_PREBUILT_UI "download the prebuilt web UI" ON)',  # upstream's defaults
                  "add_subdirectory(tools/ui)"]
        if "llama-server" in programs:
            lines.append("add_dependencies(llama-server llama-ui-assets)")
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
