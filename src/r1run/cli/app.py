"""The `r1run` Typer application and its entry point."""

from __future__ import annotations

import typer

from r1run import __version__
from r1run.cli import build as build_cmd
from r1run.cli import doctor as doctor_cmd

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


build_cmd.register(app)
doctor_cmd.register(app)


def main() -> None:
    app()
