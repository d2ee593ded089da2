"""`r1run serve --parallel N` under load: N OpenAI clients streaming at once for minutes, one of them dropping
every stream mid-answer; then SIGTERM while streams are in flight.

    python benchmarks/serve_load.py [--model PATH] [--clients 8] [--seconds 300] [--ctx 8192] [--max-tokens 48]

Prints completed responses, failures (any is a defect), the aggregate generation rate (streamed tokens of
completed responses over the wall time), per-client spread, and how the SIGTERM ended things. Uses the test
cache's llama.cpp build and SmolLM2 unless told otherwise (run the test suite once first).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import psutil

import _paths  # noqa: F401  (puts tests/ on sys.path)
from clihelp import serving
from nethelp import free_port
from testkit.cache import NoLlamaBuild, cache_root, llama_bin
from testkit.load import Load


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=cache_root() / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--llama-bin")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--ctx", type=int, default=8192)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    try:
        bin_dir = llama_bin(a.llama_bin)
    except NoLlamaBuild as exc:
        print(exc, file=sys.stderr)
        return 2
    if not a.model.is_file():
        print(f"no model at {a.model}: run the test suite once (it fetches SmolLM2) or pass --model", file=sys.stderr)
        return 2
    port = free_port()
    env = {**os.environ, "R1RUN_HOME": tempfile.mkdtemp(prefix="r1run-load-"), "R1RUN_LLAMA_BIN": str(bin_dir)}
    with serving(str(a.model), "--port", str(port), "--parallel", str(a.clients), "-c", str(a.ctx), "-t",
                 str(a.threads), "--alias", "m", env=env) as (server, _):
        llama = [c for c in psutil.Process(server.pid).children(recursive=True) if "llama-server" in c.name()]
        url = f"http://127.0.0.1:{port}/v1"
        print(f"{a.clients} clients (client 0 drops every stream after 3 chunks), {a.seconds:.0f} s, "
              f"max_tokens {a.max_tokens}, -np {a.clients} -c {a.ctx} -t {a.threads}, {a.model.name}")
        report = Load(url, "m", clients=a.clients, max_tokens=a.max_tokens).start()
        time.sleep(a.seconds)
        done = report.finish()
        per = [c.completed for c in done.clients[1:]]
        print(f"completed responses: {done.completed} (per client {min(per)}..{max(per)}); "
              f"dropped on purpose: {done.clients[0].dropped}; failures: {len(done.failures)}")
        for f in done.failures[:10]:
            print(f"  failure: {f}")
        print(f"aggregate generation: {done.tokens_per_s:.1f} tokens/s ({done.tokens} tokens in {done.seconds:.1f} s)")

        flying = Load(url, "m", clients=a.clients, max_tokens=400, quitter=False).start()
        time.sleep(3)
        flying.stopping.set()
        asked = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        stopped = flying.finish(timeout=30)
        took = time.monotonic() - asked
        _, alive = psutil.wait_procs(llama, timeout=10)
        ends = sorted({c.ended_by_stop or "finished" for c in stopped.clients})
        hung = [f for f in stopped.failures if "still waiting" in f]
        print(f"SIGTERM with {a.clients} streams in flight: r1run exit {server.returncode}, all ended in "
              f"{took:.1f} s ({', '.join(ends)}); clients left waiting: {len(hung)}; llama-server left: {len(alive)}")
        return 0 if not done.failures and not hung and not alive else 1

if __name__ == "__main__":
    sys.exit(main())
