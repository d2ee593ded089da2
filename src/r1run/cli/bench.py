"""`r1run bench`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from r1run import usage
from r1run.bench import core, engines, store, tune
from r1run.cli import bench_render as render
from r1run.cli import runopts as o
from r1run.cli.common import JsonOpt, LlamaBinOpt, handle_errors, print_json, status, warn
from r1run.errors import BadInput
from r1run.home import Home
from r1run.run import engine as run_engine


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)


# bench takes a comma list where the run commands take one value: same names and short flags.
GpuLayersList = Annotated[Optional[str], typer.Option(
    "--gpu-layers", "-ngl", help="Layers on the GPU: a list, e.g. 0,20,auto (auto: r1run's placement).",
    show_default=False)]
ThreadsList = Annotated[Optional[str], typer.Option(
    "--threads", "-t", help="Threads: a list, e.g. 1,2,4 (auto: r1run's default).", show_default=False)]
CacheKList = Annotated[Optional[str], typer.Option(
    "--cache-type-k", "-ctk", help="K cache types: a list, e.g. f16,q8_0,q4_0.", show_default=False)]
FlashAttnList = Annotated[Optional[str], typer.Option(
    "--flash-attn", "-fa", help="Flash attention: a list of on, off, auto.", show_default=False)]
BatchList = Annotated[Optional[str], typer.Option(
    "--batch-size", "-b", help="Logical batch sizes: a list.", show_default=False)]
UbatchList = Annotated[Optional[str], typer.Option(
    "--ubatch-size", "-ub", help="Physical batch sizes: a list, e.g. 128,256,512.", show_default=False)]


@handle_errors
def bench(
    model: o.ModelArg = None,
    quant: o.QuantOpt = None,
    gpu_layers: GpuLayersList = None,
    threads: ThreadsList = None,
    ctx_size: o.CtxOpt = None,
    cache_type_k: CacheKList = None,
    flash_attn: FlashAttnList = None,
    batch_size: BatchList = None,
    ubatch_size: UbatchList = None,
    prompt_tokens: Annotated[int, typer.Option(
        "--prompt-tokens", help="Prompt tokens per prompt test (0: none; llama-bench's -p).")] = 128,
    bench_p: Annotated[Optional[str], typer.Option("-p", hidden=True)] = None,
    gen_tokens: Annotated[int, typer.Option("--gen-tokens", "-n", help="Tokens per generation test (0: none).")] = 32,
    repetitions: Annotated[int, typer.Option(
        "--repetitions", "-r", help="Repetitions of each test (medians are shown).")] = 3,
    bandwidth: Annotated[Optional[str], typer.Option(
        "--bandwidth", help="Memory bandwidth for the bound instead of the measured one: 80GB/s or "
            "cpu=80GB/s,gpu=1000GB/s.", show_default=False)] = None,
    rpc: o.RpcOpt = None,
    llama_defaults: Annotated[bool, typer.Option(
        "--llama-defaults", help="Also measure llama-bench with none of r1run's settings.")] = False,
    save: Annotated[bool, typer.Option(
        "--save", help="Store the results under R1RUN_HOME/results (see --history).")] = False,
    history: Annotated[bool, typer.Option(
        "--history", help="List saved results (of MODEL, if given) and compare them.")] = False,
    tune: Annotated[bool, typer.Option(
        "--tune", help="Search for the fastest settings and store them as the profile chat and serve use.")] = False,
    json_: JsonOpt = False,
    csv_: Annotated[bool, typer.Option("--csv", help="Print one CSV row per configuration.")] = False,
    md: Annotated[bool, typer.Option("--md", help="Print a Markdown table.")] = False,
    llama_bin: LlamaBinOpt = None,
    engine: o.EngineOpt = "auto",
) -> None:
    """Measure prompt and generation speed with llama-bench: sweep settings, compare with the bandwidth bound, tune."""

    if bench_p is not None:  # llama-bench's -p; in r1run -p is always a prompt (chat, quickstart)
        raise BadInput("bench has no -p: in r1run, -p is a prompt's text (chat, quickstart)",
                       f"for {bench_p} prompt tokens per test: --prompt-tokens {bench_p} (llama-bench's -p)")
    if sum((json_, csv_, md)) > 1:
        raise BadInput("--json, --csv and --md cannot be combined", "pick one output format")
    if history:
        if tune or save:
            raise BadInput("--history only reads saved results", "run it without --tune / --save")
        _history(model, json_)
        return
    compared = engines.parse_list(engine)
    if compared is not None:
        if any(v is not None for v in (gpu_layers, threads, cache_type_k, flash_attn, batch_size, ubatch_size)) or tune:
            raise BadInput("--engine A,B measures each engine's r1run default", "drop the lists and --tune")
        _compare(core.BenchRequest(model=model, quant=quant, ctx=ctx_size, n_prompt=prompt_tokens, n_gen=gen_tokens,
                                   repetitions=repetitions, bandwidth=bandwidth, rpc=o.split_rpc(rpc)),
                 compared, json_)
        return
    opts = core.BenchRequest(model=model, quant=quant, gpu_layers=gpu_layers, threads=threads, ctx=ctx_size,
                        cache_type_k=cache_type_k, flash_attn=flash_attn, batch=batch_size, ubatch=ubatch_size,
                        n_prompt=prompt_tokens, n_gen=gen_tokens, repetitions=repetitions, bandwidth=bandwidth,
                        rpc=o.split_rpc(rpc), llama_bin=llama_bin, llama_defaults=llama_defaults,
                        engine=run_engine.parse(engine))  # one engine (or auto): a sweep as usual
    fmt = "json" if json_ else "csv" if csv_ else "md" if md else "table"
    if tune:
        if any(v is not None for v in (gpu_layers, threads, cache_type_k, flash_attn, batch_size, ubatch_size)):
            raise BadInput("--tune chooses the values itself",
                           "drop the lists (--threads, --flash-attn...) or drop --tune")
        _tune(opts, fmt, save)
        return
    progress = render.Progress()
    with progress:
        report = core.run_sweep(opts, on_progress=progress.update,
                          on_setup=lambda s, invs: render.show_setup(s, invs), on_status=progress.say)
    usage.record(report.setup.home, report.setup.target.key, report.setup.target.quant, "ran")
    saved = _save(report, "sweep") if save else None
    render.show_report(report, fmt, saved)


def _save(report, kind: str, record: dict | None = None) -> Path:
    s = report.setup
    status("hashing the model for --save (once per file; cached)")
    sha = store.model_sha256(s.home, [Path(sh.path) for sh in s.target.info.shards])
    rec = record or core.to_record(report, sha256=sha, kind=kind)
    rec["model"]["sha256"] = sha
    path = store.save(s.home, rec)
    status(f"saved to {path}")
    return path


def _compare(opts: core.BenchRequest, names: list[str], json_: bool) -> None:
    with render.Progress():
        comparison = engines.compare(opts, names)
    first = next(iter(comparison.setups.values()))
    status("hashing the model to store the comparison (once per file; cached)")
    record = engines.to_record(comparison, store.model_sha256(first.home, [Path(sh.path) for sh in
                                                                          first.target.info.shards]))
    path = engines.save(first.home, record)
    chosen = record["faster"] if record.get("agree") is not False else "llama.cpp"
    status(f"saved to {path}; `--engine auto` now runs {chosen} for this model on this machine")
    if json_:
        print_json(json.dumps(record, indent=2))
    else:
        render.show_engines(comparison)


def _tune(opts, fmt: str, save: bool) -> None:
    progress = render.Progress()
    with progress:
        result = tune.search(opts, on_progress=progress.update_step, on_setup=lambda s: render.show_setup(s, None),
                             on_status=progress.say)
    path, record = tune.save_profile(result, opts.rpc)
    if save:
        _save(result.report, "tune", core.to_record(result.report, kind="tune"))
    render.show_tune(result, record, path, fmt)


def _history(model: str | None, json_: bool) -> None:
    home = Home.from_env()
    records = store.load(home)
    if model:
        records = [r for r in records if _matches(r, model)]
    if not records:
        where = f" for {model}" if model else ""
        raise BadInput(f"no saved benchmark results{where} in {store.results_file(home)}",
                       "run `r1run bench MODEL --save` first")
    if json_:

        print_json(json.dumps(records, indent=2))
        return
    render.show_history(records)
    if len({r["model"].get("sha256") for r in records}) > 1 and not model:
        warn("several models: give MODEL to compare one model's results")


def _matches(rec: dict, model: str) -> bool:
    m = rec.get("model", {})
    return model in (m.get("name") or "") or model in (m.get("path") or "") or (m.get("sha256") or "").startswith(model)
