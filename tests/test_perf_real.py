"""r1run.perf against output produced now by the real llama.cpp build and a real model (SmolLM2-135M).

Each test runs one llama.cpp program the way users do and parses what it printed; the recorded
copies of these outputs in tests/data/perf are only for the fast tests.
"""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from r1run import proc
from r1run.perf import LogWatcher, parse_file, parse_text

pytestmark = pytest.mark.llama
PROMPT = "The capital of France is"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(argv: list, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def consistent(phase) -> bool:
    """llama.cpp's t/s agrees with its own ms and token count (to its 2-decimal rounding)."""
    return phase.tps == pytest.approx(1000.0 * phase.tokens / phase.ms, rel=0.01, abs=0.02)


@pytest.mark.parametrize("verbose", [False, True])
def test_completion(llama_bin: Path, smollm2: Path, verbose: bool):
    res = run([llama_bin / "llama-completion", "-m", smollm2, "-p", PROMPT, "-no-cnv", "-n", 16, "-t", 2,
               "--ignore-eos", *(["-lv", "4"] if verbose else [])])
    assert res.returncode == 0, res.stderr[-2000:]
    (r,) = parse_text(res.stderr, "completion")
    assert (r.format, r.program, r.status) == ("common_perf_print", "llama-completion", "ok")
    assert r.prompt.tokens >= 5 and r.gen.tokens == 15 and consistent(r.prompt) and consistent(r.gen)
    assert r.load_ms > 0 and r.total_tokens == r.prompt.tokens + r.gen.tokens
    assert (r.threads.n_threads, r.threads.n_threads_batch) == (2, 2)
    if verbose:
        assert (r.offload.layers, r.offload.total) == (31, 31)
        assert [(b.name, b.mib) for b in r.buffers if b.kind == "model"] == [("CPU_Mapped", 92.10)]
        assert r.kv_cache.layers == 30 and r.kv_cache.mib == r.buffer_mib("kv")
        assert r.buffer_mib("compute") > 0
        (host,) = r.memory
        assert host.name == "Host" and host.model == 92 and host.context == int(r.kv_cache.mib)
        assert r.model == str(smollm2)
    else:
        assert r.offload is None and r.buffers == [] and r.memory == []


def test_cli_single_turn(llama_bin: Path, smollm2: Path):
    res = run([llama_bin / "llama-cli", "-m", smollm2, "-p", "hi", "-st", "-n", 16, "-t", 2])
    assert res.returncode == 0, res.stderr[-2000:]
    assert "[ Prompt:" in res.stdout
    (r,) = parse_text(res.stdout + res.stderr, "cli")
    assert (r.format, r.program) == ("cli_timings", "llama-cli")
    assert r.prompt.tps > 0 and r.gen.tps > 0 and r.model == str(smollm2)


def test_server_log_and_json(llama_bin: Path, smollm2: Path, tmp_path: Path):
    port = free_port()
    log = tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    with open(log, "w") as sink:
        server = subprocess.Popen([str(llama_bin / "llama-server"), "-m", str(smollm2), "--host", "127.0.0.1",
                                   "--port", str(port), "-t", "2", "-c", "2048", "-np", "1"],
                                  stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 180
            while True:
                assert server.poll() is None, log.read_text()[-2000:]
                try:
                    with urllib.request.urlopen(base + "/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "llama-server did not become healthy"
                time.sleep(0.3)
            bodies = []
            for path, body in (("/completion", {"prompt": PROMPT, "n_predict": 8, "ignore_eos": True}),
                               ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 8})):
                req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=120) as resp:
                    bodies.append(resp.read().decode())
        finally:
            proc.stop(server)
    log_runs = parse_file(log)
    assert [(r.format, r.program) for r in log_runs] == [("server_slot", "llama-server")] * 2
    for text, logged in zip(bodies, log_runs, strict=True):
        (r,) = parse_text(text, "response")
        assert (r.format, r.program) == ("server_json", "llama-server")
        # the log prints the same figures as the response, rounded to 2 decimals
        assert (r.prompt.tokens, r.gen.tokens) == (logged.prompt.tokens, logged.gen.tokens)
        assert r.gen.tps == pytest.approx(logged.gen.tps, abs=0.01)
        assert r.prompt.ms == pytest.approx(logged.prompt.ms, abs=0.01)
    assert log_runs[0].gen.tokens == 8


