"""The `r1run` Typer application and its entry point."""

from __future__ import annotations

import sys

import typer

from r1run import __version__
from r1run.cli import bench as bench_cmd
from r1run.cli import build as build_cmd
from r1run.cli import chat as chat_cmd
from r1run.cli import doctor as doctor_cmd
from r1run.cli import download as download_cmd
from r1run.cli import eval as eval_cmd
from r1run.cli import inspect as inspect_cmd
from r1run.cli import models as models_cmd
from r1run.cli import perf as perf_cmd
from r1run.cli import plan as plan_cmd
from r1run.cli import quickstart as quickstart_cmd
from r1run.cli import serve as serve_cmd
from r1run.cli import worker as worker_cmd
from r1run.hardware import begin_cpu_window

COMMANDS = {
    # In the order a person meets them (`r1run --help` lists them so).
    "build": build_cmd, "doctor": doctor_cmd, "models": models_cmd, "download": download_cmd,
    "inspect": inspect_cmd, "plan": plan_cmd, "chat": chat_cmd, "serve": serve_cmd, "bench": bench_cmd,
    "perf": perf_cmd, "worker": worker_cmd, "quickstart": quickstart_cmd,
    "eval": eval_cmd,
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"r1run {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="Show r1run's version."),
) -> None:
    """From nothing to chatting with DeepSeek-R1 (and other very large GGUF models) on your own machine."""


def make_app(only: str | None = None) -> typer.Typer:
    """The application with every command, or with just `only` (Typer builds every registered command's
    options on each run, which costs a one-shot chat tens of milliseconds for nothing)."""
    application = typer.Typer(
        name="r1run",
        help="From nothing to chatting with DeepSeek-R1 (and other very large GGUF models) on your own machine.",
        no_args_is_help=True,
        add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
        context_settings={"help_option_names": ["-h", "--help"]},
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    application.callback()(_root)
    for name, module in COMMANDS.items():
        if only is None or name == only:
            module.register(application)
    return application


# Commands that choose llama.cpp's thread count from how busy the CPUs are.
_TUNING = ("chat", "serve", "quickstart", "bench", "plan", "eval")


def main() -> None:
    """Run the command line (the `r1run` console script)."""
    args = sys.argv[1:]
    if args and args[0] in _TUNING:
        begin_cpu_window()  # the sample of how busy other programs keep the CPUs spans start-up, not a sleep
    make_app(args[0] if args and args[0] in COMMANDS else None)()
