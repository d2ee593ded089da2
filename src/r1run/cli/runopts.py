"""Options shared by the commands that run a model (`chat`, `serve`, later `bench`), defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

ModelArg = Annotated[Optional[str], typer.Argument(help="A catalog model (see `r1run models`) or a .gguf path / folder "
                                                        "[default: the model you downloaded or ran last].",
                                                   show_default=False)]
QuantOpt = Annotated[Optional[str], typer.Option("--quant", "-q", help="Which quant of a catalog model.", show_default=False)]
GpuLayersOpt = Annotated[str, typer.Option("--gpu-layers", "-ngl", help="auto (r1run places the weights) or a number of layers.")]
CtxOpt = Annotated[Optional[int], typer.Option("--ctx-size", "--ctx", "-c", help="Context size in tokens [default: catalog or 4096].", show_default=False)]
ThreadsOpt = Annotated[str, typer.Option("--threads", "-t", help="auto (physical cores) or a number.")]
NPredictOpt = Annotated[Optional[int], typer.Option("--n-predict", "-n", help="Most tokens to generate.", show_default=False)]
TempOpt = Annotated[Optional[float], typer.Option("--temp", help="Temperature [default: the model's recommendation].", show_default=False)]
MinPOpt = Annotated[Optional[float], typer.Option("--min-p", help="min-p sampling.", show_default=False)]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="RNG seed.", show_default=False)]
CacheKOpt = Annotated[Optional[str], typer.Option("--cache-type-k", help="K cache type (f16, q8_0, q4_0...).", show_default=False)]
CacheVOpt = Annotated[Optional[str], typer.Option("--cache-type-v", help="V cache type.", show_default=False)]
RpcOpt = Annotated[Optional[str], typer.Option("--rpc", help="RPC workers host:port,... to spread the model over.", show_default=False)]
NoRetryOpt = Annotated[bool, typer.Option("--no-retry", help="Do not retry with less after an out-of-memory.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the exact llama.cpp command and exit.")]
NoProfileOpt = Annotated[bool, typer.Option("--no-profile", help="Ignore the settings `r1run bench --tune` stored for this model.")]

EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def split_rpc(text: str | None) -> tuple[str, ...]:
    """`--rpc host:port,...` checked (syntax, ports 1-65535, IPv4 or a name): BadInput otherwise."""
    from r1run import rpc

    if text is None:
        return ()
    return tuple(str(ep) for ep in rpc.parse(text))


def read_prompt(prompt: str | None, prompt_file: Path | None) -> str | None:
    from r1run.errors import BadInput

    if prompt is not None and prompt_file is not None:
        raise BadInput("give --prompt or --prompt-file, not both")
    if prompt_file is not None:
        try:
            return prompt_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"--prompt-file {prompt_file}: {exc.strerror or exc}", "check the path") from None
    return prompt


def show_prepared(run) -> None:
    """Tell the user what r1run chose: model, llama.cpp, and every tuned default."""
    from r1run.cli.common import status, warn

    for w in run.tuned.warnings:
        warn(w)
    if run.target.chosen_because:
        status(f"model: {run.target.chosen_because}")
    status(f"model: {run.target.name} ({run.target.path}); llama.cpp: {run.install.origin}")
    for note in run.tuned.notes:
        status(note)
