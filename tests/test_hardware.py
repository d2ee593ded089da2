"""Hardware parsers on recorded tool output, and detection on this machine."""

from __future__ import annotations

import subprocess
import sys
import time

from r1run import hardware
from r1run.hardware import GiB, MiB


def test_nvidia_smi() -> None:
    gpus = hardware.parse_nvidia_smi("0, NVIDIA GeForce RTX 4090, 24564, 23988, 15\n1, NVIDIA A100-SXM4-80GB, 81920, 81000, 920\n")
    assert [g.device for g in gpus] == ["CUDA0", "CUDA1"]
    assert gpus[0].total_bytes == 24564 * MiB and gpus[0].free_bytes == 23988 * MiB
    assert gpus[1].name == "NVIDIA A100-SXM4-80GB" and gpus[1].vendor == "nvidia"
    assert hardware.parse_nvidia_smi("NVIDIA-SMI has failed because it couldn't communicate with the driver") == []


def test_rocm_smi() -> None:
    text = '{"card0": {"VRAM Total Memory (B)": "25753026560", "VRAM Total Used Memory (B)": "753026560"}}'
    (gpu,) = hardware.parse_rocm_smi(text)
    assert gpu.total_bytes == 25753026560 and gpu.free_bytes == 25000000000 and gpu.vendor == "amd"
    assert hardware.parse_rocm_smi("not json") == []


def test_llama_list_devices() -> None:
    text = """Available devices:
  CUDA0: NVIDIA GeForce RTX 4090 (24077 MiB, 23500 MiB free)
  MTL0: Apple M4 Max (98304 MiB, 98303 MiB free)
  RPC0: 127.0.0.1:50052 (23456 MiB, 23000 MiB free)
  BLAS: OpenBLAS (0 MiB, 0 MiB free)
"""
    gpus = hardware.parse_list_devices(text)
    assert [(g.device, g.vendor) for g in gpus] == [("CUDA0", "nvidia"), ("MTL0", "apple"), ("RPC0", "rpc")]
    assert gpus[0].total_bytes == 24077 * MiB and gpus[0].free_bytes == 23500 * MiB
    assert gpus[2].name == "127.0.0.1:50052"


def test_metal_working_set() -> None:
    assert hardware.metal_default_working_set(16 * GiB, 0) == int(16 * GiB * 2 / 3)
    assert hardware.metal_default_working_set(96 * GiB, 0) == 72 * GiB
    assert hardware.metal_default_working_set(192 * GiB, 180000) == 180000 * MiB


def test_cpuinfo_flags() -> None:
    x86 = "processor\t: 0\nflags\t\t: fpu sse avx avx2 fma f16c avx512f avx512_vnni\n"
    assert hardware.parse_cpuinfo_flags(x86) == ["avx", "avx2", "avx512f", "avx512_vnni", "fma", "f16c"]
    arm = "Features\t: fp asimd evtstrm aes asimddp sve i8mm\n"
    assert hardware.parse_cpuinfo_flags(arm) == ["asimd", "sve", "i8mm", "asimddp"]


def test_detect_this_machine() -> None:
    m = hardware.detect()
    assert m.cpu.physical_cores >= 1 and m.cpu.logical_cores >= m.cpu.physical_cores
    assert 1 <= m.cpu.usable_cores <= m.cpu.logical_cores
    assert m.ram_total > m.ram_available > 0


# --- how busy other programs keep the CPUs ----------------------------------------------------------

_SPIN = "import time\nt = time.time()\nwhile time.time() - t < {s}: pass\n"


def test_busy_cores_leaves_out_r1run_and_its_children_but_counts_other_programs() -> None:
    # r1run itself and a child of it (as llama.cpp started early is) spin: not "other programs".
    hardware.begin_cpu_window()
    child = subprocess.Popen([sys.executable, "-c", _SPIN.format(s=0.6)])
    t = time.time()
    while time.time() - t < 0.5:
        pass
    ours = hardware.busy_cores()
    child.wait()

    # A program that is not r1run's (detached: its parent exits at once) spins for as long.
    subprocess.run(["sh", "-c", f'"{sys.executable}" -c "$0" >/dev/null 2>&1 &', _SPIN.format(s=1.0)], check=True)
    time.sleep(0.1)
    hardware.begin_cpu_window()
    time.sleep(0.6)
    others = hardware.busy_cores()
    time.sleep(0.4)
    assert others - ours > 0.6, (ours, others)


def test_busy_cores_samples_for_at_least_the_window() -> None:
    hardware.begin_cpu_window()
    t = time.monotonic()
    hardware.busy_cores(min_window=0.2)
    assert time.monotonic() - t >= 0.19
