"""This machine's correction to the expected speed, from its own saved `r1run bench --save` results.

Every saved row carries what r1run expected for it before any calibration (`expected_tps`, from
`planner.speed` and the shipped parameters) beside what llama-bench measured. On this machine (same
fingerprint as the bench that saved them) the median of measured / expected is the factor `plan`
applies, and says so: stored (the saved results), shown (`plan` names the factor and how many rows it
rests on), reversible (`plan --no-calibration`, or delete the rows from `results/bench.jsonl`).
"""

from __future__ import annotations

import math
import statistics

from r1run.bench import store
from r1run.errors import R1runError
from r1run.planner.speed import Calibration


def ratios(records: list[dict], fingerprint: str) -> tuple[list[float], list[str]]:
    """Measured over expected for each saved row of this machine that has both (pure)."""
    out, models = [], []
    for rec in records:
        if (rec.get("machine") or {}).get("fingerprint") != fingerprint:
            continue
        for row in rec.get("rows") or []:
            gen, expected = (row.get("gen") or {}).get("median"), row.get("expected_tps")
            if isinstance(gen, (int, float)) and isinstance(expected, (int, float)) and gen > 0 and expected > 0:
                out.append(gen / expected)
                name = (rec.get("model") or {}).get("name") or "?"
                if name not in models:
                    models.append(name)
    return out, models


def for_this_machine(home, rpc: tuple[str, ...] = ()) -> Calibration | None:
    """The factor for this machine, or None when it has no saved rows to rest on (or they cannot be read)."""
    try:
        records = store.load(home)
    except (R1runError, OSError):
        return None
    if not records:
        return None
    found, models = ratios(records, store.fingerprint(store.machine_identity(rpc)))
    if not found:
        return None
    factor = math.exp(statistics.median(math.log(r) for r in found))
    return Calibration(factor, len(found), tuple(models))
