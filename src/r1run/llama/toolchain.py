"""Detect what this machine can build with: GPU toolkits, cmake, compilers, ccache."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from r1run import proc
from r1run.errors import ToolMissing
from r1run.llama.cmake import Toolchain


def _find(name: str, *homes: str) -> str | None:
    found = proc.which(name)
    if found:
        return found
    for home in homes:
        base = os.environ.get(home)
        if base and (Path(base) / "bin" / name).exists():
            return str(Path(base) / "bin" / name)
    return None


def detect() -> Toolchain:
    return Toolchain(
        system=platform.system(),
        machine=platform.machine(),
        nvcc=_find("nvcc", "CUDA_HOME", "CUDA_PATH") or (
            "/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None),
        hipcc=_find("hipcc", "ROCM_PATH", "HIP_PATH") or (
            "/opt/rocm/bin/hipcc" if Path("/opt/rocm/bin/hipcc").exists() else None),
        glslc=_find("glslc", "VULKAN_SDK"),
        nvidia_gpu=_nvidia_gpu_present(),
        vulkan_sdk=os.environ.get("VULKAN_SDK"),
        ccache=proc.which("ccache"),
        npm=proc.which("npm"),
        node=proc.which("node"),
    )


def _nvidia_gpu_present() -> bool:
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and any(gpus.iterdir()):
        return True
    if proc.which("nvidia-smi"):
        res = proc.run(["nvidia-smi", "-L"], timeout=20)
        return res.returncode == 0 and "GPU" in res.stdout
    return False


def install_hint(*tools: str) -> str:
    """How to install build tools on this OS."""
    names = " ".join(tools)
    if platform.system() == "Darwin":
        return f"install with `xcode-select --install` (compiler) and `brew install {names}`"
    return (f"install with `sudo apt-get install {names} build-essential` (Debian/Ubuntu) "
            "or your distribution's packages")


def require_cmake() -> str:
    cmake = proc.which("cmake")
    if not cmake:
        raise ToolMissing("cmake was not found on PATH; it is needed to build llama.cpp", install_hint("cmake"))
    return cmake


def tool_version(path: str) -> str | None:
    """First line of `TOOL --version`, or None when it cannot run."""
    try:
        out = proc.run([path, "--version"], timeout=20)
    except ToolMissing:
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if out.returncode == 0 and text else None
