#!/bin/sh
# Build llama.cpp the way `r1run build` does, with no Python: clone (or take a source dir),
# configure with the same CMake flags, build the programs r1run uses that this release has.
#
#   scripts/build_llama_cpp.sh [--ref b11434] [--repo URL] [--source DIR] [--backend cpu|metal|cuda|rocm|vulkan]
#                              [--ui auto|npm|prebuilt|none] [--out DIR] [--jobs N] [--dry-run]
#   --ui: llama-server's web UI; auto builds it with npm when node and npm are installed, else downloads the
#         prebuilt one during the build (none when HF_HUB_OFFLINE=1). Either failing leaves a build without UI.
set -eu

REF=b11434
REPO=https://github.com/ggml-org/llama.cpp
SOURCE=
BACKEND=
UI=auto
OUT=
JOBS=
DRY=

die() { echo "error: $*" >&2; exit 1; }

# r1run's one fix to llama.cpp, as src/r1run/llama/patches.py makes it (same text), in a tree this script cloned:
# since llama.cpp#22273 the logger is leaked and never drained, so a program loses the lines still queued when it
# exits (llama.cpp#25504): the end of an answer, its timings. An atexit handler drains it.
patch_log_flush() {
    f=$1/common/log.cpp
    [ -f "$f" ] || return 0
    if grep -q 'std::atexit' "$f" || [ "$(grep -c '^        log = new common_log;$' "$f")" != 1 ]; then return 0; fi
    awk '{ print }
         $0 == "        log = new common_log;" {
             print "#if !defined(_WIN32)  // r1run: log-flush-at-exit: drain the leaked logger'"'"'s queue at exit, or its last lines are lost"
             print "        std::atexit([] { common_log_pause(common_log_main()); });"
             print "#endif"
         }' "$f" > "$f.r1run-tmp" && mv "$f.r1run-tmp" "$f"
    echo "patched $f: llama.cpp's log is drained at exit (llama.cpp#25504)"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --ref) REF=$2; shift 2 ;;
        --repo) REPO=$2; shift 2 ;;
        --source) SOURCE=$2; shift 2 ;;
        --backend) BACKEND=$2; shift 2 ;;
        --ui) UI=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --jobs) JOBS=$2; shift 2 ;;
        --dry-run) DRY=1; shift ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

if [ -z "$BACKEND" ]; then
    if [ "$(uname -s)" = Darwin ] && [ "$(uname -m)" = arm64 ]; then BACKEND=metal
    elif command -v nvcc >/dev/null 2>&1 && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then BACKEND=cuda
    elif command -v hipcc >/dev/null 2>&1; then BACKEND=rocm
    elif command -v glslc >/dev/null 2>&1; then BACKEND=vulkan
    else BACKEND=cpu
    fi
fi
case "$BACKEND" in
    cpu) BFLAGS="-DGGML_NATIVE=ON -DGGML_METAL=OFF" ;;
    metal) BFLAGS="-DGGML_NATIVE=ON -DGGML_METAL=ON -DGGML_METAL_EMBED_LIBRARY=ON" ;;
    cuda) BFLAGS="-DGGML_NATIVE=ON -DGGML_CUDA=ON" ;;
    rocm) BFLAGS="-DGGML_NATIVE=ON -DGGML_HIP=ON" ;;
    vulkan) BFLAGS="-DGGML_NATIVE=ON -DGGML_VULKAN=ON" ;;
    *) die "unknown backend '$BACKEND': choose cpu, metal, cuda, rocm or vulkan" ;;
esac
if [ "$UI" = auto ]; then
    if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then UI=npm
    else case "${HF_HUB_OFFLINE:-}" in 1|[Oo][Nn]|[Yy][Ee][Ss]|[Tt][Rr][Uu][Ee]) UI=none ;; *) UI=prebuilt ;; esac
    fi
fi
case "$UI" in
    npm) UIFLAGS="-DLLAMA_BUILD_UI=ON -DLLAMA_USE_PREBUILT_UI=OFF" ;;
    prebuilt) UIFLAGS="-DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=ON" ;;
    none) UIFLAGS="-DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF" ;;
    *) die "unknown --ui '$UI': choose auto, npm, prebuilt or none" ;;
esac
if command -v ccache >/dev/null 2>&1; then CCACHE=ON; else CCACHE=OFF; fi
if [ -z "$JOBS" ]; then JOBS=$( (getconf _NPROCESSORS_ONLN || sysctl -n hw.ncpu) 2>/dev/null || echo 2); fi
case "$JOBS" in ''|*[!0-9]*|0) die "--jobs must be a whole number of at least 1" ;; esac

NUMBER=${REF#b}
FLAGS="-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DGGML_RPC=ON -DLLAMA_OPENSSL=OFF \
-DLLAMA_CURL=OFF $UIFLAGS $BFLAGS -DGGML_CCACHE=$CCACHE -DLLAMA_BUILD_NUMBER=$NUMBER"

if [ -z "$SOURCE" ]; then
    SOURCE=llama.cpp-$REF
    CLONE="git clone --depth 1 --single-branch --branch $REF -- $REPO $SOURCE"
else
    CLONE=
fi
[ -n "$OUT" ] || OUT=$SOURCE/build-$BACKEND
WANTED="llama-cli llama-completion llama-server llama-bench llama-gguf-split llama-fit-params llama-quantize llama-imatrix ggml-rpc-server rpc-server"

if [ -n "$DRY" ]; then
    [ -z "$CLONE" ] || echo "$CLONE"
    echo "cmake -S $SOURCE -B $OUT $FLAGS"
    echo "cmake --build $OUT --config Release -j $JOBS --target <those of: $WANTED>"
    exit 0
fi

command -v cmake >/dev/null 2>&1 || die "cmake not found: install it (Debian/Ubuntu: sudo apt-get install cmake build-essential; macOS: brew install cmake)"
if [ -n "$CLONE" ] && [ ! -f "$SOURCE/CMakeLists.txt" ]; then
    # shellcheck disable=SC2086
    $CLONE || die "git clone failed; pass --source DIR with a llama.cpp tree instead"
fi
[ -z "$CLONE" ] || patch_log_flush "$SOURCE"  # a tree it cloned; never a --source DIR of yours
[ -f "$SOURCE/CMakeLists.txt" ] && [ -d "$SOURCE/ggml" ] || die "$SOURCE is not a llama.cpp source tree"

# shellcheck disable=SC2086
cmake -S "$SOURCE" -B "$OUT" $FLAGS
AVAILABLE=$(cmake --build "$OUT" --target help)
TARGETS=
for t in $WANTED; do
    if printf '%s\n' "$AVAILABLE" | grep -Eq "(^\.\.\. $t\$|^$t: )"; then TARGETS="$TARGETS $t"; fi
done
[ -n "$TARGETS" ] || die "no llama.cpp programs found among the build targets"
echo "building:$TARGETS"
# shellcheck disable=SC2086
cmake --build "$OUT" --config Release -j "$JOBS" --target $TARGETS
echo "programs are in $OUT/bin"
