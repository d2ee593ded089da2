"""`r1run serve`."""

from __future__ import annotations

import json
import os
from typing import Annotated, Optional

import typer

from r1run import proc, rpc, running, usage
from r1run.bench import engines
from r1run.bench.profile import find_for_target
from r1run.cli import runopts as o
from r1run.cli.common import LlamaBinOpt, err, handle_errors, out, print_json, status, warn
from r1run.errors import LlamaFailed, ModelNotLoaded, R1runError
from r1run.home import Home
from r1run.llama import args
from r1run.run import serve as core
from r1run.run.prepare import fall_back, prepare
from r1run.units import utc_now


def register(app: typer.Typer) -> None:
    app.command("serve", context_settings=o.EXTRA_ARGS)(serve)


@handle_errors
def serve(
    ctx: typer.Context,
    model: o.ModelArg = None,
    quant: o.QuantOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    api_key: Annotated[Optional[str], typer.Option(
        "--api-key", envvar="R1RUN_API_KEY", help="Require this key (Bearer token); also R1RUN_API_KEY.",
            show_default=False)] = None,
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="Allow a non-loopback --host without --api-key.")] = False,
    alias: Annotated[Optional[str], typer.Option(
        "--alias", help="The model's name in the API and web UI [default: MODEL:QUANT, or the file's name without "
            ".gguf].", show_default=False)] = None,
    gpu_layers: o.GpuLayersOpt = "auto",
    ctx_size: o.CtxOpt = None,
    threads: o.ThreadsOpt = "auto",
    n_predict: o.NPredictOpt = None,
    temp: o.TempOpt = None,
    min_p: o.MinPOpt = None,
    seed: o.SeedOpt = None,
    cache_type_k: o.CacheKOpt = None,
    cache_type_v: o.CacheVOpt = None,
    flash_attn: o.FlashAttnOpt = None,
    batch_size: o.BatchOpt = None,
    ubatch_size: o.UbatchOpt = None,
    parallel: o.ParallelOpt = None,
    rpc: o.RpcOpt = None,
    gpu_memory: o.GpuMemoryOpt = None,
    gpu_name: o.GpuNameOpt = None,
    ram: o.RamOpt = None,
    unified: o.UnifiedOpt = None,
    bandwidth: o.BandwidthOpt = None,
    device_memory: o.DeviceMemoryOpt = None,
    dry_run: o.DryRunOpt = False,
    no_profile: o.NoProfileOpt = False,
    engine: o.EngineOpt = "auto",
    llama_bin: LlamaBinOpt = None,
    json_: Annotated[bool, typer.Option("--json", help="Print events as JSON lines: ready (with the URLs), stopped.")]
        = False,
) -> None:
    """Serve a model over an OpenAI-compatible API and web UI (llama-server) with r1run's tuning.

    The API and the web UI call the model MODEL:QUANT (deepseek-r1:UD-IQ1_S), or a file's name without .gguf;
    --alias renames it. Extra llama-server flags go after --, e.g. `r1run serve smollm2 -- --metrics`."""
    home = Home.from_env()
    req = o.request(model=model, quant=quant, gpu_layers=gpu_layers, ctx=ctx_size, threads=threads,
                    n_predict=n_predict, temp=temp, min_p=min_p, seed=seed, cache_type_k=cache_type_k,
                    cache_type_v=cache_type_v, flash_attn_=flash_attn, batch=batch_size, ubatch=ubatch_size,
                    parallel=parallel, rpc_=rpc, gpu_memory=gpu_memory, gpu_name=gpu_name, ram=ram,
                    unified=unified, bandwidth=bandwidth, device_memory=device_memory, extra=tuple(ctx.args),
                    profile=not no_profile, engine=engine)
    if not core.is_loopback(host) and not api_key and not insecure:
        core.check_bind(host, port, api_key, insecure)  # raises the clear refusal before anything loads
    run = prepare(home, req, llama_bin, find_for_target, engines.find_for_target)
    o.show_prepared(run)
    caps, target, spec = run.caps, run.target, run.config.spec
    name = core.model_name(target, alias)
    if dry_run:
        key_file = core.key_file_path(home.root / "run") if api_key and core.uses_key_file(caps) else None
        argv = args.server_argv(spec, caps, host=host, port=port, api_key=None if key_file else api_key,
                                api_key_file=key_file, alias=name)
        out().print(proc.quote(argv), highlight=False, markup=False)
        return
    core.check_bind(host, port, api_key, insecure)
    if not core.is_loopback(host):
        warn(f"listening on {host}: reachable from the network" + ("" if api_key else " WITHOUT an API key"))

    with proc.sigterm_raises():
        server = core.start(spec, caps, host=host, port=port, api_key=api_key, run_dir=home.root / "run",
                            logs=home.ensure(home.logs), alias=name)
        with running.registered(home, run.record("serve", name=name, url=server.url,
                                                       log=str(server.log_path))):
            try:
                status(f"llama-server starting; log: {server.log_path}")
                size = sum(s.file_bytes for s in target.info.shards)
                try:
                    took = _wait_ready(server, size, req.rpc)
                except ModelNotLoaded as exc:  # on ik_llama.cpp: llama.cpp serves it (auto), or a clear error
                    run = fall_back(home, req, run, exc, find_for_target, engines.find_for_target)
                    o.show_prepared(run)
                    caps, spec = run.caps, run.config.spec
                    server = core.start(spec, caps, host=host, port=port, api_key=api_key,
                                        run_dir=home.root / "run", logs=home.ensure(home.logs), alias=name)
                    status(f"llama-server starting; log: {server.log_path}")
                    took = _wait_ready(server, size, req.rpc)
                server.forget_key()  # read at start: no key left on disk, even if r1run is killed later
                status(f"ready in {took:.1f} s")
                usage.record(home, target.key, target.quant, "ran")
                ui = core.has_web_ui(server.url)
                served = _reported_name(server.url, api_key, name)
                if json_:
                    _event("ready", url=server.url, api=f"{server.url}/v1", web_ui=f"{server.url}/" if ui else None,
                           model=served, path=str(target.path), pid=os.getpid(), llama_pid=server.child.pid,
                           load_s=round(took, 3), log=str(server.log_path))
                else:
                    if ui:
                        out().print(f"web UI:  {server.url}/", highlight=False)
                    else:
                        out().print(f"web UI:  {core.no_web_ui(run.install.build, req.extra)}", highlight=False,
                                    markup=False)
                    out().print(f"API:     {server.url}/v1 (OpenAI-compatible)", highlight=False)
                    out().print(f"model:   {served}", highlight=False, markup=False)
                    out().print(f"example: {core.curl_example(server.url, bool(api_key))}", highlight=False,
                                markup=False)
                status("Ctrl-C stops the server")
                code = server.child.wait()
                if code != 0:
                    _raise_if_worker_lost(server, req.rpc)
                    last = [line for line in server.child.tail if line.strip()][-1:] or [f"exit code {code}"]
                    raise LlamaFailed(f"llama-server stopped (exit {code}): {last[0].strip()}",
                                      f"full log: {server.log_path}")
            except proc.Terminated as signalled:
                code = server.stop()
                status(f"stopped ({signalled})")
                if json_:
                    _event("stopped", reason=str(signalled), exit_code=code)
                return
            finally:
                if server.child.poll() is None:
                    server.stop()
                server.forget_key()


