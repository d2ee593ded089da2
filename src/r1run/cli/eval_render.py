"""Tables for `r1run eval flappy`."""

from __future__ import annotations

from rich import box
from rich.markup import escape
from rich.table import Table

from r1run.eval.flappy import ITEMS
from r1run.eval.results import QuantResult, label
from r1run.eval.scorer import Scorecard


def game_table(card: Scorecard, *, title: str) -> Table:
    """One game: each item, its score and what was observed."""
    table = Table(title=title, box=box.SIMPLE_HEAD)
    table.add_column("item")
    table.add_column("score", justify="right")
    table.add_column("evidence", overflow="fold")
    for item in card.items:
        table.add_row(item.name, f"{item.score:g}", escape(item.evidence))
    table.add_row("total", f"{card.total:g}", "")
    return table


def quant_table(r: QuantResult) -> Table:
    """One quant: the ten items per seed, each seed's total, pass@N beside Unsloth's published score."""
    published = f"; Unsloth published {r.published:g}" if r.published is not None else ""
    table = Table(title=f"{label(r.model, r.quant)}: pass@{len(r.games)} {r.pass_at_n:.2f}/10{published}",
                  box=box.SIMPLE_HEAD)
    table.add_column("item")
    for g in r.games:
        table.add_column(f"seed {g.generated.seed}", justify="right")
    for n, name in enumerate(ITEMS):
        table.add_row(name, *(f"{g.card.items[n].score:g}" for g in r.games))
    table.add_row("total", *(f"{g.card.total:g}" for g in r.games), style="bold")
    table.add_row("gen t/s", *(f"{g.generated.gen_tps:.1f}" if g.generated.gen_tps else "?" for g in r.games))
    return table
