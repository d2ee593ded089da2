"""Tuned profiles: the fastest configuration `r1run bench --tune` found for one model on one machine.

Stored as R1RUN_HOME/profiles/<model sha256[:16]>-<machine fingerprint>.json (schema
`r1run.profile/1`, docs/bench.md). `chat` and `serve` apply a profile's settings to whatever the
user did not set; finding one never hashes a model unless a profile for a file of that size exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from r1run.bench import store
from r1run.bench.sweep import LLAMA_BATCH, LLAMA_UBATCH, Config
from r1run.fsutil import write_atomic
from r1run.llama.args import Placement, RunSpec

if TYPE_CHECKING:
    from r1run.run.config import Request

SCHEMA = "r1run.profile/1"


def profiles_dir(home) -> Path:
    return home.root / "profiles"


def path_for(home, model_sha256: str, fingerprint: str) -> Path:
    return profiles_dir(home) / f"{model_sha256[:16]}-{fingerprint}.json"


@dataclass(frozen=True)
class Profile:
    path: Path
    config: Config
    data: dict

    @property
    def created(self) -> str:
        return str(self.data.get("created", "?"))[:10]

    def apply(self, spec: RunSpec, req: Request) -> tuple[RunSpec, str]:
        """`spec` with the profile's settings wherever the user gave none (`req`: what the user said).

        Returns the new spec and a note naming what the profile changed.
        """
        c = self.config
        now = {"threads": spec.threads, "flash_attn": spec.flash_attn or "auto",
               "cache_type_k": spec.cache_type_k or "f16", "cache_type_v": spec.cache_type_v or "f16",
               "batch": spec.batch or LLAMA_BATCH, "ubatch": spec.ubatch or LLAMA_UBATCH}
        user_gave = {"threads": req.threads is not None, "cache_type_k": req.cache_type_k is not None,
                     "cache_type_v": req.cache_type_v is not None,
                     "flash_attn": req.flash_attn is not None or _in_extra(req.extra, "-fa", "--flash-attn"),
                     "batch": req.batch is not None or _in_extra(req.extra, "-b", "--batch-size"),
                     "ubatch": req.ubatch is not None or _in_extra(req.extra, "-ub", "--ubatch-size")}
        names = {"threads": "threads", "flash_attn": "flash attention", "cache_type_k": "K cache",
                 "cache_type_v": "V cache", "batch": "batch", "ubatch": "ubatch"}
        changes: dict = {}
        said: list[str] = []
        for knob, current in now.items():
            value = getattr(c, knob)
            if value is None or user_gave[knob] or value == current:
                continue
            changes[knob] = value
            said.append(f"{names[knob]} {value}")
        placed = c.gpu_layers is not None or c.n_cpu_moe is not None or c.overrides
        if req.gpu_layers is None and placed and self.data.get("placement_tuned"):
            overrides = tuple(o for o in (c.overrides or "").split(";") if o)
            placement = Placement(gpu_layers=c.gpu_layers, n_cpu_moe=c.n_cpu_moe, tensor_overrides=overrides)
            if placement != spec.placement:
                changes["placement"] = placement
                said.append(f"placement {placement.describe()}")
        what = "; ".join(said) if said else "same as r1run's defaults"
        note = f"tuned profile from `r1run bench --tune` on {self.created}: {what} (--no-profile to ignore)"
        return replace(spec, **changes), note


def _in_extra(extra, *flags: str) -> bool:
    return any(a in flags or any(a.startswith(f + "=") for f in flags) for a in extra)


def save(home, record: dict, model_sha256: str, fingerprint: str) -> Path:
    path = path_for(home, model_sha256, fingerprint)
    write_atomic(path, json.dumps(record, indent=2) + "\n")
    return path


def read(path: Path) -> Profile | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        return None
    known = {k: v for k, v in (data.get("settings") or {}).items() if k in Config.__dataclass_fields__}
    return Profile(path, Config(**known), data)


def find(home, files: list[Path], size: int, rpc: tuple[str, ...] = ()) -> Profile | None:
    """The profile for this model (its files, total size) on this machine, or None."""

    folder = profiles_dir(home)
    if not folder.is_dir():
        return None
    candidates = [p for p in (read(f) for f in sorted(folder.glob("*.json"))) if p is not None
                  and p.data.get("model", {}).get("bytes") == size]
    if not candidates:
        return None  # nothing tuned for a file of this size: no need to hash it
    fp = store.fingerprint(store.machine_identity(rpc))
    candidates = [p for p in candidates if p.data.get("machine", {}).get("fingerprint") == fp]
    if not candidates:
        return None
    sha = store.model_sha256(home, files)
    return next((p for p in candidates if p.data.get("model", {}).get("sha256") == sha), None)


def find_for_target(home, target, rpc: tuple[str, ...] = ()) -> Profile | None:
    """`find` for a resolved target (r1run.run.target.Target)."""
    shards = target.info.shards
    files = [Path(s.path) for s in shards]
    return find(home, files, sum(s.file_bytes for s in shards), rpc)
