"""What a llama.cpp run measured: typed, frozen records shared by the parsers and renderers.

Sizes are MiB as llama.cpp prints them; times are milliseconds; speeds are tokens per second.
The JSON form (`perf.export.run_json`: these fields, MiB turned into bytes) is r1run's `perf` schema (docs/perf.md).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from r1run.units import size

SCHEMA = "r1run.perf/2"

Status = Literal["ok", "failed", "incomplete"]
BufferKind = Literal["model", "kv", "compute", "output"]
DeviceKind = Literal["host", "gpu", "rpc"]
OomTarget = Literal["model", "kv_cache", "compute", "output", "context", "runtime", "unknown"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Phase(_Frozen):
    """One timed phase: prompt (llama.cpp's "prompt eval"), gen (its "eval") or sampling."""

    ms: float | None = None
    tokens: int | None = None  # "runs" for gen and sampling lines: llama.cpp counts decode calls
    ms_per_token: float | None = None
    tps: float | None = None


class Offload(_Frozen):
    """`load_tensors: offloaded 31/31 layers to GPU`."""

    layers: int
    total: int


class Buffer(_Frozen):
    """One buffer llama.cpp allocated, e.g. `load_tensors:   CPU_Mapped model buffer size =    92.10 MiB`."""

    kind: BufferKind
    name: str  # llama.cpp's buffer-type name: CPU_Mapped, CUDA0, CUDA_Host, MTL0, RPC0[127.0.0.1:50152]
    device: DeviceKind
    mib: float


class KvCache(_Frozen):
    """`llama_kv_cache: size =  180.00 MiB (  8192 cells,  30 layers,  1/1 seqs), K (f16): ..., V (f16): ...`."""

    mib: float
    cells: int | None = None
    layers: int | None = None
    type_k: str | None = None
    k_mib: float | None = None
    type_v: str | None = None
    v_mib: float | None = None


class MemoryRow(_Frozen):
    """One row of llama.cpp's `memory breakdown [MiB]` table; `total`/`free`/`unaccounted` only for devices."""

    name: str
    description: str | None = None
    total: int | None = None
    free: int | None = None
    self: int
    model: int
    context: int
    compute: int
    unaccounted: int | None = None


class Device(_Frozen):
    """A device llama.cpp listed or used:

        using device CUDA0 (NVIDIA GeForce RTX 4090) (0000:01:00.0) - 23500 MiB free
    """

    name: str
    description: str | None = None
    total_mib: int | None = None
    free_mib: int | None = None


class Threads(_Frozen):
    """`system_info: n_threads = 2 (n_threads_batch = 2) / 2`: used, for batches, and available."""

    n_threads: int
    n_threads_batch: int | None = None
    available: int | None = None


class OomEvent(_Frozen):
    """An allocation that failed: which memory (target), on which buffer type and device kind, how large."""

    target: OomTarget
    buffer: str | None = None
    device: DeviceKind | None = None
    bytes: int | None = None
    line: str

    @property
    def off_host(self) -> bool:
        """True when the failed allocation was on a GPU or remote device: fewer GPU layers may fit."""
        return self.device in ("gpu", "rpc")

    def describe(self) -> str:
        what = {"model": "model weights", "kv_cache": "KV cache", "compute": "compute buffer",
                "output": "output buffer", "context": "context", "runtime": "memory while running",
                "unknown": "memory"}[self.target]
        where = f" on {self.buffer}" if self.buffer else ""
        amount = f" ({size(self.bytes)})" if self.bytes else ""
        return f"out of memory allocating {what}{where}{amount}"


class BenchTest(_Frozen):
    """One llama-bench test (`pp512`, `tg128`, `pp512+tg128 @ d4096`) with its spread and parameters."""

    test: str
    n_prompt: int
    n_gen: int
    n_depth: int = 0
    avg_ts: float
    stddev_ts: float | None = None
    avg_ns: int | None = None
    stddev_ns: int | None = None
    params: dict[str, str | int | float | bool] = {}


class RunSummary(_Frozen):
    """One measured (or failed) run of a llama.cpp program, as read from its output."""

    source: str
    index: int  # 1-based position among the runs found in `source`
    line: int | None = None  # 1-based line where the run starts in `source`
    format: str  # where the speed figures came from, e.g. common_perf_print, server_slot, bench_csv
    program: str | None = None
    status: Status
    error: str | None = None
    errors: list[str] = []
    oom: OomEvent | None = None
    command: str | None = None
    build: str | None = None
    model: str | None = None
    load_ms: float | None = None
    prompt: Phase | None = None
    gen: Phase | None = None  # generation ("eval" in llama.cpp's logs)
    sampling: Phase | None = None
    total_ms: float | None = None
    total_tokens: int | None = None
    offload: Offload | None = None
    buffers: list[Buffer] = []
    kv_cache: KvCache | None = None
    memory: list[MemoryRow] = []
    devices: list[Device] = []
    threads: Threads | None = None
    bench: BenchTest | None = None
    context_full: bool = False  # the answer stopped because the context filled up (no context shift)
    context_dropped: bool = False  # the server dropped the conversation's oldest tokens to make room (context shift,
                                   # or a truncated prompt): the answer went on, without them

    @property
    def measured(self) -> bool:
        """True when the run yielded at least one speed figure."""
        return any(p is not None and p.tps is not None for p in (self.prompt, self.gen))

    def buffer_mib(self, kind: BufferKind, device: DeviceKind | None = None) -> float:
        """Sum of buffers of one kind, optionally on one device kind (host buffers include mmapped weights)."""
        return sum(b.mib for b in self.buffers if b.kind == kind and (device is None or b.device == device))


_GPU_BUFFER = re.compile(r"^(CUDA|ROCm|HIP|Vulkan|MTL|Metal|SYCL|CANN|MUSA|OpenCL|BLAS_GPU|GPU)\d*(?:_Mapped)?$", re.I)


def device_kind(buffer: str) -> DeviceKind:
    """Where a llama.cpp buffer type lives: `RPC0[host:port]` remote, `CUDA0`/`MTL0`/`Vulkan1` GPU, else host.

    `CPU`, `CPU_Mapped`, `CPU_REPACK`, `CUDA_Host` and `Metal_Mapped`-style host-pinned buffers are host
    memory: they must never be counted as GPU memory.
    """
    if buffer.upper().startswith("RPC"):
        return "rpc"
    if buffer.endswith("_Host") or buffer.upper().startswith("CPU"):
        return "host"
    if _GPU_BUFFER.match(buffer):
        return "gpu"
    return "host"
