"""Eval results as stable JSON, saved under R1RUN_HOME/evals so runs compare over time."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from r1run.eval.generate import Generated
from r1run.eval.scorer import Scorecard
from r1run.fsutil import write_atomic

SCHEMA = "r1run.eval.flappy/1"


def card_json(card: Scorecard) -> dict:
    return {"total": card.total, "took_s": round(card.seconds, 2),
            "items": [{"name": i.name, "score": i.score, "evidence": i.evidence} for i in card.items],
            "runs": card.runs}


@dataclass(frozen=True)
class Game:
    generated: Generated
    card: Scorecard
    answer_path: Path


@dataclass(frozen=True)
class QuantResult:
    model: str
    key: str
    quant: str
    published: float | None
    settings: dict
    games: list[Game]

    @property
    def pass_at_n(self) -> float:
        """Unsloth's pass@3: the mean of the seeds' totals."""
        return statistics.fmean(g.card.total for g in self.games) if self.games else 0.0

    def to_json(self) -> dict:
        return {"schema": SCHEMA, "model": self.model, "key": self.key, "quant": self.quant,
                "published": self.published, "settings": self.settings, "pass_at_n": round(self.pass_at_n, 3),
                "games": [{"seed": g.generated.seed, "answer": str(g.answer_path), "gen_tps": g.generated.gen_tps,
                           "tokens": g.generated.tokens, "gen_s": round(g.generated.seconds, 1),
                           "log": str(g.generated.log_path) if g.generated.log_path else None, **card_json(g.card)}
                          for g in self.games]}


def label(name: str, quant: str) -> str:
    """A model and quant in a few words: "DeepSeek-R1 UD-IQ1_S"; a file's name alone when it names the quant."""
    return name if not quant or quant in name else f"{name} {quant}"


def stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def answer_path(evals: Path, run_stamp: str, name: str, seed: int) -> Path:
    return evals / "answers" / f"flappy-{run_stamp}" / f"{_safe(name)}-seed{seed}.md"


def save_answer(path: Path, text: str) -> Path:
    write_atomic(path, text)
    return path


def save(evals: Path, run_stamp: str, results: list[QuantResult]) -> Path:
    """One JSON file per eval run: flappy-<time>.json, a list of per-quant results."""
    path = evals / f"flappy-{run_stamp}.json"
    created = datetime.strptime(run_stamp, "%Y%m%dT%H%M%SZ").strftime("%Y-%m-%dT%H:%M:%SZ")
    write_atomic(path, json.dumps({"schema": SCHEMA, "created_at": created,
                                   "results": [r.to_json() for r in results]}, indent=2))
    return path


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
