"""`r1run list`, `rm`, `ps` and `stop`: your models and what r1run is running."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

from r1run import running, store
from r1run.cli.common import JsonOpt, handle_errors, out, print_json, status
from r1run.errors import BadInput
from r1run.home import Home
from r1run.units import size


def register(app: typer.Typer) -> None:
    app.command("list")(list_)
    app.command("ls", hidden=True)(list_)
    app.command("rm")(rm)
    app.command("ps")(ps)
    app.command("stop")(stop)


@handle_errors
def list_(json_: JsonOpt = False) -> None:
    """The models on this machine: size on disk, verified or not, when last used, where they live.

    Quants in the Hugging Face cache (`hf download`) are listed too; `r1run download` verifies them and uses
    them in place. `r1run models` lists what the catalog offers."""
    home = Home.from_env()
    rows = store.installed(home)
    if json_:
        print_json(json.dumps({"schema": "r1run.list/1", "models": [r.to_json() for r in rows]}, indent=2))
        return
    if not rows:
        status("nothing downloaded yet: r1run models shows what you can download")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("model", "size", "state", "last used"):
        table.add_column(col, no_wrap=True)
    table.add_column("where", overflow="fold", ratio=1)
    styles = {"verified": "green", "partial": "yellow", "unverified": "yellow", "missing": "red",
              "in hf cache": "cyan"}
    for r in rows:
        shown = size(r.on_disk_bytes) if r.on_disk_bytes == r.size_bytes else \
            f"{size(r.on_disk_bytes)} of {size(r.size_bytes)}"
        state = f"[{styles.get(r.state, 'white')}]{r.state}[/]" + (" [bold]running[/]" if r.in_use_by else "")
        where = {"hf-cache": "HF cache: ", "folder": "", "r1run": ""}[r.where] + r.dir
        table.add_row(f"{r.model}:{r.quant}", shown, state, (r.last_used or "-").replace("T", " ")[:16], where)
    out().print(table)
    if any(r.state == "in hf cache" for r in rows):
        status("to use a quant from the Hugging Face cache: r1run download MODEL --quant Q (verifies it, no copy)")


@handle_errors
def rm(
    model: Annotated[str, typer.Argument(
        metavar="MODEL", help="What to remove: MODEL:QUANT as `r1run list` shows it, or MODEL with --quant.",
        show_default=False)],
    quant: Annotated[Optional[str], typer.Option("--quant", "-q", metavar="Q", help="The quant to remove.",
                                                 show_default=False)] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be deleted; delete nothing.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Remove a downloaded quant: its files (and only them), its partial downloads and r1run's records.

    Refused while an r1run server, worker or chat runs it. Files in the Hugging Face cache stay there (free them
    with `hf cache rm`); r1run forgets them."""
    home = Home.from_env()
    r = store.removal(home, model, quant)
    m = r.manifest
    what = f"{m.model}:{m.quant}"
    if json_ and dry_run:
        print_json(json.dumps(_removal_json(r, removed=False), indent=2))
        return
    for p in r.delete:
        out().print(f"{'would delete' if dry_run else 'delete'} {p}", highlight=False, markup=False)
    if r.keep:
        status(f"{len(r.keep)} file(s), {size(r.kept_bytes)}, stay in the Hugging Face cache (hf cache rm frees "
               "them)")
    if dry_run:
        status(f"{what}: would free {size(r.free_bytes)}")
        return
    if not yes:
        if not sys.stdin.isatty():
            raise BadInput(f"r1run rm {what} would delete {len(r.delete)} file(s), {size(r.free_bytes)}",
                           "pass --yes to remove without asking (stdin is not a terminal)")
        if not typer.confirm(f"remove {what} ({size(r.free_bytes)})?", default=False, err=True):
            raise typer.Exit(1)
    store.remove(home, r)
    if json_:
        print_json(json.dumps(_removal_json(r, removed=True), indent=2))
        return
    status(f"removed {what}; freed {size(r.free_bytes)}")


def _removal_json(r: store.Removal, *, removed: bool) -> dict:
    return {"schema": "r1run.rm/1", "model": r.manifest.model, "quant": r.manifest.quant, "removed": removed,
            "deleted": list(r.delete), "kept": list(r.keep), "freed_bytes": r.free_bytes,
            "kept_bytes": r.kept_bytes}


@handle_errors
def ps(json_: JsonOpt = False) -> None:
    """What r1run is running: servers, RPC workers and chats, with model, address, pid, uptime and memory."""
    home = Home.from_env()
    procs = running.alive(home)
    if json_:
        print_json(json.dumps({"schema": "r1run.ps/1", "running": [_proc_json(x) for x in procs]}, indent=2))
        return
    if not procs:
        status("nothing running (r1run serve, worker and chat show up here)")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("pid", "kind", "model", "address", "up", "memory"):
        table.add_column(col, no_wrap=True)
    for x in procs:
        r = x.record
        table.add_row(str(r.pid), r.kind, r.name, r.url.removeprefix("http://") or "-", _uptime(x.uptime_s),
                      size(x.rss_bytes))
    out().print(table)


def _proc_json(x: running.Process) -> dict:
    r = x.record
    return {"pid": r.pid, "kind": r.kind, "name": r.name, "model": r.model, "quant": r.quant, "engine": r.engine,
            "url": r.url or None, "started_at": r.started_at, "uptime_s": round(x.uptime_s, 1),
            "rss_bytes": x.rss_bytes, "children": list(x.children), "programs": list(x.programs), "log": r.log}


def _uptime(s: float) -> str:
    s = int(s)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


@handle_errors
def stop(
    what: Annotated[Optional[str], typer.Argument(
        metavar="WHAT", help="A pid (r1run's or its llama.cpp's), a port, or a model name as `r1run ps` shows it.",
        show_default=False)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Stop everything r1run is running.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Stop an r1run server, worker or chat (it stops its llama.cpp and cleans up; killed if it does not)."""
    home = Home.from_env()
    procs = running.alive(home)
    chosen = procs if all_ else _pick(procs, what)
    results = []
    for x in chosen:
        how = running.stop(x)
        results.append((x, how))
        if not json_:
            status(f"{how}: {x.record.kind} {x.record.name} (pid {x.record.pid})")
    if json_:
        print_json(json.dumps({"schema": "r1run.stop/1", "stopped": [
            {**_proc_json(x), "outcome": how} for x, how in results]}, indent=2))
    elif not chosen:
        status("nothing running")


def _pick(procs: list[running.Process], what: str | None) -> list[running.Process]:
    if what is None:
        raise BadInput("say what to stop: a pid, a port or a model name (or --all)", "r1run ps lists them")
    hits = []
    for x in procs:
        r = x.record
        numbers = {str(r.pid), *map(str, x.children)}
        port = r.url.rsplit(":", 1)[-1] if r.url else None
        names = {r.name.lower(), r.model.lower(), f"{r.model}:{r.quant}".lower()}
        if what in numbers or what.lstrip(":") == port or what.lower() in names:
            hits.append(x)
    if not hits:
        shown = ", ".join(f"{x.record.pid} ({x.record.name})" for x in procs) or "nothing"
        raise BadInput(f"no running r1run server, worker or chat matches {what!r}", f"running: {shown}")
    if len(hits) > 1:
        raise BadInput(f"{what!r} matches {len(hits)} processes: "
                       + ", ".join(f"{x.record.pid} ({x.record.kind})" for x in hits),
                       "stop one by its pid, or pass --all")
    return hits
