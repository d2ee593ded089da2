"""`r1run serve --parallel 8` under load: eight OpenAI clients streaming at once from the real llama-server on
SmolLM2, one of them dropping every stream mid-answer; no response fails or is cut, and SIGTERM during the load
ends every client's stream and leaves nothing running. (benchmarks/serve_load.py runs it for 5 minutes.)"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from clihelp import serving
from nethelp import free_port
from testkit.load import Load

pytestmark = pytest.mark.llama

SECONDS = 20.0


def test_eight_streaming_clients_a_quitter_and_a_sigterm(r1run_home: Path, llama_bin: Path, smollm2: Path) -> None:
    port = free_port()
    env = {**os.environ, "R1RUN_HOME": str(r1run_home), "R1RUN_LLAMA_BIN": str(llama_bin)}
    with serving(str(smollm2), "--port", str(port), "--parallel", "8", "-c", "8192", "-t", "2", env=env) as (server, _):
        llama = [c for c in psutil.Process(server.pid).children(recursive=True) if "llama-server" in c.name()]
        load = Load(f"http://127.0.0.1:{port}/v1", "SmolLM2-135M-Instruct.Q4_1", clients=8).start()
        time.sleep(SECONDS)
        report = load.finish()
        assert report.failures == []
        assert all(c.completed >= 1 for c in report.clients[1:])  # every client was served, the quitter's peers too
        assert report.clients[0].dropped >= 1

        again = Load(f"http://127.0.0.1:{port}/v1", "SmolLM2-135M-Instruct.Q4_1", clients=8, max_tokens=400,
                     quitter=False).start()
        time.sleep(3)  # streams in flight
        again.stopping.set()
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
        stopped = again.finish(timeout=30)
        assert server.returncode == 0 and "stopped (SIGTERM)" in err
        assert [f for f in stopped.failures if "still waiting" in f] == []  # every client's stream ended
        _, alive = psutil.wait_procs(llama, timeout=10)
        assert alive == []
    assert "8 slots share the context 8192: 1024 tokens each" in err  # r1run says what each slot gets