def _wait_ready(server: core.Server, size: int, workers: tuple[str, ...]) -> float:
    with err().status("loading the model...") as spinner:
        try:
            return core.wait_ready(server, core.load_timeout(size),
                                   lambda s: spinner.update(f"loading the model... {s:.0f} s"))
        except R1runError:
            _raise_if_worker_lost(server, workers)
            raise


def _event(event: str, **fields) -> None:
    """One line of `serve --json`: {"schema": "r1run.serve/1", "event": ..., "at": ISO UTC, ...}."""
    print_json(json.dumps({"schema": "r1run.serve/1", "event": event, "at": utc_now(), **fields}))


def _reported_name(url: str, api_key: str | None, asked: str) -> str:
    """The name /v1/models reports, which OpenAI clients must send (the file's path where llama-server has
    no --alias)."""
    try:
        names = core.served_models(url, api_key)
    except (OSError, ValueError):  # the server went away meanwhile: what was asked for
        return asked
    return names[0] if names else asked


def _raise_if_worker_lost(server: core.Server, workers: tuple[str, ...]) -> None:
    """llama-server failed: if an RPC worker went away, say which one."""
    if workers:
        lost = rpc.explain_loss(server.child.tail, rpc.parse(",".join(workers)), server.log_path)
        if lost is not None:
            raise lost
