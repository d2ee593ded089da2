"""`r1run chat`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from rich.markup import escape

from r1run import proc, running, usage
from r1run.bench import engines
from r1run.bench.profile import find_for_target
from r1run.cli import runopts as o
from r1run.cli.common import JsonOpt, LlamaBinOpt, err, handle_errors, out, print_json, status, warn
from r1run.cli.render import tps_table
from r1run.errors import ModelNotLoaded
from r1run.home import Home
from r1run.llama import args
from r1run.perf.export import run_json
from r1run.perf.watcher import LogEvent
from r1run.run import interactive, oneshot, serverchat
from r1run.run.prepare import Prepared, fall_back, prepare
from r1run.think import Piece


def register(app: typer.Typer) -> None:
    app.command("chat", context_settings=o.EXTRA_ARGS)(chat)


@handle_errors
def chat(
    ctx: typer.Context,
    model: o.ModelArg = None,
    quant: o.QuantOpt = None,
    prompt: Annotated[Optional[str], typer.Option(
        "--prompt", "-p", help="Answer this one prompt and exit.", show_default=False)] = None,
    prompt_file: Annotated[Optional[Path], typer.Option(
        "--prompt-file", "-f", help="Read the one prompt from a file.", show_default=False)] = None,
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
    rpc: o.RpcOpt = None,
    gpu_memory: o.GpuMemoryOpt = None,
    gpu_name: o.GpuNameOpt = None,
    ram: o.RamOpt = None,
    unified: o.UnifiedOpt = None,
    bandwidth: o.BandwidthOpt = None,
    device_memory: o.DeviceMemoryOpt = None,
    hide_thinking: Annotated[bool, typer.Option(
        "--hide-thinking", help="Do not show the reasoning between <think> and </think>.")] = False,
    no_retry: o.NoRetryOpt = False,
    dry_run: o.DryRunOpt = False,
    no_profile: o.NoProfileOpt = False,
    engine: o.EngineOpt = "auto",
    llama_bin: LlamaBinOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Chat with a model: interactive, or one answer with --prompt. Extra llama.cpp flags go after --."""
    home = Home.from_env()
    text = o.read_prompt(prompt, prompt_file)
    req = o.request(model=model, quant=quant, gpu_layers=gpu_layers, ctx=ctx_size, threads=threads,
                    n_predict=n_predict, temp=temp, min_p=min_p, seed=seed, cache_type_k=cache_type_k,
                    cache_type_v=cache_type_v, flash_attn_=flash_attn, batch=batch_size, ubatch=ubatch_size,
                    rpc_=rpc, gpu_memory=gpu_memory, gpu_name=gpu_name, ram=ram, unified=unified,
                    bandwidth=bandwidth, device_memory=device_memory, extra=tuple(ctx.args),
                    profile=not no_profile, engine=engine)
    run = prepare(home, req, llama_bin, find_for_target, engines.find_for_target)
    spec, target = run.config.spec, run.target

    if text is None:
        o.show_prepared(run)
        own_loop = serverchat.needed(run.caps)
        if own_loop:
            status("chat through llama-server: this llama-cli has no /exit, no Ctrl-D and no per-answer speed")
        argv = (args.server_argv(spec, run.caps, host="127.0.0.1", port=0) if own_loop
                else args.chat_argv(spec, run.caps))
        if dry_run:
            out().print(proc.quote(argv), highlight=False, markup=False)
            return
        usage.record(home, target.key, target.quant, "ran")
        try:
            with running.registered(home, run.record("chat")):
                _own_loop(run, home, json_, hide_thinking) if own_loop else _interactive(run, home, json_)
        except ModelNotLoaded as exc:  # ik_llama.cpp's server could not load it (the loop starts it first)
            run = fall_back(home, req, run, exc, find_for_target, engines.find_for_target)
            o.show_prepared(run)
            with running.registered(home, run.record("chat")):
                (_own_loop(run, home, json_, hide_thinking) if serverchat.needed(run.caps)
                 else _interactive(run, home, json_))
        return

    prompt_text = target.render(text)
    if dry_run:
        o.show_prepared(run)
        out().print(proc.quote(args.oneshot_argv(spec, run.caps, prompt_text)), highlight=False, markup=False)
        return
    try:
        with running.registered(home, run.record("chat")):
            result = stream_answer(run, home, prompt_text, hide_thinking=hide_thinking, json_=json_,
                                   retry=not no_retry)
    except ModelNotLoaded as exc:  # ik_llama.cpp lacks what the file holds: llama.cpp runs it (auto), or a clear error
        run = fall_back(home, req, run, exc, find_for_target, engines.find_for_target)
        prompt_text = run.target.render(text)
        with running.registered(home, run.record("chat")):
            result = stream_answer(run, home, prompt_text, hide_thinking=hide_thinking, json_=json_,
                                   retry=not no_retry)
    if result.attempts[-1].exit_code == 0:  # llama.cpp loaded the model and answered
        usage.record(home, target.key, target.quant, "ran")
    finish(result, run, json_)


def stream_answer(run: Prepared, home: Home, prompt_text: str, *, hide_thinking: bool = False, json_: bool = False,
           retry: bool = True, announce: bool = True) -> oneshot.Answer:
    """One answer, streamed to stdout (its reasoning dimmed on stderr); `announce` prints r1run's choices once
    llama.cpp has started. quickstart answers through this too."""
    on_piece = piece_printer(hide_thinking=hide_thinking, quiet=json_)

    def on_event(ev: LogEvent) -> None:
        if ev.kind == "offload":
            planned = run.config.planned_gpu_layers
            msg = f"llama.cpp offloaded {ev.value.layers}/{ev.value.total} layers to the GPU"
            if ev.value.layers < min(planned, ev.value.total):
                warn(f"{msg}, fewer than the {planned} planned")

    events = oneshot.Events(on_piece=on_piece, on_status=lambda m: warn(m), on_event=on_event,
                            on_started=(lambda: o.show_prepared(run)) if announce else (lambda: None))
    return oneshot.answer(run.config.spec, run.caps, prompt_text, logs=home.ensure(home.logs), events=events,
                       retry=retry, starts_thinking=run.target.starts_thinking)


