"""Rendering for `r1run bench`: progress on stderr; the table, bar chart, CSV, Markdown or JSON on stdout."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from rich import box
from rich.status import Status
from rich.table import Table
from rich.text import Text

from r1run.bench import core, sweep
from r1run.cli.common import err, out, print_json, status, warn
from r1run.units import size

BAR = 10
SHORT = {"threads": "t", "gpu_layers": "ngl", "n_cpu_moe": "ncmoe", "overrides": "ot", "tensor_split": "ts",
         "flash_attn": "fa", "cache_type_k": "ctk", "cache_type_v": "ctv", "batch": "b", "ubatch": "ub"}


class Progress:
    """A spinner on a terminal, one line per llama-bench run otherwise; both on stderr."""

    def __init__(self) -> None:
        self._status: Status | None = None
        self._seen: set[tuple[str, int, object]] = set()

    def __enter__(self) -> "Progress":
        if err().is_terminal:
            self._status = err().status("starting llama-bench...")
            self._status.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)

    def update(self, run: int, runs: int, p, prefix: str = "") -> None:
        text = f"{prefix}llama-bench run {run}/{runs}, test {p.test}/{p.total}: {p.what}"
        if self._status is not None:
            self._status.update(text)
        elif p.what == "starting" and (prefix, run, p.test) not in self._seen and \
                (p.test in (1, p.total) or p.test % max(1, p.total // 10) == 0):
            self._seen.add((prefix, run, p.test))
            status(f"{prefix}llama-bench run {run}/{runs}, test {p.test}/{p.total}")

    def say(self, msg: str) -> None:
        """A step that is not a llama-bench test (this CPU's arithmetic probe): the spinner's text, else a line."""
        if self._status is not None:
            self._status.update(msg)
        else:
            status(msg)

    def update_step(self, knob: str, run: int, runs: int, p) -> None:
        self.update(run, runs, p, prefix=f"tuning {knob}: ")


def show_engines(c) -> None:
    """`r1run bench --engine A,B`: medians over the rounds, and the faster engine's lead."""
    table = Table(title=f"engines, each in r1run's default (pp{c.n_prompt} / tg{c.n_gen}, {c.rounds} rounds)")
    for col in ("engine", "prompt t/s", "gen t/s", "perplexity", "llama-bench flags"):
        table.add_column(col)
    for name in c.setups:
        p, g, ppl = c.median("prompt", name), c.median("gen", name), c.perplexity.get(name)
        table.add_row(name + (" *" if name == c.faster else ""), "-" if p is None else f"{p:,.1f}",
                      "-" if g is None else f"{g:,.1f}", "-" if ppl is None else f"{ppl.value:.4g}",
                      c.configs[name].describe())
    out().print(table)
    gen, prompt = c.ratio("gen"), c.ratio("prompt")
    if gen and prompt:
        out().print(f"{c.faster}: {gen:.2f}x generation, {prompt:.2f}x prompt")
    if c.agree is False:
        out().print("the engines disagree: their perplexities on r1run's text differ by more than 1%, so one of "
                    "them computes something else on this model; `--engine auto` keeps llama.cpp for it")
    elif c.agree:
        out().print("same function: perplexities on r1run's text within 1% of each other")
    else:
        out().print("perplexity not compared (a build without llama-imatrix)")


def show_setup(setup, invs) -> None:
    if setup.target.chosen_because:
        status(f"model: {setup.target.chosen_because}")
    status(f"model: {setup.target.name} ({setup.target.path}); {setup.install.engine}: {setup.install.origin}")
    if setup.engine_note:
        status(setup.engine_note)
    status(f"r1run default (what `r1run chat` runs): {setup.default.describe()}")
    if invs is not None:
        n = sum(len(i.configs()) for i in invs)
        status(f"{n} configuration(s) in {len(invs)} llama-bench run(s)")


def _fmt(stat) -> str:
    return "-" if stat is None else f"{stat.median:,.1f} ±{stat.stddev:,.1f}"


def _varying(rows) -> list[str]:
    """The knobs that differ between r1run-configured rows (llama-bench's defaults row is told apart by its label)."""

    ours = [r for r in rows if core.LLAMA_LABEL not in r.labels]
    return [k for k in SHORT if len({getattr(r.config, k) for r in ours}) > 1]


def _settings(row, knobs: list[str]) -> str:
    if core.LLAMA_LABEL in row.labels and row.config.to_dict() == {}:
        return "(none)"
    return " ".join(f"{SHORT[k]}={getattr(row.config, k)}" for k in knobs) or "-"


def show_report(report, fmt: str, saved: Path | None = None) -> None:
    if fmt == "json":
        rec = core.to_record(report)
        if saved is not None:
            rec["saved_to"] = str(saved)
        print_json(json.dumps(rec, indent=2))
        return
    if fmt == "csv":
        out().file.write(to_csv(report))
        return
    if fmt == "md":
        out().file.write(to_md(report))
        return
    out().print(table(report))
    _summary(report)


def _noisy(report, i: int) -> bool:
    """Row i is not the fastest but within noise of it."""
    if report.fastest is None or i == report.fastest:
        return False
    row, best = report.rows[i], report.rows[report.fastest]
    return row.gen is not None and best.gen is not None and row.gen.within_noise(best.gen)


def table(report, title: str | None = None):
    """Fits 80 columns: numbers never wrap; labels and settings wrap only at spaces."""
    rows = report.rows
    knobs = _varying(rows)
    common = {k: v for k, v in rows[0].config.to_dict().items() if k not in knobs} if rows else {}
    top = max((r.gen.median for r in rows if r.gen), default=0.0)
    t = Table(title=title or f"llama-bench pp{report.n_prompt} / tg{report.n_gen}, median of {report.repetitions}",
              caption=("all rows: " + " ".join(f"{SHORT[k]}={v}" for k, v in common.items())) if common else None,
              box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    labels = [("★ " if i == report.fastest else "≈ " if _noisy(report, i) else "") + ", ".join(r.labels)
              for i, r in enumerate(rows)]
    settings = [_settings(r, knobs) for r in rows]
    t.add_column("", min_width=_longest_word(labels))
    t.add_column("settings", min_width=_longest_word(settings))
    t.add_column("prompt t/s", justify="right", no_wrap=True)
    t.add_column("gen t/s", justify="right", no_wrap=True)
    t.add_column("bound", justify="right", no_wrap=True)
    t.add_column("gen", no_wrap=True)
    for i, row in enumerate(rows):
        pct = report.bounds[i].percent(row.gen.median if row.gen else None)
        width = int(round(BAR * row.gen.median / top)) if row.gen and top else 0
        bar = Text("█" * width, style="green" if i == report.fastest else "cyan")
        t.add_row(labels[i], settings[i], _fmt(row.prompt), _fmt(row.gen), "-" if pct is None else f"{pct:.0f}%",
                  bar, style="bold" if i == report.fastest else None)
    return t


def above_bound(report) -> list[int]:
    """The rows faster than their bandwidth bound: the bound's byte count or bandwidth is off for them."""
    return [i for i, row in enumerate(report.rows)
            if (pct := report.bounds[i].percent(row.gen.median if row.gen else None)) is not None and pct > 100]


def _longest_word(cells: list[str]) -> int:
    return max((len(w) for c in cells for w in c.split()), default=1)


def _summary(report) -> None:
    s = report.setup
    if report.fastest is not None:
        best = report.rows[report.fastest]
        say(f"fastest: {best.config.describe()} at {best.gen.median:.2f} ±{best.gen.stddev:.2f} t/s generation")
        close = [i for i in range(len(report.rows)) if _noisy(report, i)]
        if close:
            say(f"≈ {len(close)} other row(s) within noise of it (medians closer than their spreads): rerun with "
                "more repetitions (-r) to tell them apart")
        default = report.labelled(core.DEFAULT_LABEL)
        if default is not None and default.gen is not None and default is not best:
            d = default.gen
            if d.within_noise(best.gen):
                say(f"r1run default: {d.median:.2f} ±{d.stddev:.2f} t/s, within noise of the fastest")
            else:
                say(f"r1run default: {d.median:.2f} ±{d.stddev:.2f} t/s = {100 * d.median / best.gen.median:.0f}% of "
                    "the fastest")
        elif default is best:
            say("r1run default: the fastest")
    bounds = {b.tps for b in report.bounds if b.tps}
    if bounds:
        b = report.bounds[report.fastest or 0]
        reads = ", ".join(f"{k} {size(v)}" for k, v in b.bytes_per_token.items() if v)
        say(f"bandwidth bound: {b.tps:,.1f} t/s ({reads} per token; RAM {s.machine.cpu_bandwidth / 1e9:.1f} GB/s, "
            f"{s.bandwidth_source})")
        if above_bound(report):
            say("some rows run above 100% of the bound: the bytes a token reads are fewer than r1run counts "
                "(they fit in the CPU's caches, or the engine reads less), or the bandwidth is set too low")
    status(f"llama-bench logs: {report.logs[0].parent}" if report.logs else "no logs")


def say(text: str) -> None:
    """A result line on stdout, wrapped at spaces to the terminal (80 columns when piped)."""
    out().print(text, highlight=False, soft_wrap=False)


def _csv_rows(report) -> tuple[list[str], list[list]]:
    header = ["labels", *sweep.KNOBS, "prompt_tps", "prompt_stddev", "gen_tps", "gen_stddev", "gen_min", "gen_max",
              "bound_tps", "bound_percent", "fastest"]
    rec = core.to_record(report)
    body = []
    for r in rec["rows"]:
        c = r["config"]
        p, g = r["prompt"] or {}, r["gen"] or {}
        body.append(["; ".join(r["labels"]), *[c.get(k, "") for k in sweep.KNOBS], p.get("median", ""),
                     p.get("stddev", ""), g.get("median", ""), g.get("stddev", ""), g.get("min", ""), g.get("max", ""),
                     r["bound_tps"] or "", r["bound_percent"] or "", r["fastest"]])
    return header, body


def to_csv(report) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header, body = _csv_rows(report)
    w.writerow(header)
    w.writerows(body)
    return buf.getvalue()


def to_md(report) -> str:
    header, body = _csv_rows(report)
    keep = [i for i, h in enumerate(header) if any(str(r[i]) not in ("", "None") for r in body)]
    lines = ["| " + " | ".join(header[i] for i in keep) + " |", "|" + "|".join(" --- " for _ in keep) + "|"]
    lines += ["| " + " | ".join(str(r[i]) for i in keep) + " |" for r in body]
    return "\n".join(lines) + "\n"


def show_tune(result, record: dict, path: Path, fmt: str) -> None:
    if fmt == "json":
        print_json(json.dumps({"profile": record, "profile_path": str(path),
                               "bench": core.to_record(result.report, kind="tune")}, indent=2))
        return
    if fmt in ("csv", "md"):
        out().file.write(to_csv(result.report) if fmt == "csv" else to_md(result.report))
        status(f"profile saved: {path}")
        return
    steps = Table(title="tuning, one knob at a time", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for col in ("knob", "tried", "chosen", "why"):
        steps.add_column(col)
    for st in result.steps:
        steps.add_row(st.knob, ", ".join(str(v) for v in st.tried), str(st.chosen), st.reason)
        for f in st.failed:
            warn(f"tuning {st.knob}: {f}")
    out().print(steps)
    out().print(table(result.report, title="every configuration measured"))
    b, s = result.best_row, result.start_row
    if b is not None and b.gen is not None:
        gain = f" ({100 * (b.gen.median / s.gen.median - 1):+.0f}% vs r1run's default)" if s and s.gen else ""
        out().print(f"profile: {result.best.describe()}: {b.gen.median:.2f} t/s generation{gain}", highlight=False)
    out().print(f"saved: {path} (chat and serve use it for this model on this machine; --no-profile to ignore)",
                highlight=False)


def show_history(records: list[dict]) -> None:
    t = Table(title="saved benchmark results", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for col in ("when", "model", "build", "rows", "fastest", "gen t/s", "default", "change"):
        t.add_column(col, justify="right" if col in ("rows", "gen t/s", "default", "change") else "left",
                     no_wrap=col in ("model", "build"), min_width=16 if col == "model" else None)
    previous: dict[tuple, float] = {}
    for rec in records:
        rows = rec.get("rows") or []
        fi = rec.get("fastest")
        best = rows[fi] if isinstance(fi, int) and 0 <= fi < len(rows) else None
        best_gen = (best or {}).get("gen") or {}
        default = next((r for r in rows if "r1run default" in r.get("labels", [])), None)
        dgen = ((default or {}).get("gen") or {}).get("median")
        key = ((rec.get("model") or {}).get("sha256"), (rec.get("machine") or {}).get("fingerprint"),
               json.dumps(rec.get("test"), sort_keys=True))
        value = best_gen.get("median")
        change = "-"
        if value and key in previous:
            change = f"{100 * (value / previous[key] - 1):+.1f}%"
        if value:
            previous[key] = value
        base = rec.get("default") or {}
        cfg = " ".join(f"{SHORT.get(k, k)}={v}" for k, v in (best or {}).get("config", {}).items() if base.get(k) != v)
        build = str((rec.get("llama_cpp") or {}).get("build") or "?").split(" ")[0]
        when = str(rec.get("started_at") or "?")[5:16].replace("T", " ")
        t.add_row(when, (rec.get("model") or {}).get("name") or "?", build,
                  str(len(rows)), cfg or "(default)", f"{value:.2f}" if value else "-", f"{dgen:.2f}" if dgen else "-",
                  change)
    out().print(t)
