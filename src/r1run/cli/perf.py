"""`r1run perf`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from r1run.cli.common import JsonOpt, err, handle_errors, out, print_json, report_error
from r1run.errors import BadInput, ExitCode
from r1run.perf import export, parse

if TYPE_CHECKING:
    from r1run.perf import RunSummary


def register(app: typer.Typer) -> None:
    app.command("perf")(perf)


@handle_errors
def perf(
    logs: Annotated[list[Path], typer.Argument(
        metavar="LOG", help="llama.cpp output: saved stderr, llama-bench results, server responses; - for stdin.",
                                               show_default=False)],
    json_: JsonOpt = False,
    csv_: Annotated[bool, typer.Option("--csv", help="Print one CSV row per run.")] = False,
) -> None:
    """Show how fast llama.cpp ran, from its output: prompt and generation speed, load time, offload, memory."""

    if json_ and csv_:
        raise BadInput("--json and --csv cannot be used together", "pick one output format")
    report = parse.read_logs(logs)
    if report.problems and not report.runs:
        for problem in report.problems[1:]:
            report_error(problem.error)
        raise report.problems[0].error
    for problem in report.problems:
        report_error(problem.error)

    if json_:
        print_json(export.to_json(report.runs))
    elif csv_:
        out().file.write(export.to_csv(report.runs))
    elif report.measured:
        _render(report.runs)

    if not report.measured:
        failure = parse.nothing_measured(report.runs)
        if json_:  # the runs, failed ones included, are on stdout already: one JSON document, the error on stderr
            report_error(failure)
            raise typer.Exit(int(failure.exit_code))
        raise failure
    if report.problems:
        raise typer.Exit(int(ExitCode.USAGE))


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _render(runs: list[RunSummary]) -> None:
    """One table per file, one row per run; failed runs also get a line on stderr saying why."""

    sources = list(dict.fromkeys(r.source for r in runs))
    for source in sources:
        rows = []
        for r in (r for r in runs if r.source == source):
            tokens = "/".join(str(p.tokens) if p and p.tokens is not None else "-" for p in (r.prompt, r.gen))
            status = {"ok": "[green]ok[/green]", "failed": "[red]failed[/red]"}.get(r.status,
                                                                                    "[yellow]partial[/yellow]")
            rows.append([str(r.index), escape((r.program or "?").removeprefix("llama-")), status,
                         _fmt(r.prompt.tps if r.prompt else None), _fmt(r.gen.tps if r.gen else None), tokens,
                         _fmt(r.load_ms / 1000 if r.load_ms is not None else None),
                         f"{r.offload.layers}/{r.offload.total}" if r.offload else "-",
                         str(r.threads.n_threads) if r.threads else "-", escape(_note(r))])
        headers = ["#", "program", "status", "prompt\nt/s", "eval\nt/s", "tokens\np/e", "load\ns", "GPU\nlayers",
                   "thr", "note"]
        widths = [max([len(h) for h in header.split("\n")] + [len(Text.from_markup(row[i]).plain) for row in rows])
                  for i, header in enumerate(headers)]
        # The figures keep their width; the note takes what is left of the terminal and is cut with an
        # ellipsis (left to itself, rich would squeeze whole columns of figures out of sight).
        spare = out().width - sum(widths[:-1]) - 3 * (len(headers) - 1)  # padding 2 + divider 1 per gap
        widths[-1] = min(widths[-1], spare)
        if widths[-1] < 6:
            headers, widths, rows = headers[:-1], widths[:-1], [row[:-1] for row in rows]
        table = Table(title=escape(source), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                      show_edge=False)
        for i, header in enumerate(headers):
            table.add_column(header, justify="left" if i in (1, 2, 9) else "right", no_wrap=True)
        for row in rows:
            cells: list[str | Text] = list(row)
            if len(headers) == 10:
                note = Text.from_markup(row[-1])
                note.truncate(widths[-1], overflow="ellipsis")
                cells[-1] = note
            table.add_row(*cells)
        out().print(table, soft_wrap=False)
    for r in runs:
        if r.status != "ok":
            why = r.oom.describe() if r.oom else (r.error or "stopped before printing timings")
            err().print(f"[dim]r1run:[/dim] {escape(Path(r.source).name)}:{r.index} {r.status}: {escape(why)}",
                        highlight=False)


def _note(r: RunSummary) -> str:
    if r.bench is not None:
        spread = f" ± {r.bench.stddev_ts:.2f}" if r.bench.stddev_ts is not None else ""
        return f"{r.bench.test}{spread}"
    if r.oom is not None:
        return r.oom.describe()
    if r.error:
        return r.error[:80]
    if r.format == "cli_timings":
        return "speeds only (llama-cli)"
    return ""
