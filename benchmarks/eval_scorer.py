"""How long `r1run eval flappy` takes to score one game: the median over the test corpus, with its six runs
(three scripted sessions, three short looks) in parallel as the scorer does, and one at a time.

    .venv/bin/python benchmarks/eval_scorer.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from r1run.eval.extract import game_source
from r1run.eval.scorer import score_source

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "flappy"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    games = [(p.name, game_source(p.read_text(), is_python_file=p.suffix == ".py"))
             for p in sorted(CORPUS.iterdir()) if p.name != "forks_and_sleeps.py"]
    for label, parallel in (("parallel", None), ("one run at a time", 1)):
        times: list[float] = []
        for _ in range(args.repeat):
            for name, code in games:
                start = time.monotonic()
                card = score_source(code, parallel=parallel)
                times.append(time.monotonic() - start)
                print(f"  {label:>18} {name:<24} {card.total:5.2f}/10 {times[-1]:6.2f} s", flush=True)
        print(f"{label}: median {statistics.median(times):.2f} s per scored game over {len(times)} games "
              f"({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
