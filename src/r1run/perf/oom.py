"""Classifying llama.cpp's out-of-memory failures: which memory, on which device, how large.

An allocation failure is reported in two steps; the first names the buffer type, the second
says what the memory was for:

    E ggml_backend_buft_alloc_buffer_n_default: failed to allocate RPC0[127.0.0.1:50154] buffer of size 188743680
    E llama_init_from_model: failed to initialize the context: failed to allocate buffer for kv cache

Other first steps (CUDA, Metal, Vulkan, the graph allocator):

    ggml_backend_cuda_buffer_type_alloc_buffer: allocating 5127.53 MiB on device 0: cudaMalloc failed: out of memory
    alloc_tensor_range: failed to allocate CUDA0 buffer of size 5376573440
    ggml_gallocr_reserve_n: failed to allocate CUDA0 buffer of size 1107296256
    ggml_backend_metal_buffer_type_alloc_buffer: failed to allocate Metal buffer of 8589934592 bytes (out of memory)
    ggml_metal_buffer_init: error: failed to allocate buffer, size = 8192.00 MiB
    ggml_vulkan: Device memory allocation of size 4294967296 failed.
    ggml_aligned_malloc: insufficient memory (attempted to allocate  28.27 MB)       (ik_llama.cpp, host memory)

(ik_llama.cpp 0.1.5 prints that last one on stdout and aborts, with no second step: it came while it repacked the
weights under -rtr with RAM capped by RLIMIT_AS. r1run.run.oneshot hands it over from the answer stream.)

and second steps:

    llama_model_load: error loading model: unable to allocate CUDA0 buffer
    llama_init_from_model: failed to initialize the context: failed to allocate compute pp buffers
    llama_context: failed to allocate output buffer of size 0.19 MiB
    llama_kv_cache_init: failed to allocate buffer for kv cache              (2024-25)
    CUDA error: out of memory                                                  (while running)
"""

from __future__ import annotations

import re

from r1run.perf.model import OomEvent, OomTarget, device_kind

_ALLOC = re.compile(r"^(?P<func>\w+): failed to allocate (?P<buf>\S+) buffer of size (?P<bytes>\d+)\s*$")
_CUDA = re.compile(r"allocating ([\d.]+) MiB on device (\d+): cudaMalloc failed: out of memory")
_METAL_BYTES = re.compile(r"failed to allocate Metal buffer of (\d+) bytes")
_METAL_MIB = re.compile(r"ggml_metal\w*: error: failed to allocate buffer, size =\s*([\d.]+) MiB")
_ALIGNED = re.compile(r"ggml_aligned_malloc: insufficient memory \(attempted to allocate\s+([\d.]+) MB\)")
_VULKAN = re.compile(r"ggml_vulkan: Device memory allocation of size (\d+) failed|ErrorOutOfDeviceMemory")

_CAUSES: list[tuple[re.Pattern[str], OomTarget]] = [
    (re.compile(r"unable to allocate (\S+) buffer|error loading model: .*failed to allocate buffer"), "model"),
    (re.compile(r"failed to allocate (?:buffer|context) for (?:kv|rs) cache|llama_kv_cache_init\(\) failed"),
     "kv_cache"),
    (re.compile(r"failed to allocate compute (?:pp |tg )?buffers"), "compute"),
    (re.compile(r"failed to (?:allocate|reserve initial) output buffer"), "output"),
    (re.compile(r"CUDA error: out of memory|kIOGPUCommandBufferCallbackErrorOutOfMemory|std::bad_alloc"), "runtime"),
    (re.compile(r"failed to initialize the context"), "context"),
]


class OomDetector:
    """Feed it normalised log text line by line; `event` is the latest, most specific OOM seen."""

    def __init__(self) -> None:
        self.event: OomEvent | None = None
        self._pending: OomEvent | None = None  # a first step waiting for its cause

    def feed(self, text: str) -> OomEvent | None:
        """Return the event this line created or refined, else None."""
        first = _first_step(text)
        if first is not None:
            self._pending = first
            self.event = first
            return first
        for pattern, target in _CAUSES:
            m = pattern.search(text)
            if not m:
                continue
            base, self._pending = self._pending, None
            if target == "context":
                # "failed to initialize the context" is about memory only after a failed allocation,
                # and adds nothing when that allocation already said what it was for.
                if base is None or base.target != "unknown":
                    return None
            named = m.group(1) if target == "model" and m.lastindex else None
            buffer = named or (base.buffer if base else None)
            self.event = OomEvent(
                target=target, buffer=buffer,
                device=device_kind(buffer) if buffer else (base.device if base else None),
                bytes=base.bytes if base else None, line=text.strip(),
            )
            return self.event
        return None


def _first_step(text: str) -> OomEvent | None:
    m = _ALLOC.search(text)
    if m:
        buf = m.group("buf")
        target: OomTarget = "compute" if m.group("func").startswith("ggml_gallocr") else "unknown"
        return OomEvent(target=target, buffer=buf, device=device_kind(buf), bytes=int(m.group("bytes")),
                        line=text.strip())
    m = _CUDA.search(text)
    if m:
        return OomEvent(target="unknown", buffer=f"CUDA{m.group(2)}", device="gpu",
                        bytes=int(float(m.group(1)) * 2**20), line=text.strip())
    m = _METAL_BYTES.search(text) or _METAL_MIB.search(text)
    if m:
        size = int(m.group(1)) if m.re is _METAL_BYTES else int(float(m.group(1)) * 2**20)
        return OomEvent(target="unknown", buffer="Metal", device="gpu", bytes=size, line=text.strip())
    m = _ALIGNED.search(text)
    if m:
        return OomEvent(target="unknown", buffer="CPU", device=device_kind("CPU"), bytes=int(float(m.group(1)) * 2**20),
                        line=text.strip())
    m = _VULKAN.search(text)
    if m:
        return OomEvent(target="unknown", buffer="Vulkan", device="gpu",
                        bytes=int(m.group(1)) if m.group(1) else None, line=text.strip())
    return None
