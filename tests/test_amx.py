"""CPUs that advertise AMX but crash in llama.cpp's AMX kernels (llama.amx): built without -march=native.

The crash itself is this project's machine's (a Xeon in a Firecracker VM, docs in llama/amx.py); what every
machine can check is the flags such a CPU gets, the verdict kept per CPU, and that the test build r1run made
runs a prompt here, whichever CPU this is.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from r1run.llama import amx, cmake
from r1run.llama.cmake import Backend

XEON = ("fpu", "sse4_2", "fma", "f16c", "bmi2", "avx", "avx2", "avx_vnni", "avx512f", "avx512dq", "avx512cd",
        "avx512bw", "avx512vl", "avx512vbmi", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


def test_without_native_each_feature_of_the_cpu_is_named_and_amx_is_off():
    flags = cmake.cmake_flags(Backend.CPU, ccache=False, without_amx=XEON)
    assert "-DGGML_NATIVE=ON" not in flags and "-DGGML_NATIVE=OFF" in flags
    for on in ("GGML_AVX2", "GGML_AVX512", "GGML_AVX512_VNNI", "GGML_AVX512_BF16", "GGML_AVX_VNNI", "GGML_FMA"):
        assert f"-D{on}=ON" in flags
    assert {"-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"} <= set(flags)
    # AVX-512 in ggml's sense needs all five of F, CD, VL, DQ, BW
    partial = cmake.cpu_feature_flags(tuple(f for f in XEON if f != "avx512bw"))
    assert "-DGGML_AVX512=OFF" in partial and "-DGGML_AVX512_VNNI=ON" in partial
    assert "-DGGML_NATIVE=ON" in cmake.cmake_flags(Backend.CPU, ccache=False)  # every other CPU: native


def test_the_verdict_is_kept_for_this_cpu(tmp_path: Path):
    assert not amx.known_to_crash(tmp_path)
    amx.remember(tmp_path, "killed by SIGILL")
    assert amx.known_to_crash(tmp_path)
    (tmp_path / "amx.json").write_text('{"cpu": "another CPU", "crashes": true}')
    assert not amx.known_to_crash(tmp_path)  # a home carried to another machine checks again
    (tmp_path / "amx.json").write_text("not json")
    assert not amx.known_to_crash(tmp_path)


@pytest.mark.llama
def test_the_test_build_runs_a_prompt_on_this_cpu(llama_bin: Path):
    assert amx.prompt_crashes(llama_bin / "llama-bench", llama_bin / "llama-quantize") is None
