"""Renderers shared by commands: turn r1run's data into rich tables."""

from __future__ import annotations

from rich.table import Table


def _f(value, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def tps_table(summaries, title: str = "speed"):
    """Load time, prompt tokens and t/s, generated tokens and t/s, one row per run."""

    table = Table(title=title)
    for col in ("run", "load ms", "prompt tokens", "prompt t/s", "generated", "gen t/s", "offloaded"):
        table.add_column(col, justify="right")
    for s in summaries:
        prompt, ev = s.prompt, s.gen
        table.add_row(
            str(s.index), _f(s.load_ms, "{:.0f}"),
            _f(prompt.tokens if prompt else None, "{}"), _f(prompt.tps if prompt else None),
            _f(ev.tokens if ev else None, "{}"), _f(ev.tps if ev else None),
            f"{s.offload.layers}/{s.offload.total}" if s.offload else "-",
        )
    return table
