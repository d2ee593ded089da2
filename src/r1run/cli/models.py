"""`r1run models`."""

from __future__ import annotations

import json

import typer
from rich import box
from rich.table import Table

from r1run import catalog as cat
from r1run.cli.common import JsonOpt, handle_errors, out, print_json, status
from r1run.home import Home
from r1run.models import list_models
from r1run.units import size


def register(app: typer.Typer) -> None:
    app.command("models")(models)


@handle_errors
def models(json_: JsonOpt = False) -> None:
    """List the catalog's models and quants: size, bits, quality, and whether they are downloaded and verified."""


    home = Home.from_env()
    catalog = cat.load(home)
    rows = list_models(home, catalog)
    if json_:
        print_json(json.dumps({"schema": "r1run.models/1", "default_model": catalog.default_model,
                               "models": [r.to_json() for r in rows]}, indent=2))
        return
    _render(rows)
    user = cat.user_catalog_path(home)
    status(f"add models or quants in {user}" + (" (in use)" if user.is_file() else ""))


def _size(row) -> str:
    if row.size_bytes is None:
        return "?"
    return size(row.size_bytes) if row.size_exact else f"~{size(row.size_bytes)}"


def _render(rows) -> None:
    styles = {"verified": "green", "partial": "yellow", "unverified": "yellow", "missing": "red"}
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="* = default quant", title_justify="left",
                  title_style="dim")
    for col in ("model", "quant", "bits", "size", "state"):
        table.add_column(col, no_wrap=True)
    table.add_column("where / note", overflow="fold", ratio=1)
    last = None
    for r in rows:
        if last is not None and r.model != last:
            table.add_section()
        last = r.model
        state = f"[{styles[r.state]}]{r.state}[/]" if r.state in styles else "[dim]-[/]"
        quant = f"{r.quant} *" if r.default else r.quant
        note = r.path if r.path else f"[dim]{r.quality}[/]"
        table.add_row(r.model, quant, f"{r.bits:g}" if r.bits else "", _size(r), state, note)
    out().print(table)
