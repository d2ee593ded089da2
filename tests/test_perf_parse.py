"""r1run.perf against recorded llama.cpp output (tests/data/perf, see its README) and small inline samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1run.errors import BadInput
from r1run.perf import LogWatcher, parse_file, parse_text
from r1run.perf.export import CSV_COLUMNS, to_csv, to_json
from r1run.perf.model import SCHEMA, device_kind
from r1run.perf.oom import OomDetector

DATA = Path(__file__).parent / "data" / "perf"


def one(name: str):
    runs = parse_file(DATA / name)
    assert len(runs) == 1, runs
    return runs[0]


# --- b11434, recorded with the dev build (the llama-marked tests re-run these for real) -------------

def test_completion_plain():
    r = one("b11434-completion.err")
    assert (r.format, r.program, r.status) == ("common_perf_print", "llama-completion", "ok")
    assert r.load_ms == 2291.35
    assert (r.prompt.ms, r.prompt.tokens, r.prompt.ms_per_token, r.prompt.tps) == (86.64, 5, 17.33, 57.71)
    assert (r.gen.ms, r.gen.tokens, r.gen.ms_per_token, r.gen.tps) == (1044.96, 31, 33.71, 29.67)
    assert r.sampling.ms == 2.65
    assert (r.total_ms, r.total_tokens) == (1184.33, 36)
    assert (r.threads.n_threads, r.threads.n_threads_batch, r.threads.available) == (2, 2, 2)
    assert r.offload is None and r.buffers == []  # memory lines need -lv 4 in b11434


def test_completion_verbose_memory():
    r = one("b11434-completion-lv4.err")
    assert (r.offload.layers, r.offload.total) == (31, 31)
    assert [(b.kind, b.name, b.device, b.mib) for b in r.buffers] == [
        ("model", "CPU_Mapped", "host", 92.10), ("output", "CPU", "host", 0.19),
        ("kv", "CPU", "host", 180.0), ("compute", "CPU", "host", 109.64)]
    kv = r.kv_cache
    assert (kv.mib, kv.cells, kv.layers, kv.type_k, kv.k_mib, kv.type_v, kv.v_mib) == (180.0, 8192, 30, "f16", 90.0, "f16", 90.0)
    # the fit step prints a projected table first; the one printed with the timings replaces it
    assert [(m.name, m.self, m.model, m.context, m.compute) for m in r.memory] == [("Host", 381, 92, 180, 109)]
    assert r.model.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")


def test_server_log_one_summary_per_request():
    runs = parse_file(DATA / "b11434-server.err")
    assert [(r.format, r.program, r.index) for r in runs] == [("server_slot", "llama-server", 1), ("server_slot", "llama-server", 2)]
    assert (runs[0].prompt.tokens, runs[0].prompt.tps, runs[0].gen.tokens, runs[0].gen.tps) == (5, 186.02, 12, 38.77)
    assert (runs[1].prompt.tokens, runs[1].total_ms, runs[1].total_tokens) == (32, 948.58, 44)


def test_server_verbose_log_shares_the_process_facts():
    runs = parse_file(DATA / "b11434-server-lv4.err")
    assert len(runs) == 2
    for r in runs:
        assert r.kv_cache.mib == 45.0 and r.offload.layers == 31 and r.build == "0 (unknown)"
        assert [d.name for d in r.devices] == ["CPU"] and r.devices[0].total_mib > 0


@pytest.mark.parametrize("name", ["b11434-server-completion.json", "b11434-server-chat.json"])
def test_server_json_timings(name):
    r = one(name)
    raw = json.loads((DATA / name).read_text())["timings"]
    assert (r.format, r.program) == ("server_json", "llama-server")
    assert (r.prompt.tokens, r.prompt.ms, r.prompt.tps) == (raw["prompt_n"], raw["prompt_ms"], raw["prompt_per_second"])
    assert (r.gen.tokens, r.gen.ms, r.gen.tps) == (raw["predicted_n"], raw["predicted_ms"], raw["predicted_per_second"])


def test_server_stream_chunks():
    chunk = {"choices": [{"delta": {}}], "timings": {"prompt_n": 4, "prompt_ms": 20.0, "prompt_per_second": 200.0,
                                                      "predicted_n": 8, "predicted_ms": 80.0, "predicted_per_second": 100.0}}
    text = 'data: {"choices": [{"delta": {"content": "Hi"}}]}\n\n' + f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n"
    (r,) = parse_text(text)
    assert (r.prompt.tps, r.gen.tps, r.total_tokens) == (200.0, 100.0, 12)


def test_cli_single_turn_stdout():
    r = one("b11434-cli-st.out")
    assert (r.format, r.program, r.prompt.tps, r.gen.tps) == ("cli_timings", "llama-cli", 93.3, 62.2)
    assert r.build == "b0-unknown" and r.model.endswith(".gguf")


def test_cli_timings_merge_with_verbose_slot_lines():
    text = (DATA / "b11434-cli-st-lv4.err").read_text() + "\n[ Prompt: 107.6 t/s | Generation: 7.6 t/s ]\n"
    (r,) = parse_text(text)
    assert r.format == "server_slot" and r.prompt.tokens == 31 and r.program == "llama-cli"


@pytest.mark.parametrize("ext", ["md", "csv", "json", "jsonl", "sql"])
def test_bench_formats(ext):
    runs = parse_file(DATA / f"b11434-bench.{ext}")
    assert [r.bench.test for r in runs] == ["pp16", "tg8"]
    pp, tg = runs
    assert pp.prompt.tokens == 16 and pp.prompt.tps == pp.bench.avg_ts and pp.gen is None
    assert tg.gen.tokens == 8 and tg.gen.tps == tg.bench.avg_ts and tg.prompt is None
    for r in runs:
        assert r.program == "llama-bench" and r.format == f"bench_{ext}" and r.status == "ok"
        assert r.bench.stddev_ts == 0.0 and r.threads.n_threads == 2
        assert r.bench.params["n_threads"] == 2
        assert r.build == "0 (unknown)"
    if ext != "md":  # the table hides parameters left at their defaults
        p = pp.bench.params
        assert (p["n_gpu_layers"], p["flash_attn"], p["type_k"], p["backends"]) == (-1, -1, "f16", "CPU")
        assert pp.model.endswith(".gguf") and pp.bench.avg_ns > 0


@pytest.mark.parametrize("ext", ["csv", "jsonl", "sql"])
def test_bench_after_stderr_lines(ext):
    noise = "load_backend: loaded RPC backend from /opt/llama/libggml-rpc.so\nload_backend: loaded CPU backend\n"
    runs = parse_text(noise + (DATA / f"b11434-bench.{ext}").read_text(), "bench 2>&1")
    assert [r.bench.test for r in runs] == ["pp16", "tg8"] and runs[0].build == "0 (unknown)"


def test_bench_md_columns_map_to_field_names():
    text = """| model                          |       size |     params | backend    | ngl | threads | fa | type_k |            test |                  t/s |
