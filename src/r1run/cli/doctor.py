"""`r1run doctor`."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from r1run import doctor as core
from r1run.cli.common import JsonOpt, LlamaBinOpt, handle_errors, out, print_json
from r1run.home import Home


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


_STYLE = {"ok": "green", "warn": "yellow", "fail": "red"}


@handle_errors
def doctor(llama_bin: LlamaBinOpt = None, json_: JsonOpt = False) -> None:
    """Check this machine: OS, CPU, RAM, GPUs, disk, build tools, llama.cpp and its capabilities."""


    report = core.check(Home.from_env(), llama_bin)
    if json_:
        print_json(json.dumps(report.to_dict(), indent=2))
    else:

        table = Table(title="r1run doctor")
        for col in ("check", "status", "detail", "hint"):
            table.add_column(col)
        for c in report.checks:
            table.add_row(c.name, f"[{_STYLE[c.status]}]{c.status}[/]", escape(c.detail), escape(c.hint or ""))
        out().print(table)
        used = next((i for i in report.llama if i["used"]), None)
        if used:
            caps = used["capabilities"]
            flags = [k for k in ("fit", "n_cpu_moe", "cpu_moe", "override_tensor", "rpc", "chat_single_turn",
                                 "list_devices", "jinja", "reasoning_format") if caps.get(k)]
            out().print(f"llama.cpp capabilities ({used['origin']}): one-shot via {caps['oneshot_role']} "
                        f"{' '.join(caps['oneshot_flags'])}; {', '.join(flags)}; RPC server: {caps['rpc_server']}",
                        highlight=False)
    if report.failed:
        raise typer.Exit(1)
