"""`r1run eval flappy`: Unsloth's Flappy Bird test, generated through r1run's run path and scored by playing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from r1run import usage
from r1run.bench.profile import find_for_target
from r1run.cli import runopts as o
from r1run.cli.common import JsonOpt, LlamaBinOpt, err, handle_errors, out, print_json, status
from r1run.cli.eval_render import game_table, quant_table
from r1run.errors import BadInput
from r1run.eval import flappy, generate, results
from r1run.eval.extract import game_source, why_no_game
from r1run.eval.scorer import require_pygame, score_source
from r1run.home import Home
from r1run.run import oneshot
from r1run.run.prepare import prepare
from r1run.think import Piece


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Test what a model writes: `r1run eval flappy` (Unsloth's Flappy Bird test).",
                        no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})
    group.command("flappy", context_settings=o.EXTRA_ARGS)(flappy_cmd)
    app.add_typer(group, name="eval")


@handle_errors
def flappy_cmd(
    ctx: typer.Context,
    model: o.ModelArg = None,
    quant: Annotated[Optional[list[str]], typer.Option(
        "--quant", "-q", help="Quant(s) of a catalog model to test; repeat for several.", show_default=False)] = None,
    score: Annotated[Optional[Path], typer.Option(
        "--score", help="Score this answer (markdown or .py) instead of generating.", show_default=False)] = None,
    seeds: Annotated[str, typer.Option("--seeds", help="Seeds, one answer each (Unsloth's three).")] = ",".join(
        str(s) for s in flappy.SEEDS),
    n_predict: o.NPredictOpt = None,
    gpu_layers: o.GpuLayersOpt = "auto",
    threads: o.ThreadsOpt = "auto",
    detail: Annotated[bool, typer.Option("--detail", help="Show each item's evidence for every game.")] = False,
    llama_bin: LlamaBinOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Generate Flappy Bird games with a model (seeds 3407-3409, temperature 0.6, context 8192) and score each on
    Unsloth's ten items by playing it headless; or score an existing answer with --score FILE. Extra llama.cpp
    flags go after --."""
    if score is not None:
        if model is not None or quant or ctx.args:
            raise BadInput("--score scores a file: give no MODEL, --quant or llama.cpp flags with it")
        _score_file(score, json_)
        return
    seed_list = _seeds(seeds)
    require_pygame()
    home = Home.from_env()
    run_stamp = results.stamp()
    done: list[results.QuantResult] = []
    quants: list[str | None] = list(quant) if quant else [None]
    for q in quants:
        req = o.request(model=model, quant=q, gpu_layers=gpu_layers, ctx=flappy.CTX, threads=threads,
                        n_predict=n_predict, temp=flappy.TEMPERATURE, extra=tuple(ctx.args))
        prepared = generate.with_k_cache(prepare(home, req, llama_bin, find_for_target))
        o.show_prepared(prepared)
        target, spec = prepared.target, prepared.config.spec
        games = []
        for seed in seed_list:
            status(f"{target.name}: generating with seed {seed}")
            gen = generate.answer_once(prepared, seed, logs=home.ensure(home.logs), events=_progress())
            if gen.interrupted:
                raise KeyboardInterrupt
            usage.record(home, target.key, target.quant, "ran")
            label = results.label(target.name, target.quant)
            path = results.save_answer(results.answer_path(home.evals, run_stamp, label, seed), gen.text)
            err().print("")
            status(f"seed {seed}: {gen.tokens or '?'} tokens at {gen.gen_tps or 0:.1f} t/s; scoring {path}")
            card = score_source(game_source(gen.text, is_python_file=False), missing=why_no_game(gen.text))
            games.append(results.Game(gen, card, path))
            if detail and not json_:
                err().print(game_table(card, title=f"{label} seed {seed}"))
        done.append(results.QuantResult(
            target.name, target.key, target.quant, flappy.PUBLISHED.get((target.key, target.quant)),
            {"temperature": spec.temp, "min_p": spec.min_p, "ctx": spec.ctx, "cache_type_k": spec.cache_type_k,
             "n_predict": spec.n_predict, "seeds": seed_list, "llama": prepared.install.origin},
            games))
    saved = results.save(home.evals, run_stamp, done)
    if json_:
        print_json(json.dumps({"schema": results.SCHEMA, "saved": str(saved),
                               "results": [r.to_json() for r in done]}, indent=2))
        return
    for r in done:
        out().print(quant_table(r))
    status(f"saved: {saved}")


def _progress() -> oneshot.Events:
    """A dot on stderr per 500 characters written (reasoning or answer): long answers take minutes."""
    written = [0]

    def on_piece(piece: Piece) -> None:
        before = written[0] // 500
        written[0] += len(piece.text)
        if written[0] // 500 > before:
            err().print(".", end="", highlight=False)

    return oneshot.Events(on_piece=on_piece, on_status=status)


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise BadInput(f"--seeds must be whole numbers separated by commas (got {text!r})",
                       "e.g. --seeds 3407,3408,3409") from None
    if not seeds:
        raise BadInput("--seeds names no seed", "e.g. --seeds 3407")
    return seeds


def _score_file(path: Path, json_: bool) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"--score {path}: {getattr(exc, 'strerror', None) or exc}", "give a markdown answer or a "
                       ".py file") from None
    require_pygame()
    card = score_source(game_source(text, is_python_file=path.suffix == ".py"), missing=why_no_game(text))
    if json_:
        print_json(json.dumps({"schema": "r1run.eval.score/1", "file": str(path), **results.card_json(card)},
                              indent=2))
        return
    out().print(game_table(card, title=f"{path.name}: {card.total:g}/10"))
    status(f"scored in {card.seconds:.1f} s")