@pytest.mark.parametrize("fmt", ["md", "csv", "json", "jsonl", "sql"])
def test_bench(llama_bin: Path, smollm2: Path, tmp_path: Path, fmt: str):
    res = run([llama_bin / "llama-bench", "-m", smollm2, "-p", 16, "-n", 8, "-r", 1, "-t", 2, "-o", fmt])
    assert res.returncode == 0, res.stderr[-2000:]
    out = tmp_path / f"bench.{fmt}"
    out.write_text(res.stdout)
    pp, tg = parse_file(out)
    assert (pp.bench.test, tg.bench.test) == ("pp16", "tg8")
    assert pp.format == f"bench_{fmt}" and pp.program == "llama-bench"
    assert pp.prompt.tps == pp.bench.avg_ts > 0 and tg.gen.tps == tg.bench.avg_ts > 0
    assert pp.threads.n_threads == 2 and tg.bench.n_gen == 8
    # a log captured with 2>&1 still yields the markdown table's rows
    if fmt == "md":
        mixed = parse_text(res.stderr + res.stdout, "bench 2>&1")
        assert [r.bench.test for r in mixed if r.bench] == ["pp16", "tg8"]


def test_missing_model_fails(llama_bin: Path, tmp_path: Path):
    res = run([llama_bin / "llama-completion", "-m", tmp_path / "nope.gguf", "-p", "hi", "-no-cnv", "-n", 4])
    assert res.returncode != 0
    # b11434 logs from a thread and, unpatched, did not drain its queue when it exited early: the error lines were
    # sometimes lost (seen: 0 to 11 lines of 11). The test build drains it at exit (llama.patches).
    w = LogWatcher("missing")
    w.feed_text(res.stderr)
    (r,) = w.finish(exit_code=res.returncode)
    assert r.status == "failed" and r.oom is None and not r.measured
    assert "failed to load model" in " ".join(r.errors), r.errors


def _cap_memory() -> None:
    limit = 250_000 * 1024  # `ulimit -v 250000`: the RPC worker can map its code but not a 180 MiB KV cache
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def test_rpc_worker_out_of_memory_is_classified_live(llama_bin: Path, smollm2: Path, tmp_path: Path):
    port = free_port()
    worker = subprocess.Popen([str(llama_bin / "ggml-rpc-server"), "-p", str(port)], preexec_fn=_cap_memory,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert worker.poll() is None and time.monotonic() < deadline, "rpc worker did not start"
            time.sleep(0.1)
        watcher = LogWatcher("chat")
        events = []

        def on_line(line: str) -> None:
            events.extend(watcher.feed(line))

        code, _ = proc.stream([llama_bin / "llama-completion", "-m", smollm2, "-p", "hi", "-no-cnv", "-n", 4,
                               "-t", 2, "--rpc", f"127.0.0.1:{port}", "-ngl", 99, "-lv", 4],
                              log_path=tmp_path / "r1run.log", on_line=on_line)
    finally:
        proc.stop(worker)
    assert code != 0
    oom = watcher.oom
    assert oom is not None and (oom.target, oom.device) == ("kv_cache", "rpc") and oom.off_host
    assert oom.buffer == f"RPC0[127.0.0.1:{port}]" and oom.bytes > 100 * 2**20
    assert any(e.kind == "oom" for e in events) and watcher.offload.layers == 31
    (r,) = watcher.finish(exit_code=code)
    assert r.status == "failed" and r.buffer_mib("model", "rpc") == 92.10
    assert any(d.name == "RPC0" for d in r.devices)


def test_r1run_log_of_two_runs(llama_bin: Path, smollm2: Path, tmp_path: Path):
    """proc.stream appends `$ command` and the output of each child: one summary per child."""
    log = tmp_path / "session.log"
    ok, _ = proc.stream([llama_bin / "llama-completion", "-m", smollm2, "-p", PROMPT, "-no-cnv", "-n", 8, "-t", 2,
                         "--ignore-eos"],
                        log_path=log)
    bad, _ = proc.stream([llama_bin / "llama-completion", "-m", tmp_path / "gone.gguf", "-p", "hi", "-no-cnv"],
                         log_path=log)
    assert ok == 0 and bad != 0
    first, second = parse_file(log)
    assert first.status == "ok" and first.gen.tokens == 7 and "llama-completion" in first.command
    assert second.status == "failed" and not second.measured  # its error lines kept (see test_missing_model_fails)
    assert "gone.gguf" in second.command and second.index == 2
