"""`r1run download`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from r1run.cli.common import JsonOpt, err, handle_errors, out, print_json, status, warn
from r1run.download import core
from r1run.download.core import Events
from r1run.home import Home, log_path_for
from r1run.units import size


def register(app: typer.Typer) -> None:
    app.command("download")(download)


@handle_errors
def download(
    model: Annotated[Optional[str], typer.Argument(
        help="Catalog model (see `r1run models`) [default: the catalog's default model].", show_default=False,
        metavar="MODEL")] = None,
    quant: Annotated[Optional[str], typer.Option(
        "--quant", "-q", metavar="Q", help="Quant to fetch, e.g. UD-IQ1_S [default: the model's default quant].",
        show_default=False)] = None,
    repo: Annotated[Optional[str], typer.Option(
        metavar="OWNER/NAME",
        help="Hub repository (owner/name): any repo with --include, or a mirror of a catalog model's.",
        show_default=False)] = None,
    include: Annotated[Optional[list[str]], typer.Option(
        "--include", metavar="PATTERN",
        help="Glob of repository files to fetch, as in `hf download --include` (repeatable).",
        show_default=False)] = None,
    dir_: Annotated[Optional[Path], typer.Option(
        "--dir", metavar="PATH", help="Folder for the repository's files [default: <R1RUN_HOME>/models/OWNER/NAME].",
        show_default=False)] = None,
    revision: Annotated[str, typer.Option(metavar="REV", help="Branch, tag or commit of the repository.")] = "main",
    token: Annotated[Optional[str], typer.Option(
        metavar="TOKEN", help="Hub token [default: HF_TOKEN or your `hf auth login`]; never printed or logged.",
        show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show the files, sizes and disk check; fetch nothing.")] = False,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Re-hash the files on disk instead of trusting earlier checks.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Download even when the disk looks too full.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Download a model's files from the Hugging Face hub, resuming and verifying every byte (sha256)."""


    home = Home.from_env()
    request = core.DownloadRequest(
        model=model, quant=quant, repo=repo, include=tuple(include or ()), dir=dir_, revision=revision,
        token=token or None, verify=verify, force=force,
    )
    log_path = _start_log(home)
    with DownloadProgress() as progress:
        if dry_run:
            _render_plan(core.plan(request, home, progress.events()), json_)
            return
        result = core.download(request, home, progress.events())
    _render_result(result, json_)
    status(f"log: {log_path}")


def _start_log(home) -> Path:
    """Send r1run's and huggingface_hub's log records to a file instead of the terminal."""

    path = log_path_for(home.ensure(home.logs), "download")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("r1run", "huggingface_hub"):
        logger = logging.getLogger(name)
        # huggingface_hub prints its retry warnings to stderr by itself; r1run reports retries its own way.
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO)
    return path


class DownloadProgress:
    """Per-file and overall bars on stderr (only on a terminal), status lines always."""

    def __init__(self) -> None:
        self.console = err()
        self.live = self.console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}", table_column=None), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), console=self.console, transient=True,
            disable=not self.live,
        )
        self.overall: TaskID | None = None
        self.tasks: dict[tuple[str, str], TaskID] = {}
        self.sizes: dict[str, int] = {}

    def __enter__(self) -> "DownloadProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def events(self):
        return Events(on_bytes=self.on_bytes, on_check=self.on_check, on_retry=self.on_retry,
                      on_status=self.on_status, on_plan=self.on_plan, on_wait=self.on_wait,
                      on_file_done=self.on_file_done)

    def _task(self, kind: str, path: str, total: int, completed: int = 0) -> TaskID:
        key = (kind, path)
        if key not in self.tasks:
            name = Path(path).name
            label = f"{name}" if kind == "get" else f"checking {name}"
            self.tasks[key] = self.progress.add_task(label, total=total, completed=completed)
        return self.tasks[key]

    def on_plan(self, plan) -> None:
        self.sizes = {f.remote.path: f.remote.size for f in plan.files}
        t = plan.target
        have = plan.total_bytes - plan.need_bytes
        todo = f"{size(plan.need_bytes)} to fetch" if plan.need_bytes else "nothing to fetch"
        status(f"{t.model} {t.quant}: {len(plan.files)} file(s), {size(plan.total_bytes)} from "
               f"{t.repo}@{plan.snapshot.commit[:12] or t.revision}; {todo}, " + (
               f"used in place in {plan.dir}" if plan.adopted else f"{size(plan.free_bytes)} free in {t.dir}"))
        if self.live:
            self.overall = self.progress.add_task("total", total=plan.total_bytes, completed=have)
            for f in plan.files:
                if f.need:
                    self._task("get", f.remote.path, f.remote.size, f.have)

    def on_bytes(self, path: str, n: int) -> None:
        if not self.live:
            return
        self.progress.advance(self._task("get", path, self.sizes.get(path, 0)), n)
        if self.overall is not None:
            self.progress.advance(self.overall, n)

    def on_check(self, path: str, n: int) -> None:
        if self.live:
            self.progress.advance(self._task("check", path, self.sizes.get(path, 0)), n)

    def on_retry(self, path: str, failures: int, reason: str, delay: float) -> None:
        self._print(f"[yellow]retry[/yellow] {Path(path).name}: {reason}; again in {delay:.1f} s (#{failures})")

    def on_status(self, msg: str) -> None:
        self._print(f"[dim]r1run:[/dim] {msg}")

    def on_wait(self, holder: str) -> None:
        self._print(f"[dim]r1run:[/dim] another download into this folder is running ({holder}); waiting for it")

    def on_file_done(self, outcome) -> None:
        for kind in ("get", "check"):
            task = self.tasks.pop((kind, outcome.path), None)
            if task is not None:
                self.progress.remove_task(task)
        words = {"already-verified": "already verified", "verified-on-disk": "verified (was on disk)",
                 "downloaded": "downloaded and verified", "resumed": "resumed and verified",
                 "from-pypi": "extracted from PyPI and verified"}[outcome.outcome]
        extra = f", resumed at {size(outcome.resumed_from)}" if outcome.resumed_from else ""
        self._print(f"[green]ok[/green] {outcome.path}: {words}{extra}")

    def _print(self, text: str) -> None:
        self.progress.console.print(text, highlight=False)


