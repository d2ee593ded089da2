"""Pure builders for llama.cpp's CMake configuration: backend choice, flags, targets."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from r1run.errors import BadInput, ToolMissing


class Backend(str, enum.Enum):
    CPU = "cpu"
    METAL = "metal"
    CUDA = "cuda"
    ROCM = "rocm"
    VULKAN = "vulkan"


@dataclass(frozen=True)
class Toolchain:
    """What the machine offers for building; gathered by `r1run.llama.toolchain.detect()`."""

    system: str  # platform.system(): Darwin, Linux, Windows
    machine: str  # platform.machine(): arm64, x86_64, aarch64
    nvcc: str | None = None
    nvidia_gpu: bool = False  # a GPU the driver sees (nvidia-smi -L or /proc/driver/nvidia/gpus)
    hipcc: str | None = None
    glslc: str | None = None
    vulkan_sdk: str | None = None
    ccache: str | None = None
    npm: str | None = None  # npm and node build llama-server's web UI from source (`--ui npm`)
    node: str | None = None


def parse_backend(text: str) -> Backend | None:
    """'auto' gives None; anything unknown is a BadInput naming the valid choices."""
    if text == "auto":
        return None
    try:
        return Backend(text.lower())
    except ValueError:
        valid = ", ".join(["auto"] + [b.value for b in Backend])
        raise BadInput(f"unknown backend {text!r}", f"choose one of: {valid}") from None


def is_apple_silicon(tc: Toolchain) -> bool:
    return tc.system == "Darwin" and tc.machine in ("arm64", "aarch64")


def detect_backend(tc: Toolchain) -> tuple[Backend, str]:
    """The best backend this machine can build, and why it was chosen."""
    if is_apple_silicon(tc):
        return Backend.METAL, "Apple Silicon: Metal"
    if tc.nvcc and tc.nvidia_gpu:
        return Backend.CUDA, f"NVIDIA GPU and CUDA toolkit found ({tc.nvcc})"
    if tc.hipcc:
        return Backend.ROCM, f"ROCm found ({tc.hipcc})"
    if tc.glslc or tc.vulkan_sdk:
        return Backend.VULKAN, f"Vulkan SDK found ({tc.glslc or tc.vulkan_sdk})"
    if tc.nvcc:
        return Backend.CPU, f"CUDA toolkit found ({tc.nvcc}) but no NVIDIA GPU: CPU (--backend cuda builds anyway)"
    return Backend.CPU, "no GPU toolkit found (nvcc, hipcc, glslc): CPU"


def check_backend(backend: Backend, tc: Toolchain) -> None:
    """Refuse a requested backend whose toolkit is missing, before anything is configured."""
    missing: dict[Backend, tuple[bool, str]] = {
        Backend.METAL: (tc.system == "Darwin", "Metal needs macOS"),
        Backend.CUDA: (bool(tc.nvcc), "the CUDA toolkit (nvcc) was not found on PATH or in CUDA_HOME"),
        Backend.ROCM: (bool(tc.hipcc), "ROCm (hipcc) was not found on PATH or in ROCM_PATH"),
        Backend.VULKAN: (bool(tc.glslc or tc.vulkan_sdk), "the Vulkan SDK (glslc) was not found"),
    }
    if backend in missing:
        ok, why = missing[backend]
        if not ok:
            raise ToolMissing(
                f"cannot build the {backend.value} backend: {why}",
                "install it, or build for the CPU with `r1run build --backend cpu`",
            )


BASE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",  # self-contained programs that can be installed atomically
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DGGML_RPC=ON",
    # No curl/openssl in the programs; the web UI's flags come from `ui_flags` (upstream's default would
    # download a prebuilt UI whether asked or not).
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_CURL=OFF",
)

NATIVE = "-DGGML_NATIVE=ON"
BACKEND_FLAGS: dict[Backend, tuple[str, ...]] = {
    Backend.CPU: (NATIVE, "-DGGML_METAL=OFF"),
    Backend.METAL: (NATIVE, "-DGGML_METAL=ON", "-DGGML_METAL_EMBED_LIBRARY=ON"),
    Backend.CUDA: (NATIVE, "-DGGML_CUDA=ON"),
    Backend.ROCM: (NATIVE, "-DGGML_HIP=ON"),
    Backend.VULKAN: (NATIVE, "-DGGML_VULKAN=ON"),
}


# CUDA architectures to build when no GPU is present to detect ("native" would fail to configure).
CUDA_PORTABLE_ARCHS = "75;80;86;89;90"


_CUDA_ARCH = re.compile(r"(native|all|all-major|\d{2,3}(-real|-virtual)?)")


def cuda_arch_flag(text: str) -> str:
    """`--cuda-arch 90` or `86,89` -> -DCMAKE_CUDA_ARCHITECTURES=86;89 (checked: compute capabilities x 10)."""
    archs = [a.strip() for a in re.split(r"[;,]", text or "")]
    if not archs or not all(_CUDA_ARCH.fullmatch(a) for a in archs):
        raise BadInput(f"--cuda-arch {text!r} is not a list of CUDA architectures",
                       "give compute capabilities x 10, e.g. 90 (H100), 89 (RTX 4090), 86 (RTX 3090), or native")
    return f"-DCMAKE_CUDA_ARCHITECTURES={';'.join(archs)}"


def ui_flags(source: str) -> list[str]:
    """How llama-server's web UI is provisioned (r1run.llama.ui.choose): `npm` builds tools/ui with npm,
    `prebuilt` downloads it from the hub, `none` neither. At most one, so the build log says which ran."""
    build = "ON" if source == "npm" else "OFF"
    prebuilt = "ON" if source == "prebuilt" else "OFF"
    return [f"-DLLAMA_BUILD_UI={build}", f"-DLLAMA_USE_PREBUILT_UI={prebuilt}"]


# ggml's x86 options for GGML_NATIVE=OFF (ggml/src/ggml-cpu/CMakeLists.txt, b11434), each with the /proc/cpuinfo
# flags it needs
X86_FEATURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("GGML_SSE42", ("sse4_2",)), ("GGML_F16C", ("f16c",)), ("GGML_FMA", ("fma",)), ("GGML_BMI2", ("bmi2",)),
    ("GGML_AVX", ("avx",)), ("GGML_AVX2", ("avx2",)), ("GGML_AVX_VNNI", ("avx_vnni",)),
    ("GGML_AVX512", ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw")),
    ("GGML_AVX512_VBMI", ("avx512vbmi",)), ("GGML_AVX512_VNNI", ("avx512_vnni",)),
    ("GGML_AVX512_BF16", ("avx512_bf16",)),
)


def cpu_feature_flags(cpu_flags: tuple[str, ...]) -> list[str]:
    """Instead of -march=native: each x86 feature this CPU has, AMX off (pure)."""
    have = set(cpu_flags)
    named = [f"-D{opt}={'ON' if all(f in have for f in needs) else 'OFF'}" for opt, needs in X86_FEATURES]
    return ["-DGGML_NATIVE=OFF", *named, "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"]


def without_native(flags: list[str], cpu_flags: tuple[str, ...]) -> list[str]:
    """`flags` with -DGGML_NATIVE=ON replaced, where it stood, by this CPU's features named one by one and AMX
    off (the one form a build without AMX has, however it was decided: pure)."""
    if NATIVE not in flags:
        return list(flags)
    i = flags.index(NATIVE)
    return [*flags[:i], *cpu_feature_flags(cpu_flags), *flags[i + 1:]]


def cmake_flags(backend: Backend, *, ccache: bool, release_number: int | None = None,
                commit: str | None = None, extra: tuple[str, ...] = (), gpu_present: bool = True,
                ui: str = "none", without_amx: tuple[str, ...] = ()) -> list[str]:
    """The -D flags for configuring llama.cpp for one backend, with the web UI from `ui` (npm, prebuilt, none);
    `without_amx`: this CPU's /proc/cpuinfo flags when its AMX crashes llama.cpp (llama.amx), to name its other
    features one by one instead of -march=native."""
    backend_flags = list(BACKEND_FLAGS[backend])
    if without_amx:
        backend_flags = without_native(backend_flags, without_amx)
    flags = list(BASE_FLAGS) + ui_flags(ui) + backend_flags
    chosen = any(f.startswith("-DCMAKE_CUDA_ARCHITECTURES=") for f in extra)
    if backend is Backend.CUDA and not gpu_present and not chosen:
        flags.append(f"-DCMAKE_CUDA_ARCHITECTURES={CUDA_PORTABLE_ARCHS}")
    flags.append(f"-DGGML_CCACHE={'ON' if ccache else 'OFF'}")
    # A tree without .git (or a shallow clone) would report build 0 / 1: say the real release.
    if release_number is not None:
        flags.append(f"-DLLAMA_BUILD_NUMBER={release_number}")
    if commit:
        flags.append(f"-DLLAMA_BUILD_COMMIT={commit}")
    flags.extend(extra)
    return flags


# Until mid-2025 the programs lived under examples/ (examples/main, examples/server, examples/rpc);
# such a tree needs examples enabled to build them.
OLD_LAYOUT_FLAGS = ("-DLLAMA_BUILD_EXAMPLES=ON",)


def layout_flags(has_tools_dir: bool, has_examples_main: bool) -> list[str]:
    """Flags a tree's layout needs beyond the backend's: examples on for a pre-tools/ tree."""
    return list(OLD_LAYOUT_FLAGS) if has_examples_main and not has_tools_dir else []


# Roles r1run needs, each with the target names releases have used, newest first.
PROGRAM_TARGETS: dict[str, tuple[str, ...]] = {
    "chat": ("llama-cli",),
    "completion": ("llama-completion",),
    "server": ("llama-server",),
    "bench": ("llama-bench",),
    "gguf-split": ("llama-gguf-split",),
    "fit-params": ("llama-fit-params",),
    "quantize": ("llama-quantize",),
    "imatrix": ("llama-imatrix",),
    "rpc-server": ("ggml-rpc-server", "rpc-server"),
}


_MAKE_TARGET = re.compile(r"^\.\.\. ([\w.+-]+)")  # Unix Makefiles: "... llama-cli"
_NINJA_TARGET = re.compile(r"^([\w.+-]+): (?:phony|CUSTOM_COMMAND|EXECUTABLE|\w+)")  # Ninja: "llama-cli: phony"


def parse_target_help(text: str) -> set[str]:
    """Target names from `cmake --build B --target help` (Makefiles or Ninja)."""
    names: set[str] = set()
    for line in text.splitlines():
        m = _MAKE_TARGET.match(line.strip()) or _NINJA_TARGET.match(line.strip())
        if m:
            names.add(m.group(1))
    return names


def choose_targets(available: set[str]) -> dict[str, str]:
    """role -> target for every role whose program this release has."""
    chosen: dict[str, str] = {}
    for role, names in PROGRAM_TARGETS.items():
        for name in names:
            if name in available:
                chosen[role] = name
                break
    return chosen


_PERCENT = re.compile(r"^\[\s*(\d{1,3})%\]")  # "[ 35%] Building CXX object ..."
_NINJA_STEP = re.compile(r"^\[(\d+)/(\d+)\]")  # "[12/345] Building CXX object ..."


def progress_of(line: str) -> float | None:
    """Build progress in percent from one line of CMake's build output, if it carries one."""
    m = _PERCENT.match(line)
    if m:
        return float(m.group(1))
    m = _NINJA_STEP.match(line)
    if m and int(m.group(2)) > 0:
        return 100.0 * int(m.group(1)) / int(m.group(2))
    return None


def validate_jobs(jobs: int) -> int:
    if jobs < 1:
        raise BadInput(f"--jobs must be at least 1 (got {jobs})", "omit --jobs to use one job per physical core")
    return jobs
