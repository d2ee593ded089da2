"""What this machine has: CPU, memory, GPUs. Detection is thin; parsers of tool output are pure."""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from r1run import proc
from r1run.errors import ToolMissing
from r1run.units import GiB, MiB


@dataclass(frozen=True)
class Gpu:
    name: str
    vendor: str  # nvidia | amd | apple | vulkan | rpc | other
    total_bytes: int
    free_bytes: int
    source: str  # how it was measured, e.g. "nvidia-smi", "llama.cpp --list-devices"
    device: str = ""  # llama.cpp's device name when known (CUDA0, MTL0, RPC0...)


@dataclass(frozen=True)
class Cpu:
    model: str
    physical_cores: int
    logical_cores: int
    usable_cores: int  # what this process may run on (affinity)
    performance_cores: int | None  # Apple: hw.perflevel0.physicalcpu
    simd: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Machine:
    os: str
    arch: str
    cpu: Cpu
    ram_total: int
    ram_available: int
    gpus: list[Gpu]

    def to_dict(self) -> dict:
        return asdict(self)


# --- parsers (pure; each quotes the lines it reads) -------------------------------------------

def parse_nvidia_smi(text: str) -> list[Gpu]:
    """`nvidia-smi --query-gpu=index,name,memory.total,memory.free,memory.used --format=csv,noheader,nounits`:

        0, NVIDIA GeForce RTX 4090, 24564, 23988, 15
    """
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        try:
            total, free = int(float(parts[2])) * MiB, int(float(parts[3])) * MiB
        except ValueError:
            continue
        gpus.append(Gpu(parts[1], "nvidia", total, free, "nvidia-smi", f"CUDA{parts[0]}"))
    return gpus


def parse_rocm_smi(text: str) -> list[Gpu]:
    """`rocm-smi --showmeminfo vram --json`:

        {"card0": {"VRAM Total Memory (B)": "25753026560", "VRAM Total Used Memory (B)": "12345"}}
    """
    try:
        data = json.loads(text)
    except ValueError:
        return []
    gpus = []
    for i, (card, info) in enumerate(sorted(data.items()) if isinstance(data, dict) else []):
        if not isinstance(info, dict):
            continue
        try:
            total = int(info["VRAM Total Memory (B)"])
            used = int(info.get("VRAM Total Used Memory (B)", 0))
        except (KeyError, ValueError, TypeError):
            continue
        gpus.append(Gpu(card, "amd", total, max(total - used, 0), "rocm-smi", f"ROCm{i}"))
    return gpus


_LIST_DEVICE = re.compile(r"^\s+(?P<dev>[A-Za-z][\w]*\d*(?:\[[^\]]*\])?):\s+(?P<name>.*?)"
                          r"\s+\((?P<total>\d+) MiB, (?P<free>\d+) MiB free\)\s*$")


def parse_list_devices(text: str) -> list[Gpu]:
    """llama.cpp's `--list-devices` (stdout), one line per non-CPU device:

        Available devices:
          CUDA0: NVIDIA GeForce RTX 4090 (24077 MiB, 23500 MiB free)
          MTL0: Apple M4 Max (98304 MiB, 98303 MiB free)
          RPC0: 127.0.0.1:50052 (23456 MiB, 23000 MiB free)
    """
    gpus = []
    for line in text.splitlines():
        m = _LIST_DEVICE.match(line)
        if not m:
            continue
        dev = m.group("dev")
        vendor = next((v for p, v in (("CUDA", "nvidia"), ("MTL", "apple"), ("Metal", "apple"), ("ROCm", "amd"),
                                       ("HIP", "amd"), ("Vulkan", "vulkan"), ("RPC",
                                                                              "rpc")) if dev.startswith(p)), "other")
        total, free = int(m.group("total")) * MiB, int(m.group("free")) * MiB
        if total == 0:  # BLAS and similar host-memory devices report 0 MiB
            continue
        gpus.append(Gpu(m.group("name"), vendor, total, free, "llama.cpp --list-devices", dev))
    return gpus


def metal_default_working_set(memsize: int, wired_limit_mb: int) -> int:
    """Metal's recommended working set: iogpu.wired_limit_mb when set, else macOS's default share."""
    if wired_limit_mb > 0:
        return wired_limit_mb * MiB
    share = 2 / 3 if memsize <= 32 * GiB else 0.75
    return int(memsize * share)


def cpuinfo_feature_line(text: str) -> tuple[str, ...]:
    """Every word of /proc/cpuinfo's first `flags` (x86) or `Features` (Arm) line."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return tuple(value.split())
    return ()


def parse_cpuinfo_flags(text: str) -> list[str]:
    """SIMD features from /proc/cpuinfo's `flags` (x86) or `Features` (Arm) line."""
    wanted = ("avx", "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "fma", "f16c", "amx_int8",
              "asimd", "sve", "sve2", "i8mm", "asimddp", "fphp")
    have = set(cpuinfo_feature_line(text))
    return [w for w in wanted if w in have]