def _render_plan(plan, json_: bool) -> None:
    t = plan.target
    if json_:
        print_json(json.dumps({
            "schema": "r1run.download/2", "dry_run": True, "model": t.model, "quant": t.quant, "repo": t.repo,
            "revision": t.revision, "commit": plan.snapshot.commit or None, "dir": str(plan.dir),
            "in_hf_cache": plan.adopted is not None,
            "offline": plan.offline, "total_bytes": plan.total_bytes, "need_bytes": plan.need_bytes,
            "free_bytes": plan.free_bytes, "margin_bytes": plan.margin, "disk_ok": plan.disk_ok,
            "files": [{"path": f.remote.path, "local_path": str(f.dest), "size_bytes": f.remote.size,
                       "sha256": f.remote.sha256, "state": f.state, "have_bytes": f.have} for f in plan.files],
        }, indent=2))
        return

    table = Table(title=f"{t.model} {t.quant} from {t.repo}@{(plan.snapshot.commit or t.revision)[:12]}",
                  title_justify="left")
    for col in ("file", "size", "on disk"):
        table.add_column(col, overflow="fold")
    for f in plan.files:
        state = {"partial": f"partial ({size(f.have)})", "present": "present, not verified"}.get(f.state, f.state)
        table.add_row(f.remote.path, size(f.remote.size) if f.remote.size else "?", state)
    out().print(table)
    if plan.adopted is not None:
        out().print(f"found in the Hugging Face cache: {plan.dir} (used in place after verification)",
                    highlight=False)
    out().print(f"total {size(plan.total_bytes)}; to fetch {size(plan.need_bytes)}; free in {t.dir}: "
                f"{size(plan.free_bytes)} (needs {size(plan.need_bytes + plan.margin)} with margin)", highlight=False)
    if not plan.disk_ok:
        warn("not enough free space: the download would be refused (--force overrides)")


def _render_result(result, json_: bool) -> None:

    m = result.manifest
    if json_:
        recs = {r.path: r for r in m.files}
        print_json(json.dumps({
            "schema": "r1run.download/2", "dry_run": False, "model": m.model, "quant": m.quant, "repo": m.repo,
            "revision": m.revision,
            "commit": m.commit, "source": m.source, "dir": m.dir, "manifest_path": str(result.manifest_path),
            "complete": m.complete, "total_bytes": m.total_bytes, "fetched_bytes": result.fetched_bytes,
            "took_s": round(result.seconds, 3),
            "files": [{"path": f.path, "local_path": f.local_path, "size_bytes": f.size,
                       "sha256": recs[f.path].sha256, "verified_at": recs[f.path].verified_at, "outcome": f.outcome,
                       "fetched_bytes": f.fetched, "resumed_from_bytes": f.resumed_from, "retries": f.retries}
                      for f in result.files],
        }, indent=2))
        return
    out().print(f"{m.model} {m.quant}: {len(m.files)} file(s), {size(m.total_bytes)}, all verified (sha256) "
                f"in {m.dir}", highlight=False)
    out().print(f"fetched {size(result.fetched_bytes)} in {result.seconds:.1f} s; manifest {result.manifest_path}",
                highlight=False)
