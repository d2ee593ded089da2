"""Recognising single lines of llama.cpp's text log; each pattern quotes the lines it matches.

llama.cpp b11434 prefixes lines with a timestamp and a level letter
(`0.00.766.654 I common_perf_print: ...`); early-2025 builds and ik_llama.cpp print bare lines
(`llama_perf_context_print: ...`); `--log-jsonl` wraps each message in
`{"type":"log","time":...,"level":"info","msg":"..."}`. `normalise` reduces all three to
(level, text) so the patterns below see the same text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# `0.00.766.654 I ` (b11434: minutes.seconds.ms.us, then I/W/E/D); the bare letter form only when a
# llama.cpp function-style tag follows, so model output such as "I think" is not taken for a level.
_PREFIX_TS = re.compile(r"^(\d+)\.(\d{2})\.(\d{3})\.(\d{3}) (?:([IWEDT]) )?")
_PREFIX_BARE = re.compile(r"^([IWED]) (?=[A-Za-z_][\w.]*\s*:|slot |srv )")
_JSON_LEVELS = {"info": "I", "warn": "W", "error": "E", "debug": "D"}


# b11434 tags lines of its common/server code with a module and a function cut to 12 characters:
# `I cmn  common_param: common_params_print_info: build 0 (unknown) ...`, `I srv          init: ...`.
_TAG = re.compile(r"^(?!slot )([a-z]{2,4} +\S{1,12}): ")


@dataclass(frozen=True)
class Line:
    level: str | None  # I, W, E, D, or None when the build printed no level
    text: str
    tag: str | None = None  # b11434's module tag: "srv  llama_server", "cmn  common_param", "slot"
    ms: float | None = None  # b11434's timestamp: milliseconds since the program's logger started


def normalise(raw: str) -> list[Line]:
    """Strip colour codes and the timestamp/level prefix; unwrap a `--log-jsonl` record into its lines."""
    raw = _ANSI.sub("", raw.rstrip("\r\n")).replace("\r", "")
    stripped = raw.lstrip()
    if stripped.startswith("{") and '"type"' in stripped:
        try:
            obj = json.loads(stripped)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and obj.get("type") == "log" and isinstance(obj.get("msg"), str):
            level = _JSON_LEVELS.get(str(obj.get("level")))
            return [Line(level, t) for t in obj["msg"].rstrip("\n").split("\n")]
    m = _PREFIX_TS.match(raw)
    if m:
        text = raw[m.end():]
        ms = int(m.group(1)) * 60000 + int(m.group(2)) * 1000 + int(m.group(3)) + int(m.group(4)) / 1000
        t = _TAG.match(text)
        if t:
            return [Line(m.group(5), text[t.end():], t.group(1), ms)]
        return [Line(m.group(5), text, "slot" if text.startswith("slot ") else None, ms)]
    m = _PREFIX_BARE.match(raw)
    if m:
        return [Line(m.group(1), raw[m.end():])]
    return [Line(None, raw)]


_NUM = r"(-?[\d.]+|nan|-?inf)"


def num(text: str | None) -> float | None:
    """A figure as llama.cpp printed it; nan/inf (division by zero tokens) become None."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


# --- speed figures ---------------------------------------------------------------------------------
TIMING = re.compile(
    r"(?:^|[\s|:\]])(?P<what>prompt eval|eval|load|total|sampling|sample|samplers|unaccounted) time\s*=\s*"
    rf"{_NUM} ms(?:\s*/\s*(?P<n>\d+) (?P<unit>tokens|runs))?"
    rf"(?:\s*\(\s*{_NUM} ms per token,\s*{_NUM} tokens per second\))?"
)
"""The timing lines of every llama.cpp generation, matched anywhere on the line:

    common_perf_print:    sampling time =       4.50 ms
    common_perf_print:        load time =     176.16 ms
    common_perf_print: prompt eval time =      20.53 ms /     5 tokens (    4.11 ms per token,   243.53 tokens per second)
    common_perf_print:        eval time =     431.48 ms /    63 runs   (    6.85 ms per token,   146.01 tokens per second)
    common_perf_print:       total time =     460.31 ms /    68 tokens
    llama_perf_sampler_print:    sampling time =       3.27 ms /    37 runs   (    0.09 ms per token, 11314.98 tokens per second)
    llama_perf_context_print:        load time =     234.10 ms
    llama_print_timings:      sample time =       3.10 ms /    32 runs   (    0.10 ms per token, 10322.58 tokens per second)
    slot print_timing: id  0 | task 0 | prompt eval time =      26.07 ms /    13 tokens (    2.01 ms per token,   498.66 tokens per second)
    slot print_timing: id  0 | task 0 |        eval time =     214.49 ms /    32 tokens (    6.70 ms per token,   149.19 tokens per second)
    slot print_timing: id  0 | task 0 |       total time =     240.56 ms /    45 tokens
"""