def cpuinfo_flags() -> tuple[str, ...]:
    """All of this CPU's /proc/cpuinfo flags (Linux); () elsewhere. llama.amx names them to cmake."""
    try:
        return cpuinfo_feature_line(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:
        return ()


# --- detection -------------------------------------------------------------------------------

def _sysctl(name: str) -> str | None:
    try:
        res = proc.run(["sysctl", "-n", name], timeout=5)
    except ToolMissing:
        return None
    return res.stdout.strip() if res.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def detect_cpu() -> Cpu:
    """The CPU (fixed for the life of the process: asked once, whoever asks)."""

    logical = psutil.cpu_count(logical=True) or 1
    physical = psutil.cpu_count(logical=False) or logical
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    model, simd, perf = platform.machine(), [], None  # platform.processor() forks `uname -p`
    if platform.system() == "Linux":
        try:
            text = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            text = ""
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        model = m.group(1).strip() if m else model
        simd = parse_cpuinfo_flags(text)
    elif platform.system() == "Darwin":
        model = _sysctl("machdep.cpu.brand_string") or model
        p = _sysctl("hw.perflevel0.physicalcpu")
        perf = int(p) if p and p.isdigit() else None
        if platform.machine() == "arm64":
            simd = ["neon"] + [f for f in ("FEAT_DotProd", "FEAT_I8MM",
                                           "FEAT_BF16") if _sysctl(f"hw.optional.arm.{f}") == "1"]
    return Cpu(model, physical, logical, usable, perf, simd)


_window: tuple[float, float, float] | None = None  # (monotonic time, all CPUs' busy seconds, ours)


def begin_cpu_window() -> None:
    """Start measuring how busy other programs keep the CPUs (see `busy_cores`).

    Called as r1run starts, so the sample spans r1run's own start-up instead of a sleep.
    """
    global _window
    _window = (time.monotonic(), _system_busy_seconds(), _own_cpu_seconds())


def busy_cores(min_window: float = 0.1) -> float:
    """How many logical CPUs programs other than r1run and its children kept busy since
    `begin_cpu_window()` (waiting until at least `min_window` seconds have passed)."""
    if _window is None:
        begin_cpu_window()
    assert _window is not None
    t0, busy0, own0 = _window
    left = min_window - (time.monotonic() - t0)
    if left > 0:
        time.sleep(left)
    wall = time.monotonic() - t0
    others = (_system_busy_seconds() - busy0) - (_own_cpu_seconds() - own0)
    return max(0.0, others / wall)


def _system_busy_seconds() -> float:
    """CPU seconds all logical CPUs spent busy since boot (as psutil.cpu_percent counts them)."""

    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)  # guest time is in user too
    return total - idle


def _own_cpu_seconds() -> float:
    """CPU seconds used by this process and every child it has or had."""

    me = psutil.Process()
    t = me.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in me.children(recursive=True):
        try:
            c = child.cpu_times()
        except psutil.Error:
            continue
        total += c.user + c.system
    return total


def detect_gpus(list_devices_output: str | None = None) -> list[Gpu]:
    """GPUs as llama.cpp sees them when its output is given, else from the vendors' tools.

    One command asks several times (planning, profiles, doctor); nvidia-smi and friends take
    a noticeable time to start, so the answer is kept for the life of the process.
    """
    return list(_detect_gpus(list_devices_output))


@functools.lru_cache(maxsize=4)
def _detect_gpus(list_devices_output: str | None) -> tuple[Gpu, ...]:
    return tuple(_ask_gpus(list_devices_output))


def _ask_gpus(list_devices_output: str | None) -> list[Gpu]:
    if list_devices_output:
        found = [g for g in parse_list_devices(list_devices_output) if g.vendor != "rpc"]
        if found:
            return found
    if proc.which("nvidia-smi"):
        res = proc.run(["nvidia-smi", "--query-gpu=index,name,memory.total,memory.free,memory.used",
                        "--format=csv,noheader,nounits"], timeout=20)
        if res.returncode == 0:
            return parse_nvidia_smi(res.stdout)
    if proc.which("rocm-smi"):
        res = proc.run(["rocm-smi", "--showmeminfo", "vram", "--json"], timeout=20)
        if res.returncode == 0:
            return parse_rocm_smi(res.stdout)
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        mem = _sysctl("hw.memsize")
        wired = _sysctl("iogpu.wired_limit_mb")
        if mem and mem.isdigit():
            ws = metal_default_working_set(int(mem), int(wired) if wired and wired.isdigit() else 0)
            return [Gpu(detect_cpu().model, "apple", ws, ws, "estimate: macOS default Metal working set", "MTL0")]
    return []


def detect(list_devices_output: str | None = None) -> Machine:
    vm = psutil.virtual_memory()
    return Machine(platform.system(), platform.machine(), detect_cpu(), vm.total, vm.available,
                   detect_gpus(list_devices_output))

