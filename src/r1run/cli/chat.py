"""`r1run chat`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from r1run import usage
from r1run.cli import runopts as o
from r1run.cli.common import JsonOpt, LlamaBinOpt, err, handle_errors, out, print_json, status, warn


def register(app: typer.Typer) -> None:
    app.command("chat", context_settings=o.EXTRA_ARGS)(chat)


@handle_errors
def chat(
    ctx: typer.Context,
    model: o.ModelArg = None,
    quant: o.QuantOpt = None,
    prompt: Annotated[Optional[str], typer.Option("--prompt", "-p", help="Answer this one prompt and exit.", show_default=False)] = None,
    prompt_file: Annotated[Optional[Path], typer.Option("--prompt-file", "-f", help="Read the one prompt from a file.", show_default=False)] = None,
    gpu_layers: o.GpuLayersOpt = "auto",
    ctx_size: o.CtxOpt = None,
    threads: o.ThreadsOpt = "auto",
    n_predict: o.NPredictOpt = None,
    temp: o.TempOpt = None,
    min_p: o.MinPOpt = None,
    seed: o.SeedOpt = None,
    cache_type_k: o.CacheKOpt = None,
    cache_type_v: o.CacheVOpt = None,
    rpc: o.RpcOpt = None,
    hide_thinking: Annotated[bool, typer.Option("--hide-thinking", help="Do not show the reasoning between <think> and </think>.")] = False,
    no_retry: o.NoRetryOpt = False,
    dry_run: o.DryRunOpt = False,
    no_profile: o.NoProfileOpt = False,
    llama_bin: LlamaBinOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Chat with a model: interactive, or one answer with --prompt. Extra llama.cpp flags go after --."""
    from r1run import proc
    from r1run.chat import tuning
    from r1run.home import Home
    from r1run.llama import args

    home = Home.from_env()
    text = o.read_prompt(prompt, prompt_file)
    opts = tuning.Options(gpu_layers=gpu_layers, ctx=ctx_size, threads=threads, n_predict=n_predict, temp=temp,
                          min_p=min_p, seed=seed, cache_type_k=cache_type_k, cache_type_v=cache_type_v,
                          rpc=o.split_rpc(rpc), extra=tuple(ctx.args), profile=not no_profile)
    run = tuning.prepare(home, model, quant, opts, llama_bin)
    caps, target, tuned = run.caps, run.target, run.tuned

    if text is None:
        o.show_prepared(run)
        argv = args.chat_argv(tuned.spec, caps)
        if dry_run:
            out().print(proc.quote(argv), highlight=False, markup=False)
            return
        usage.record(home, target.key, target.quant, "ran")
        _interactive(tuned, caps, home, json_)
        return

    template = target.prompt_template
    prompt_text = template.replace("{prompt}", text) if template else text
    argv = args.oneshot_argv(tuned.spec, caps, prompt_text)
    if dry_run:
        o.show_prepared(run)
        out().print(proc.quote(argv), highlight=False, markup=False)
        return
    starts_thinking = bool(template and template.rstrip().endswith("<think>"))
    result = _oneshot(run, home, prompt_text, hide_thinking, json_, not no_retry, starts_thinking)
    if result.summary is not None:  # llama.cpp loaded the model and answered
        usage.record(home, target.key, target.quant, "ran")
    _remember(result, target, prompt_text)
    _finish(result, target, tuned, json_)


def _remember(result, target, prompt_text: str) -> None:
    """Let the next run of this command line start llama.cpp at once (r1run.chat.early): only after a
    first try that succeeded with nothing on a GPU or an RPC worker."""
    from r1run.chat import early
    from r1run.gguf.shards import locate

    if result.interrupted or len(result.attempts) != 1 or "--rpc" in result.attempts[0].argv:
        return
    first = result.attempts[0]
    if first.exit_code != 0 or first.offloaded is None or not first.offloaded.startswith("0/"):
        return
    early.remember(first.argv, prompt_text, target.prompt_template, locate(target.path))


def _oneshot(run, home, prompt_text, hide_thinking, json_, retry, starts_thinking, announce: bool = True):
    """One answer, streamed; `announce` prints r1run's choices once llama.cpp has started."""
    from r1run.chat import oneshot

    tuned = run.tuned
    state = {"thinking_shown": False, "planned": tuned.planned_gpu_layers}

    def on_piece(piece) -> None:
        if json_:
            return
        if piece.thinking:
            if hide_thinking:
                return
            from rich.markup import escape  # here: rich is imported only once there is something to show

            if not state["thinking_shown"]:
                err().print("[dim]── thinking ──[/dim]")
                state["thinking_shown"] = True
            err().print(f"[dim italic]{escape(piece.text)}[/dim italic]", end="", highlight=False)
        else:
            if state["thinking_shown"] is True:
                err().print("\n[dim]── answer ──[/dim]")
                state["thinking_shown"] = "done"
            sys.stdout.write(piece.text)
            sys.stdout.flush()

    def on_event(ev) -> None:
        if ev.kind == "offload":
            planned = state["planned"]
            msg = f"llama.cpp offloaded {ev.value.layers}/{ev.value.total} layers to the GPU"
            if planned is not None and ev.value.layers < min(planned, ev.value.total):
                warn(f"{msg}, fewer than the {planned} planned")

    events = oneshot.Events(on_piece=on_piece, on_status=lambda m: warn(m), on_event=on_event,
                            on_started=(lambda: o.show_prepared(run)) if announce else (lambda: None))
    return oneshot.run(tuned.spec, run.caps, prompt_text, logs=home.ensure(home.logs), events=events, retry=retry,
                       starts_thinking=starts_thinking)


def _interactive(tuned, caps, home, json_) -> None:
    from r1run.chat import interactive

    result = interactive.run(tuned.spec, caps, logs=home.ensure(home.logs))
    status(f"log: {result.log_path}")
    if json_:
        import json

        print_json(json.dumps({"exit_code": result.exit_code, "log": str(result.log_path),
                               "turns": [s.model_dump(mode="json") for s in result.summaries]}, indent=2))
    elif result.summaries:
        from r1run.cli.render import tps_table

        err().print(tps_table(result.summaries, title="speed per answer"))
    if result.exit_code not in (0, 130):
        raise typer.Exit(1)


def _finish(result, target, tuned, json_: bool) -> None:
    import json

    from r1run.cli.render import tps_table

    if not json_ and result.answer and not result.answer.endswith("\n"):
        sys.stdout.write("\n")
    for a in result.attempts:
        if a.change:
            warn(f"attempt failed: {a.oom}; changed {a.change}")
    if json_:
        print_json(json.dumps({
            "schema": "r1run.chat/1",
            "model": target.name,
            "path": str(target.path),
            "answer": result.answer,
            "reasoning": result.reasoning,
            "interrupted": result.interrupted,
            "started_early": result.started_early,
            "attempts": [{"argv": list(a.argv), "exit_code": a.exit_code, "oom": a.oom, "offloaded": a.offloaded,
                          "change": a.change} for a in result.attempts],
            "summary": result.summary.model_dump(mode="json") if result.summary is not None else None,
            "log": str(result.log_path),
        }, indent=2))
    elif result.summary is not None:
        err().print(tps_table([result.summary]))
    status(f"log: {result.log_path}")
    if result.interrupted:
        raise KeyboardInterrupt