# function or tag that printed a timing line -> the format name r1run reports
TIMING_SOURCE = re.compile(r"^(?P<tag>common_perf_print|llama_perf_context_print|llama_perf_sampler_print"
                           r"|llama_print_timings|slot\s+print_timing|print_timings|\w+):")

CLI_TIMINGS = re.compile(rf"\[ Prompt: {_NUM} t/s \| Generation: {_NUM} t/s \]")
"""llama-cli (the b11434 chat client) after each answer with `-st` or when timings are shown:

    [ Prompt: 310.1 t/s | Generation: 134.0 t/s ]
"""

# --- placement and memory --------------------------------------------------------------------------
OFFLOAD = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
"""`load_tensors: offloaded 31/31 layers to GPU` (2024: `llm_load_tensors: offloaded 0/31 layers to GPU`)."""

MODEL_BUFFER = re.compile(r"^(?:llm_)?load_tensors:\s+(\S+) (?:model )?buffer size =\s*([\d.]+) MiB")
"""Weights per buffer type; one line per buffer (split GGUFs give several of the same name):
    load_tensors:   CPU_Mapped model buffer size =    92.10 MiB
    load_tensors: RPC0[127.0.0.1:50152] model buffer size =    92.10 MiB
    llm_load_tensors:      CUDA0 buffer size =  5127.53 MiB          (2024)
"""

KV_BUFFER = re.compile(r"^\w+:\s+(\S+) KV buffer size =\s*([\d.]+) MiB")
"""`llama_kv_cache:        CPU KV buffer size =   180.00 MiB` (2024-25: `llama_kv_cache_init:`)."""

KV_SIZE = re.compile(
    r"^\w+: (?:size|KV self size)\s*=\s*([\d.]+) MiB"
    r"(?: \(\s*(\d+) cells,\s*(\d+) layers[^)]*\))?"
    r"(?:, K \((\w+)\):\s*([\d.]+) MiB)?(?:, V \((\w+)\):\s*([\d.]+) MiB)?"
)
"""The KV cache in total:

    llama_kv_cache: size =  180.00 MiB (  8192 cells,  30 layers,  1/1 seqs), K (f16):   90.00 MiB, V (f16):   90.00 MiB
    llama_new_context_with_model: KV self size  =  180.00 MiB, K (f16):   90.00 MiB, V (f16):   90.00 MiB   (2024)
    llama_init_from_model: KV self size  =  180.00 MiB, K (f16):   90.00 MiB, V (f16):   90.00 MiB          (early 2025)
"""

COMPUTE_BUFFER = re.compile(r"^\w+:\s+(\S+) compute buffer size =\s*([\d.]+) MiB")
"""`sched_reserve:        CPU compute buffer size =   109.64 MiB` (2024-25: `llama_new_context_with_model:`, `llama_context:`)."""

OUTPUT_BUFFER = re.compile(r"^\w+:\s+(\S+)\s+output buffer size =\s*([\d.]+) MiB")
"""`llama_context:        CPU  output buffer size =     0.19 MiB`."""

MEMORY_TABLE = re.compile(r"^(?:common|llama)_memory_breakdown_print: \|(.*)\|\s*$")
MEMORY_DEVICE = re.compile(
    r"^\s*- (?P<name>.+?)\s*\|\s*(?P<total>\d+)\s*=\s*(?P<free>\d+)\s*\+\s*\(\s*(?P<self>\d+)\s*=\s*(?P<model>\d+)"
    r"\s*\+\s*(?P<context>\d+)\s*\+\s*(?P<compute>\d+)\s*\)\s*\+\s*(?P<unaccounted>-?\d+)\s*$")
MEMORY_HOST = re.compile(
    r"^\s*- (?P<name>.+?)\s*\|\s*(?P<self>\d+)\s*=\s*(?P<model>\d+)\s*\+\s*(?P<context>\d+)\s*\+\s*(?P<compute>\d+)\s*$")
"""The memory breakdown table printed with the timings (b11434 `-lv 4`; 2025: `llama_memory_breakdown_print`):

    common_memory_breakdown_print: | memory breakdown [MiB] | total   free    self   model   context   compute    unaccounted |
    common_memory_breakdown_print: |   - CUDA0 (RTX 4090)   | 24077 = 23000 + ( 900 =   500 +     300 +     100) +         177 |
    common_memory_breakdown_print: |   - Host               |                  381 =    92 +     180 +     109                |
"""