| ------------------------------ | ---------: | ---------: | ---------- | --: | ------: | -: | -----: | --------------: | -------------------: |
| deepseek2 671B IQ1_S - 1.5625 bpw | 130.60 GiB |   671.03 B | CUDA       |   8 |      16 |  1 |   q4_0 |           pp512 |         45.12 ± 1.03 |
| deepseek2 671B IQ1_S - 1.5625 bpw | 130.60 GiB |   671.03 B | CUDA       |   8 |      16 |  1 |   q4_0 |  tg128 @ d4096 |          3.31 ± 0.02 |

build: 2c9f833d (4880)
"""
    pp, tg = parse_text(text)
    assert pp.bench.params["n_gpu_layers"] == 8 and pp.bench.params["flash_attn"] == 1
    assert pp.bench.params["type_k"] == "q4_0" and pp.bench.params["backends"] == "CUDA"
    assert (tg.bench.test, tg.bench.n_gen, tg.bench.n_depth, tg.gen.tps, tg.bench.stddev_ts) == ("tg128 @ d4096", 128, 4096, 3.31, 0.02)
    assert pp.build == "4880 (2c9f833d)"


# --- recorded older formats (written from upstream printf formats; see README) ----------------------

def test_llama_cli_2025_llama_perf_lines():
    r = one("llama-cli-2025-cuda.log")
    assert (r.format, r.program, r.build) == ("llama_perf_context_print", "llama-cli", "4880 (2c9f833d)")
    assert (r.prompt.tokens, r.prompt.tps, r.gen.tokens, r.gen.tps) == (16, 8.54, 63, 3.42)
    assert (r.sampling.tokens, r.sampling.tps) == (80, 8105.37)
    assert (r.offload.layers, r.offload.total) == (7, 62)
    # three mmapped shards on the host, one CUDA buffer: host buffers are never counted as GPU memory
    assert r.buffer_mib("model", "gpu") == 14645.54
    assert r.buffer_mib("model", "host") == pytest.approx(47058.04 + 47109.49 + 24279.06)
    assert r.buffer_mib("kv", "gpu") == 1120.0 and r.kv_cache.type_k == "q4_0" and r.kv_cache.k_mib == 2745.0
    assert {b.name: b.device for b in r.buffers if b.kind == "compute"} == {"CUDA0": "gpu", "CUDA_Host": "host"}
    assert [(d.name, d.description, d.free_mib) for d in r.devices] == [("CUDA0", "NVIDIA GeForce RTX 4090", 23306)]
    assert (r.threads.n_threads, r.threads.available) == (16, 32)


def test_main_2024_print_timings():
    r = one("main-2024.log")
    assert (r.format, r.build, r.load_ms) == ("llama_print_timings", "2950 (db7a2a7b)", 1043.12)
    assert (r.sampling.ms, r.sampling.tokens) == (2.81, 32)
    assert (r.prompt.tps, r.gen.tps, r.total_tokens) == (281.03, 107.77, 37)
    assert [(b.kind, b.name, b.mib) for b in r.buffers if b.kind == "model"] == [("model", "CPU", 281.81), ("model", "CUDA0", 4403.49)]
    assert r.kv_cache.mib == 64.0 and (r.threads.n_threads, r.threads.n_threads_batch, r.threads.available) == (8, None, 16)


def test_ik_llama_print_timings():
    r = one("ik-llama-cpu.log")
    assert (r.format, r.prompt.tps, r.gen.tps, r.gen.tokens) == ("llama_print_timings", 10.33, 8.49, 127)
    assert r.kv_cache.mib == 291.59 and r.kv_cache.type_k is None  # MLA cache: `c^KV (q8_0)`, no K/V split


def test_unprefixed_early_2025_lines_and_timestamped_lines_agree():
    bare = "llama_perf_context_print: prompt eval time =      20.53 ms /     5 tokens (    4.11 ms per token,   243.53 tokens per second)\n"
    stamped = "0.00.766.654 I common_perf_print: prompt eval time =      20.53 ms /     5 tokens (    4.11 ms per token,   243.53 tokens per second)\n"
    (a,), (b,) = parse_text(bare), parse_text(stamped)
    assert a.prompt == b.prompt and a.prompt.tps == 243.53


def test_colour_codes_and_jsonl_log_lines():
    coloured = "\x1b[32m0.00.766.654 I \x1b[0mcommon_perf_print:        eval time =     431.48 ms /    63 runs   (    6.85 ms per token,   146.01 tokens per second)\n"
    assert parse_text(coloured)[0].gen.tps == 146.01
    jsonl = json.dumps({"type": "log", "time": 1, "level": "info",
                        "msg": "common_perf_print:        eval time =     431.48 ms /    63 runs   (    6.85 ms per token,   146.01 tokens per second)\n"})
    assert parse_text(jsonl + "\n")[0].gen.tokens == 63


def test_server_2024_print_timings_lines():
    text = """INFO [           print_timings] prompt eval time     =     314.81 ms /    17 tokens (   18.52 ms per token,    54.00 tokens per second) | tid="1" timestamp=1716401234 id_slot=0 id_task=0 t_prompt_processing=314.81 n_prompt_tokens_processed=17 t_token=18.52 n_tokens_second=54.00