def piece_printer(*, hide_thinking: bool, quiet: bool = False) -> Callable[[Piece], None]:
    """Shows an answer's pieces: the answer on stdout, its reasoning dimmed on stderr between `── thinking ──` and
    `── answer ──` (or not at all: --hide-thinking; nothing with --json)."""
    state = {"shown": ""}  # "", "thinking" or "answer": what was shown last

    def on_piece(piece: Piece) -> None:
        if quiet:
            return
        if piece.thinking:
            if hide_thinking:
                return
            if state["shown"] != "thinking":
                err().print("[dim]── thinking ──[/dim]")
                state["shown"] = "thinking"
            err().print(f"[dim italic]{escape(piece.text)}[/dim italic]", end="", highlight=False)
        else:
            if state["shown"] == "thinking":
                err().print("\n[dim]── answer ──[/dim]")
            state["shown"] = "answer"
            sys.stdout.write(piece.text)
            sys.stdout.flush()

    return on_piece


def _own_loop(run: Prepared, home: Home, json_: bool, hide_thinking: bool = False) -> None:
    """r1run's own conversation through llama-server (r1run.run.serverchat), shown as llama-cli's would be."""
    term = serverchat.Terminal(
        read_line=input, on_piece=piece_printer(hide_thinking=hide_thinking),
        on_line=lambda line: out().print(line, highlight=False, markup=False),
        on_ready=lambda s: status(f"ready in {s:.1f} s; /exit or Ctrl-D ends, Ctrl-C stops an answer"))
    size = sum(s.file_bytes for s in run.target.info.shards)
    result = serverchat.converse(run.config.spec, run.caps, logs=home.ensure(home.logs), run_dir=home.root / "run",
                                 size=size, term=term, starts_thinking=run.target.starts_thinking)
    _conversation_end(run, result.exit_code, result.summaries, result.log_path, json_)


def _interactive(run: Prepared, home: Home, json_: bool) -> None:
    result = interactive.converse(run.config.spec, run.caps, logs=home.ensure(home.logs))
    _conversation_end(run, result.exit_code, result.summaries, result.log_path, json_)


def _conversation_end(run: Prepared, exit_code: int, summaries: list, log_path: Path, json_: bool) -> None:
    """The end of an interactive conversation: the log, the speed of each answer (or the JSON)."""
    result = interactive.Conversation(exit_code, summaries, log_path)
    status(f"log: {result.log_path}")
    if json_:
        print_json(json.dumps({"schema": "r1run.chat/2", "interactive": True, "exit_code": result.exit_code,
                               "log": str(result.log_path), "turns": [run_json(s) for s in result.summaries]},
                              indent=2))
    elif result.summaries:
        err().print(tps_table(result.summaries, title="speed per answer"))
    full = [s.index for s in result.summaries if s.context_full]
    if full:
        warn(context_full_message(run, f"answer {', '.join(map(str, full))}"))
    dropped = [s.index for s in result.summaries if s.context_dropped]
    if dropped:
        ctx = run.config.spec.ctx
        warn(f"the context filled up ({ctx} tokens) at answer {', '.join(map(str, dropped))}: llama-server dropped "
             f"the conversation's oldest tokens to go on, and the model no longer saw them. Raise it with -c "
             f"{ctx * 2} (or more; `r1run plan` shows the largest that fits)")
    if result.exit_code not in (0, 130):
        raise typer.Exit(1)


def context_full_message(run: Prepared, what: str) -> str:
    """What to say when llama.cpp stopped an answer because the context filled up."""
    ctx = run.config.spec.ctx
    why = ("DeepSeek's architecture (deepseek2) cannot shift its context to make room"
           if run.target.info.architecture == "deepseek2" else "llama.cpp does not shift the context to make room")
    return (f"the context is full ({ctx} tokens): {what} stopped there, not at its end; {why}. Raise it with "
            f"-c {ctx * 2} (or more; `r1run plan` shows the largest that fits)")


def finish(result: oneshot.Answer, run: Prepared, json_: bool) -> None:
    """The end of an answer: a newline, what each failed try changed, the speed table (or the JSON)."""
    target = run.target
    if not json_ and result.answer and not result.answer.endswith("\n"):
        sys.stdout.write("\n")
    for a in result.attempts:
        if a.change:
            warn(f"attempt failed: {a.oom}; changed {a.change}")
    if json_:
        print_json(json.dumps({
            "schema": "r1run.chat/2",
            "interactive": False,
            "model": target.key or target.name,
            "quant": target.quant or None,
            "path": str(target.path),
            "answer": result.answer,
            "reasoning": result.reasoning,
            "interrupted": result.interrupted,
            "attempts": [{"argv": list(a.argv), "exit_code": a.exit_code, "oom": a.oom, "offloaded": a.offloaded,
                          "change": a.change} for a in result.attempts],
            "summary": run_json(result.summary) if result.summary is not None else None,
            "log": str(result.log_path),
        }, indent=2))
    elif result.summary is not None:
        err().print(tps_table([result.summary]))
    if result.summary is not None and result.summary.context_full:
        warn(context_full_message(run, "the answer"))
    status(f"log: {result.log_path}")
    if result.interrupted:
        raise KeyboardInterrupt
