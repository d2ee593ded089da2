"""`r1run worker`."""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from r1run import proc, rpc, running
from r1run import worker as core
from r1run.cli.common import LlamaBinOpt, err, handle_errors, out, print_json, status, warn
from r1run.cli.runopts import DryRunOpt, parse_count
from r1run.errors import BadInput
from r1run.home import Home, log_path_for
from r1run.llama import discover
from r1run.run.prepare import default_threads
from r1run.units import size, utc_now


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)


@handle_errors
def worker(
    host: Annotated[str, typer.Option(
        "--host", "-H", help="Address to listen on. Anything but loopback exposes this machine: RPC has no "
            "authentication.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 50052,
    worker_p: Annotated[Optional[str], typer.Option("-p", hidden=True)] = None,
    threads: Annotated[str, typer.Option(
        "--threads", "-t", help="CPU threads for the CPU device: auto (physical cores) or a number.")] = "auto",
    device: Annotated[Optional[str], typer.Option(
        "--device", "-d", help="Devices to offer, e.g. CUDA0,CUDA1 [default: every GPU, else the CPU].",
            show_default=False)] = None,
    cache: Annotated[bool, typer.Option(
        "--cache", help="Keep received tensors in a local file cache (faster reloads of the same model).")] = False,
    mem: Annotated[Optional[int], typer.Option(
        "--mem", help="Backend memory in MiB (only early-2025 RPC servers take it).", show_default=False)] = None,
    dry_run: DryRunOpt = False,
    llama_bin: LlamaBinOpt = None,
    json_: Annotated[bool, typer.Option("--json", help="Print events as JSON lines: listening (with the devices), "
                                        "stopped.")] = False,
) -> None:
    """Offer this machine's memory and devices to another machine's r1run (llama.cpp RPC server, foreground)."""


    if worker_p is not None:  # the RPC server's -p; in r1run -p is always a prompt (chat, quickstart)
        raise BadInput("worker has no -p: in r1run, -p is a prompt's text (chat, quickstart)",
                       f"to listen on port {worker_p}: --port {worker_p}")
    home = Home.from_env()
    n_threads = parse_count(threads, "--threads", minimum=1)
    install = discover.find(home, llama_bin)
    caps = discover.capabilities(install, home)
    if n_threads is None and core.takes_threads(caps):
        n_threads, why = default_threads()  # the server's own default is 1 thread
        status(f"threads {n_threads} ({why}; --threads to change)")
    devices = tuple(d.strip() for d in device.split(",") if d.strip()) if device else ()
    spec = core.WorkerSpec(host=host, port=port, threads=n_threads, devices=devices, cache=cache, mem_mib=mem)
    argv = core.argv(spec, caps)
    exposed = core.exposure_warning(host)
    if exposed:
        warn(exposed)
    if dry_run:
        out().print(proc.quote(argv), highlight=False, markup=False)
        return
    core.check_port(host, port)

    ready = [False]  # r1run's own checks connect too: report clients only once the worker is up

    def on_line(stream: str, line: str) -> None:
        said = core.describe_line(stream, line)
        if said is not None and (ready[0] or said[0] == "warn"):
            (status if said[0] == "status" else warn)(escape(said[1]))

    with proc.sigterm_raises(), contextlib.ExitStack() as listing:
        w = None
        try:
            w = core.start(spec, caps, log_path=log_path_for(home.ensure(home.logs), "worker"), on_line=on_line)
            listing.enter_context(running.registered(home, running.Record(
                kind="worker", name=f"rpc worker {host}:{port}", engine=f"llama.cpp ({install.origin})",
                url=f"{host}:{port}", log=str(w.log_path))))
            took = core.wait_listening(w)
            status(f"{install.origin}: {argv[0]} listening after {took:.1f} s; log: {w.log_path}")
            found = _ask(caps, w)
            if json_:
                _event("listening", endpoint=f"{host}:{port}", pid=os.getpid(), server_pid=w.child.pid,
                       log=str(w.log_path), devices=[{"name": d.name, "total_bytes": d.total_bytes,
                                                      "free_bytes": d.free_bytes} for d in found])
            t = Table(title=f"RPC worker {host}:{port}", title_justify="left")
            for col in ("device", "what", "memory", "free"):
                t.add_column(col)
            same = len(w.banner) == len(found)  # the banner names what each device is (e.g. "CPU: AMD EPYC")
            for i, d in enumerate(found):
                b = w.banner[i] if same else None
                t.add_row(b.name if b else d.name, escape(b.description if b else "-"), size(d.total_bytes),
                          size(d.free_bytes))
            if not found:
                for b in w.banner:
                    t.add_row(b.name, escape(b.description), size(b.total_bytes), size(b.free_bytes))
            if not json_:
                out().print(t)
            ready[0] = True
            shown = "THIS-MACHINE-ADDRESS" if host == "0.0.0.0" else host
            status(f"on the main machine: r1run chat --rpc {shown}:{port}   (Ctrl-C stops this worker)")
            code = w.child.wait()
            line = w.last_error() or f"exit code {code}"
            raise rpc.WorkerError(f"the RPC server stopped (exit {code}): {line}", f"full log: {w.log_path}")
        except proc.Terminated as signalled:
            stopped = w.stop() if w is not None else None
            status(f"stopped ({signalled})")
            if json_:
                _event("stopped", reason=str(signalled), exit_code=stopped)
        finally:
            if w is not None and w.child.poll() is None:
                w.stop()
            err().file.flush()


def _event(event: str, **fields) -> None:
    """One line of `worker --json`: {"schema": "r1run.worker/1", "event": ..., "at": ISO UTC, ...}."""
    print_json(json.dumps({"schema": "r1run.worker/1", "event": event, "at": utc_now(), **fields}))


def _ask(caps, w):
    """The worker's devices as a client sees them (also makes the server flush its start-up banner)."""


    program = (caps.path("server") or caps.path("completion")) if caps.list_devices and caps.rpc else None
    if program is None:
        time.sleep(0.5)
        return []
    found = rpc.ask_devices(program, [w.endpoint])
    deadline = time.monotonic() + 1.0
    while not w.banner and time.monotonic() < deadline:
        time.sleep(0.05)
    return found