USING_DEVICE = re.compile(
    r"using device (?P<name>\S+) \((?P<desc>.*)\)(?: \((?P<id>[^()]*)\))? - (?P<free>\d+) MiB free")
"""`llama_model_load_from_file_impl: using device CUDA0 (NVIDIA GeForce RTX 4090) (0000:01:00.0) - 23500 MiB free`
(early 2025 without the PCI id)."""

DEVICE_INFO = re.compile(r"^\s*- (\S+?)\s*: (.*) \((\d+) MiB, (\d+) MiB free\)\s*$")
"""`common_params_print_info` with `-lv 4`, after `device_info:`:  `  - CPU     : AMD EPYC 7B13 (24000 MiB, 20000 MiB free)`."""

LIST_DEVICE = re.compile(r"^\s+(\S+): (.*) \((\d+) MiB, (\d+) MiB free\)\s*$")
"""`--list-devices` on stdout: `  CUDA0: NVIDIA GeForce RTX 4090 (24077 MiB, 23500 MiB free)`."""

CUDA_DEVICE = re.compile(r"^\s*Device (\d+): ([^,]+), compute capability")
"""`ggml_cuda_init: found 1 CUDA devices:` then `  Device 0: NVIDIA GeForce RTX 4090, compute capability 8.9, VMM: yes`."""

THREADS = re.compile(r"system_info: n_threads = (\d+)(?: \(n_threads_batch = (\d+)\))?(?: / (\d+))?")
"""`system_info: n_threads = 2 (n_threads_batch = 2) / 2 | CPU : SSE3 = 1 | ...` (2024: `n_threads = 8 / 16 | AVX = 1`)."""

BUILD = re.compile(r"^(?:build|main: build|common_params_print_info: build|\w+: build)\s*[:=]?\s*(\d+) \((\w+)\)")
"""The build, printed first by every run:

    common_params_print_info: build 0 (unknown) with GNU 12.2.0 for x86_64-linux-gnu     (b11434, -lv 4)
    build: 4880 (2c9f833d) with cc (Debian 12.2.0-14) 12.2.0 for x86_64-linux-gnu        (2025)
    main: build = 2950 (db7a2a7b)                                                         (2024)
"""

MODEL_FILE = re.compile(r"loaded meta data with \d+ key-value pairs and \d+ tensors from (.+?)(?: \(version .*\))?\s*$")
"""`llama_model_loader: loaded meta data with 27 key-value pairs and 272 tensors from M.gguf (version GGUF V3 (latest))`."""

COMMAND = re.compile(r"^\$ (\S.*)$")
"""r1run's own log files start each child with the command it ran: `$ llama-completion -m M.gguf -p hi`."""

EXIT = re.compile(r"^# exit (-?\d+)$")
"""...and end it with its exit code (`# exit 1`): llama.cpp can lose its last lines when it exits early."""

# --- failures --------------------------------------------------------------------------------------
ERROR_TEXT = re.compile(
    r"(?:^error:|^\w+: error|error loading model|failed to (?:load|open|allocate|initialize|create|read)|"
    r"unable to (?:allocate|load)|out of memory|GGML_ASSERT|terminate called|Segmentation fault|"
    r"CUDA error|cudaMalloc failed|ErrorOutOfDeviceMemory|Insufficient Memory|Aborted|core dumped)", re.I)
"""Lines that report a failure when the build printed no level letter (E lines always count):

    gguf_init_from_file: failed to open GGUF file 'missing.gguf' (No such file or directory)
    llama_model_load: error loading model: unable to allocate CUDA0 buffer
    E llama_init_from_model: failed to initialize the context: failed to allocate buffer for kv cache
    main: error: unable to load model
"""
# Lines that mention failure but are not one (warnings, debug chatter).
NOT_ERROR = re.compile(r"failed to allocate host buffer for async uploads|failed to initialize backend for device .* async"
                       r"|will be ignored|warning:", re.I)


# --- the context filling up --------------------------------------------------------------------------
# llama-completion (b11434): `llama_completion: context full and context shift is disabled => stopping`
CONTEXT_FULL = re.compile(r"context full and context shift is disabled")
# llama-cli / llama-server (b11434, -lv 4): `slot   load_model: id  0 | task -1 | new slot, n_ctx = 256`, then per
# turn `slot print_timing: ... total time = 120.52 ms / 256 tokens` and, when a turn was cut at the context's end,
# `slot      release: id  0 | task 237 | stop processing: n_tokens = 255, truncated = 1`
SLOT_CTX = re.compile(r"new slot, n_ctx = (\d+)")
SLOT_TRUNCATED = re.compile(r"stop processing: n_tokens = \d+, truncated = 1")