INFO [           print_timings] generation eval time =    1460.24 ms /    64 runs   (   22.82 ms per token,    43.83 tokens per second) | tid="1" timestamp=1716401236 id_slot=0 id_task=0 t_token_generation=1460.24 n_decoded=64 t_token=22.82 n_tokens_second=43.83
INFO [           print_timings]           total time =    1775.05 ms | tid="1" timestamp=1716401236 id_slot=0 id_task=0 t_prompt_processing=314.81 t_token_generation=1460.24 t_total=1775.05
"""
    (r,) = parse_text(text)
    assert (r.format, r.prompt.tps, r.gen.tokens, r.gen.tps, r.total_ms) == ("server_slot", 54.0, 64, 43.83, 1775.05)


def test_nan_speeds_are_none_not_zero():
    text = "llama_perf_context_print: prompt eval time =       0.00 ms /     0 tokens (     nan ms per token,      nan tokens per second)\n" \
           "llama_perf_context_print:        eval time =     100.00 ms /    10 runs   (   10.00 ms per token,   100.00 tokens per second)\n"
    (r,) = parse_text(text)
    assert r.prompt.tps is None and r.gen.tps == 100.0


# --- several runs in one file -----------------------------------------------------------------------

def test_r1run_log_with_two_commands_gives_two_runs():
    text = ("$ llama-completion -m a.gguf -p hi\n" + (DATA / "b11434-completion.err").read_text()
            + "$ llama-completion -m b.gguf -p hi\n" + (DATA / "b11434-missing-model.err").read_text())
    a, b = parse_text(text, "r1run.log")
    assert (a.status, a.command, a.program, a.index) == ("ok", "llama-completion -m a.gguf -p hi", "llama-completion", 1)
    first_run_lines = 1 + len((DATA / "b11434-completion.err").read_text().splitlines())
    assert (b.status, b.index, b.line) == ("failed", 2, first_run_lines + 1)
    assert "failed to open GGUF file" in b.error


def test_concatenated_logs_split_on_program_start():
    text = "".join((DATA / n).read_text() for n in ("main-2024.log", "llama-cli-2025-cuda.log", "b11434-completion.err"))
    runs = parse_text(text)
    assert [r.format for r in runs] == ["llama_print_timings", "llama_perf_context_print", "common_perf_print"]
    assert [r.build for r in runs] == ["2950 (db7a2a7b)", "4880 (2c9f833d)", None]
    assert runs[2].offload is None  # facts of one run do not leak into the next


def test_second_model_load_after_timings_is_a_new_run():
    perf = "llama_perf_context_print:        eval time =     100.00 ms /    10 runs   (   10.00 ms per token,   100.00 tokens per second)\n"
    load = "llama_model_loader: loaded meta data with 3 key-value pairs and 2 tensors from {} (version GGUF V3 (latest))\n"
    runs = parse_text(load.format("a.gguf") + perf + load.format("b.gguf") + perf)
    assert [r.model for r in runs] == ["a.gguf", "b.gguf"]


# --- failures and OOM -------------------------------------------------------------------------------

def test_missing_model_is_a_failed_run():
    r = one("b11434-missing-model.err")
    assert (r.status, r.format, r.oom) == ("failed", "log", None)
    assert r.error == "gguf_init_from_file: failed to open GGUF file '/nonexistent/model.gguf' (No such file or directory)"
    assert r.errors[-1] == "llama_completion: error: unable to create context" and not r.measured


def test_rpc_kv_cache_oom():
    r = one("b11434-rpc-oom.err")
    assert r.status == "failed" and r.oom is not None
    assert (r.oom.target, r.oom.device, r.oom.bytes) == ("kv_cache", "rpc", 188743680)
    assert r.oom.buffer.startswith("RPC0[127.0.0.1:") and r.oom.off_host
    assert r.buffer_mib("model", "rpc") == 92.10  # the weights did fit


def test_cuda_model_oom():
    r = one("cuda-oom-2025.log")
    assert (r.oom.target, r.oom.buffer, r.oom.device, r.oom.bytes) == ("model", "CUDA0", "gpu", 43876368384)
    assert r.oom.describe() == "out of memory allocating model weights on CUDA0 (40.9 GiB)"


def test_metal_compute_oom():
    r = one("metal-compute-oom-2025.log")
    assert (r.oom.target, r.oom.buffer, r.oom.device) == ("compute", "Metal", "gpu")
    assert r.buffer_mib("model", "gpu") == pytest.approx(47058.04 + 47109.49)  # Metal_Mapped counts as GPU


@pytest.mark.parametrize("lines, target, buffer, device", [
    (["ggml_gallocr_reserve_n: failed to allocate CUDA0 buffer of size 1107296256",
      "llama_init_from_model: failed to initialize the context: failed to allocate compute pp buffers"], "compute", "CUDA0", "gpu"),
    (["llama_context: failed to allocate output buffer of size 0.19 MiB"], "output", None, None),
    (["ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 99999999999",
      "alloc_tensor_range: failed to allocate CPU buffer of size 99999999999",
      "llama_model_load: error loading model: unable to allocate CPU buffer"], "model", "CPU", "host"),
    (["ggml_vulkan: Device memory allocation of size 4294967296 failed.",
      "llama_kv_cache_init: failed to allocate buffer for kv cache"], "kv_cache", "Vulkan", "gpu"),
    (["ggml_backend_metal_buffer_type_alloc_buffer: failed to allocate Metal buffer of 8589934592 bytes (out of memory)",
      "llama_init_from_model: failed to initialize the context: out of budget"], "context", "Metal", "gpu"),
    (["CUDA error: out of memory"], "runtime", None, None),
    # ik_llama.cpp 0.1.5 under -rtr with RAM capped (on its stdout, then it aborts)
    (["ggml_aligned_malloc: insufficient memory (attempted to allocate  28.27 MB)"], "unknown", "CPU", "host"),
])
def test_oom_classification(lines, target, buffer, device):
    d = OomDetector()
    for line in lines:
        d.feed(line)
    assert (d.event.target, d.event.buffer, d.event.device) == (target, buffer, device)


def test_context_failure_without_allocation_is_not_oom():
    d = OomDetector()
    assert d.feed("llama_init_from_model: failed to initialize the context: failed to initialize CUDA0 backend") is None
    assert d.event is None


def test_device_kinds():
    assert [device_kind(n) for n in ("CPU", "CPU_Mapped", "CPU_REPACK", "CUDA_Host", "CUDA0", "ROCm1", "Vulkan0",
                                     "MTL0", "Metal", "Metal_Mapped", "RPC0[127.0.0.1:50052]", "SYCL0")] == [
        "host", "host", "host", "host", "gpu", "gpu", "gpu", "gpu", "gpu", "gpu", "rpc", "gpu"]


# --- the live watcher -------------------------------------------------------------------------------

def test_watcher_live_events_and_oom_before_exit():
    w = LogWatcher("chat")
    kinds = []
    for line in (DATA / "b11434-rpc-oom.err").read_text().splitlines(keepends=True):
        kinds += [e.kind for e in w.feed(line)]
        if w.oom is not None and w.oom.target == "kv_cache":
            break
    assert {"device", "offload", "buffer", "oom"} <= set(kinds)
    assert w.oom.off_host and w.offload.layers == 31
    assert any(b.kind == "model" and b.device == "rpc" for b in w.buffers)
    (r,) = w.finish(exit_code=1)
    assert r.status == "failed" and r.oom.target == "kv_cache"


def test_watcher_exit_code_marks_silent_crash():
    w = LogWatcher("x")
    w.feed("llama_model_loader: loaded meta data with 3 key-value pairs and 2 tensors from m.gguf (version GGUF V3 (latest))")
    (r,) = w.finish(exit_code=-11)
    assert (r.status, r.error) == ("failed", "exited with code -11")
    w2 = LogWatcher("y")
    w2.feed("llama_model_loader: loaded meta data with 3 key-value pairs and 2 tensors from m.gguf (version GGUF V3 (latest))")
    assert w2.finish()[0].status == "incomplete"


# --- bad input --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, words", [("empty.log", "is empty"), ("unknown.txt", "looks like llama.cpp output")])
def test_bad_files(name, words):
    with pytest.raises(BadInput, match=words) as exc:
        parse_file(DATA / name)
    assert exc.value.hint


def test_missing_file_and_folder_and_model(tmp_path):
    with pytest.raises(BadInput, match="no such file"):
        parse_file(tmp_path / "nope.log")
    with pytest.raises(BadInput, match="is a folder"):
        parse_file(tmp_path)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 64)
    with pytest.raises(BadInput, match="GGUF model, not a log"):
        parse_file(gguf)


def test_json_without_timings_is_unrecognised():
    with pytest.raises(BadInput, match="looks like llama.cpp output"):
        parse_text('{"content": "hi"}')


# --- export -----------------------------------------------------------------------------------------

def test_json_and_csv_export():
    runs = parse_file(DATA / "b11434-completion-lv4.err") + parse_file(DATA / "b11434-rpc-oom.err")
    doc = json.loads(to_json(runs))
    assert doc["schema"] == SCHEMA and len(doc["runs"]) == 2
    first = doc["runs"][0]
    assert first["gen"]["tps"] == 5.07 and first["buffers"][0] == {"kind": "model", "name": "CPU_Mapped", "device": "host", "bytes": 96573850}
    assert doc["runs"][1]["oom"]["target"] == "kv_cache"
    lines = to_csv(runs).splitlines()
    assert lines[0].split(",") == list(CSV_COLUMNS) and len(lines) == 3


def test_r1run_log_exit_line_marks_a_silent_crash_as_failed() -> None:
    # llama.cpp b11434 can lose its last log lines on an early exit; r1run's logs end each child with `# exit N`.
    from r1run.perf import parse_text

    text = "$ llama-completion -m missing.gguf -p hi\n0.00.001.518 I llama_completion: llama backend init\n# exit 1\n"
    (run,) = parse_text(text, "r1run.log")
    assert run.status == "failed" and "exited with code 1" in (run.error or "")


# b11434 llama-cli -lv 4, two answers: its log file (the slot's own figures), then the terminal's lines
_CLI_TWO_TURNS_LOG = """\
0.00.350.721 I srv  llama_server: model loaded
0.00.716.293 I slot print_timing: id  0 | task 0 | prompt eval time =     217.80 ms /    31 tokens (    7.03 ms per token,   142.33 tokens per second)
0.00.716.331 I slot print_timing: id  0 | task 0 |        eval time =      84.59 ms /     8 tokens (   12.08 ms per token,    82.75 tokens per second)
0.00.716.344 I slot print_timing: id  0 | task 0 |       total time =     302.39 ms /    39 tokens
0.10.959.138 I slot print_timing: id  0 | task 9 | prompt eval time =     143.00 ms /    16 tokens (    8.94 ms per token,   111.89 tokens per second)
0.10.959.148 I slot print_timing: id  0 | task 9 |        eval time =      85.17 ms /     8 tokens (   12.17 ms per token,    82.19 tokens per second)
0.10.959.149 I slot print_timing: id  0 | task 9 |       total time =     228.17 ms /    24 tokens
"""


def test_interactive_turns_read_after_the_log_match_the_slots_in_order():
    w = LogWatcher("chat.log")
    w.feed_text(_CLI_TWO_TURNS_LOG)
    w.feed("[ Prompt: 142.3 t/s | Generation: 82.8 t/s ]")
    w.feed("[ Prompt: 111.9 t/s | Generation: 82.2 t/s ]")
    runs = [s for s in w.finish(0) if s.measured]
    assert [(s.prompt.tokens, s.gen.tokens) for s in runs] == [(31, 8), (16, 8)]  # no phantom third turn
    assert runs[0].load_ms == pytest.approx(350.721) and runs[1].load_ms is None
