"""The `r1run` Typer application and its entry point."""

from __future__ import annotations

import re
import sys

import typer
from typer.core import TyperArgument, TyperCommand, TyperOption

from r1run import __version__
from r1run.cli import bench as bench_cmd
from r1run.cli import build as build_cmd
from r1run.cli import chat as chat_cmd
from r1run.cli import doctor as doctor_cmd
from r1run.cli import download as download_cmd
from r1run.cli import eval as eval_cmd
from r1run.cli import inspect as inspect_cmd
from r1run.cli import mine as mine_cmd
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
    "list": mine_cmd, "ls": mine_cmd, "rm": mine_cmd,
    "inspect": inspect_cmd, "plan": plan_cmd, "chat": chat_cmd, "serve": serve_cmd, "bench": bench_cmd,
    "perf": perf_cmd, "worker": worker_cmd, "ps": mine_cmd, "stop": mine_cmd, "eval": eval_cmd,
    "quickstart": quickstart_cmd,
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


# What an option's value looks like in --help, where its definition names none; Typer would print the Python
# type (`<str>`, `<list[str]>`).
METAVARS = {
    "--gpu-layers": "auto|N", "--threads": "auto|N", "--flash-attn": "on|off|auto", "--cache-type-k": "TYPE",
    "--cache-type-v": "TYPE", "--rpc": "HOST:PORT,...", "--gpu-memory": "SIZE", "--ram": "SIZE",
    "--gpu-name": "NAME", "--bandwidth": "RATE", "--device-memory": "SIZES", "--llama-bin": "DIR",
    "--temp": "T", "--min-p": "P", "--host": "ADDRESS", "--api-key": "KEY", "--alias": "NAME",
    "--backend": "NAME", "--source": "SOURCE", "--device": "DEVICES", "--quant": "Q", "--batch-size": "N",
    "--ubatch-size": "N", "--parallel": "N", "--seed": "N", "--n-predict": "N", "--ref": "TAG", "--repo": "URL",
    "--ui": "auto|npm|prebuilt|none", "--cmake-arg": "-DNAME=VALUE", "--use": "ID", "--revision": "REV",
    "--engine": "ENGINE", "--seeds": "N,N,...",
}
BY_TYPE = {"int": "N", "float": "X", "path": "PATH", "str": "TEXT"}


class _Argument(TyperArgument):
    def display_type_rich(self, ctx) -> str | None:
        return None  # the name says it (MODEL, LOG); Typer would add `<str>`


class _Command(TyperCommand):
    """Typer's command with help written as people write it: a required argument is `MODEL` (Typer: `{MODEL}`),
    an optional one `[MODEL]`, and every option's value has a name (`-c, --ctx-size N`), never a Python type."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for p in self.params:
            if isinstance(p, TyperArgument):
                p.__class__ = _Argument
                p.metavar = p.metavar or (p.name or "").upper()
            elif isinstance(p, TyperOption) and not p.is_flag and p.metavar is None:
                long = next((o for o in p.opts if o.startswith("--")), "")
                p.metavar = METAVARS.get(long) or BY_TYPE.get(p.bare_type().lower(), "VALUE")

    def collect_usage_pieces(self, ctx) -> list[str]:
        return [re.sub(r"^\{(.*)\}", r"\1", piece) for piece in super().collect_usage_pieces(ctx)]


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
    registered = set()
    for name, module in COMMANDS.items():
        if (only is None or name == only) and module not in registered:
            module.register(application)
            registered.add(module)
    for info in application.registered_commands:
        if info.cls is TyperCommand:
            info.cls = _Command
        info.short_help = info.short_help or SHORT_HELP.get(info.name or "")
    for group in application.registered_groups:  # commands with subcommands (eval)
        group.short_help = group.short_help or SHORT_HELP.get(group.name or "")
        for sub in group.typer_instance.registered_commands if group.typer_instance else ():
            if sub.cls is TyperCommand:
                sub.cls = _Command
    return application


# One line per command for `r1run --help`, short enough not to be cut at 80 columns (the docstrings say more).
SHORT_HELP = {
    "build": "Build llama.cpp for this machine's CPU or GPU",
    "doctor": "Check this machine and what r1run needs on it",
    "models": "The catalog: models and quants you can download",
    "download": "Download a model's files, resumable and verified",
    "list": "Your downloaded models: size, state, last used, where",
    "rm": "Remove a downloaded quant's files",
    "ps": "What r1run is running: servers, workers, chats",
    "stop": "Stop an r1run server, worker or chat",
    "inspect": "What a GGUF model holds: architecture, sizes, tensors",
    "plan": "Which quant fits, where its layers go, flags, speed",
    "chat": "Chat with a model, or answer one --prompt",
    "serve": "Serve a model: OpenAI-compatible API and web UI",
    "bench": "Measure speed with llama-bench; sweep and tune",
    "perf": "How fast llama.cpp ran, read from its output",
    "worker": "Lend this machine's memory to another r1run (RPC)",
    "eval": "Is a quant good enough? The Flappy Bird test, played",
    "quickstart": "From nothing to an answer, in one command",
}

# Commands that choose llama.cpp's thread count from how busy the CPUs are.
_TUNING = ("chat", "serve", "quickstart", "bench", "plan", "eval")


def main() -> None:
    """Run the command line (the `r1run` console script)."""
    args = sys.argv[1:]
    if args and args[0] in _TUNING:
        begin_cpu_window()  # the sample of how busy other programs keep the CPUs spans start-up, not a sleep
    make_app(args[0] if args and args[0] in COMMANDS else None)()
