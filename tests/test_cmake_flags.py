"""Pure builders for llama.cpp's CMake configuration (backend choice, flags, targets, progress)."""

from __future__ import annotations

import pytest

from r1run.errors import BadInput, ToolMissing
from r1run.llama import cmake
from r1run.llama.cmake import Backend, Toolchain

LINUX = Toolchain(system="Linux", machine="x86_64")


@pytest.mark.parametrize(
    ("tc", "expected"),
    [
        (Toolchain("Darwin", "arm64"), Backend.METAL),
        (Toolchain("Darwin", "x86_64"), Backend.CPU),
        (Toolchain("Linux", "x86_64", nvcc="/usr/local/cuda/bin/nvcc", nvidia_gpu=True), Backend.CUDA),
        (Toolchain("Linux", "x86_64", nvcc="/usr/local/cuda/bin/nvcc", nvidia_gpu=False), Backend.CPU),
        (Toolchain("Linux", "x86_64", hipcc="/opt/rocm/bin/hipcc"), Backend.ROCM),
        (Toolchain("Linux", "x86_64", glslc="/usr/bin/glslc"), Backend.VULKAN),
        (LINUX, Backend.CPU),
    ],
)
def test_detect_backend(tc: Toolchain, expected: Backend) -> None:
    backend, reason = cmake.detect_backend(tc)
    assert backend is expected
    assert reason


def test_nvcc_without_gpu_says_why_cpu() -> None:
    _, reason = cmake.detect_backend(Toolchain("Linux", "x86_64", nvcc="/x/nvcc"))
    assert "no NVIDIA GPU" in reason and "--backend cuda" in reason


@pytest.mark.parametrize("backend", [Backend.CUDA, Backend.ROCM, Backend.VULKAN, Backend.METAL])
def test_requested_backend_without_toolkit_is_refused(backend: Backend) -> None:
    with pytest.raises(ToolMissing) as info:
        cmake.check_backend(backend, LINUX)
    assert "--backend cpu" in (info.value.hint or "")


def test_requested_backend_with_toolkit_passes() -> None:
    cmake.check_backend(Backend.CUDA, Toolchain("Linux", "x86_64", nvcc="/x/nvcc"))
    cmake.check_backend(Backend.CPU, LINUX)


def test_parse_backend() -> None:
    assert cmake.parse_backend("auto") is None
    assert cmake.parse_backend("CUDA") is Backend.CUDA
    with pytest.raises(BadInput) as info:
        cmake.parse_backend("tpu")
    assert "cpu, metal, cuda, rocm, vulkan" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("backend", "flag"),
    [(Backend.CPU, "-DGGML_METAL=OFF"), (Backend.METAL, "-DGGML_METAL=ON"), (Backend.CUDA, "-DGGML_CUDA=ON"),
     (Backend.ROCM, "-DGGML_HIP=ON"), (Backend.VULKAN, "-DGGML_VULKAN=ON")],
)
def test_flags_per_backend(backend: Backend, flag: str) -> None:
    flags = cmake.cmake_flags(backend, ccache=False, release_number=11434)
    assert flag in flags
    for required in ("-DGGML_RPC=ON", "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_TESTS=OFF",
                     "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_BUILD_NUMBER=11434",
                     "-DGGML_CCACHE=OFF"):
        assert required in flags
    others = {f for b in Backend if b is not backend for f in cmake.BACKEND_FLAGS[b]} - set(cmake.BACKEND_FLAGS[backend])
    assert not (others & set(flags) - {"-DGGML_METAL=OFF"})


def test_cuda_without_gpu_names_architectures() -> None:
    flags = cmake.cmake_flags(Backend.CUDA, ccache=True, gpu_present=False)
    assert f"-DCMAKE_CUDA_ARCHITECTURES={cmake.CUDA_PORTABLE_ARCHS}" in flags
    assert "-DGGML_CCACHE=ON" in flags


def test_extra_flags_come_last() -> None:
    flags = cmake.cmake_flags(Backend.CPU, ccache=False, extra=("-DGGML_AVX512=OFF",))
    assert flags[-1] == "-DGGML_AVX512=OFF"


MAKE_HELP = """The following are some of the valid targets for this Makefile:
... all (the default if no target is provided)
... clean
... ggml-rpc-server
... llama-bench
... llama-cli
... llama-server
"""

NINJA_HELP = """All primary targets available:
llama-cli: phony
llama-completion: phony
rpc-server: phony
build.ninja: RERUN_CMAKE
"""


def test_targets_from_make_and_ninja() -> None:
    assert {"ggml-rpc-server", "llama-cli", "llama-server", "llama-bench"} <= cmake.parse_target_help(MAKE_HELP)
    assert {"llama-cli", "llama-completion", "rpc-server"} <= cmake.parse_target_help(NINJA_HELP)


def test_choose_targets_adapts_to_names() -> None:
    new = cmake.choose_targets(cmake.parse_target_help(MAKE_HELP))
    assert new["rpc-server"] == "ggml-rpc-server"
    assert "completion" not in new  # this release has no llama-completion: not asked for
    old = cmake.choose_targets(cmake.parse_target_help(NINJA_HELP))
    assert old["rpc-server"] == "rpc-server"
    assert old["completion"] == "llama-completion"


def test_progress_lines() -> None:
    assert cmake.progress_of("[ 35%] Building CXX object src/CMakeFiles/llama.dir/llama.cpp.o") == 35.0
    assert cmake.progress_of("[100%] Built target llama-cli") == 100.0
    assert cmake.progress_of("[12/48] Building CXX object x.o") == 25.0
    assert cmake.progress_of("-- Configuring done") is None


def test_jobs() -> None:
    assert cmake.validate_jobs(3) == 3
    with pytest.raises(BadInput):
        cmake.validate_jobs(0)
