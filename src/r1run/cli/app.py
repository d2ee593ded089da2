"""The `r1run` Typer application and its entry point."""

from __future__ import annotations

import typer

from r1run import __version__
from r1run.cli import build as build_cmd
from r1run.cli import doctor as doctor_cmd
from r1run.cli import models as models_cmd
from r1run.cli import download as download_cmd
from r1run.cli import inspect as inspect_cmd
from r1run.cli import plan as plan_cmd
from r1run.cli import chat as chat_cmd
from r1run.cli import serve as serve_cmd
from r1run.cli import bench as bench_cmd
from r1run.cli import perf as perf_cmd
from r1run.cli import worker as worker_cmd
from r1run.cli import quickstart as quickstart_cmd

app = typer.Typer(
    name="r1run",
    help="From nothing to chatting with DeepSeek-R1 (and other very large GGUF models) on your own machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"r1run {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show r1run's version."),
) -> None:
    """From nothing to chatting with DeepSeek-R1 (and other very large GGUF models) on your own machine."""


# In the order a person meets them (`r1run --help` lists them so).
build_cmd.register(app)
doctor_cmd.register(app)
models_cmd.register(app)
download_cmd.register(app)
inspect_cmd.register(app)
plan_cmd.register(app)
chat_cmd.register(app)
serve_cmd.register(app)
bench_cmd.register(app)
perf_cmd.register(app)
worker_cmd.register(app)
quickstart_cmd.register(app)


def main() -> None:
    app()
