"""Saved benchmark results (`--save`, `--history`), model hashes and the machine fingerprint.

Results are JSON lines in R1RUN_HOME/results/bench.jsonl, one line per `r1run bench --save`
(schema `r1run.bench/2`, docs/bench.md). A model's sha256 is computed once and cached by
path + size + mtime in R1RUN_HOME/cache/sha256.json: hashing 130 GB takes minutes.
"""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import datetime, timezone
from pathlib import Path

from r1run import hardware
from r1run.errors import BadInput
from r1run.fsutil import locked, write_atomic

SCHEMA = "r1run.bench/2"
OLD_SCHEMA = "r1run.bench/1"  # read and upgraded: `time` (local), `seconds`, `machine.ram_gib`
CHUNK = 8 << 20


def _sha_cache(home) -> Path:
    return home.cache / "sha256.json"


def _key(path: Path) -> tuple[str, str]:
    st = path.stat()
    return str(path.resolve()), f"{st.st_size}:{st.st_mtime_ns}"


def cached_sha256(home, path: Path) -> str | None:
    """The cached hash of a file, or None when it was never hashed (or changed since)."""
    name, stamp = _key(path)
    try:
        entry = json.loads(_sha_cache(home).read_text()).get(name)
    except (OSError, ValueError):
        return None
    return entry["sha256"] if isinstance(entry, dict) and entry.get("stamp") == stamp else None


def file_sha256(home, path: Path) -> str:
    """sha256 of one file, from the cache when its size and mtime are unchanged."""
    hit = cached_sha256(home, path)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    digest = h.hexdigest()
    name, stamp = _key(path)
    cache = _sha_cache(home)
    with locked(cache.with_suffix(".lock")):
        try:
            data = json.loads(cache.read_text())
        except (OSError, ValueError):
            data = {}
        data[name] = {"stamp": stamp, "sha256": digest}
        write_atomic(cache, json.dumps(data, indent=1, sort_keys=True))
    return digest


def model_sha256(home, files: list[Path]) -> str:
    """One file: its sha256. A split model: sha256 of its shards' `sha256  name` lines, in order."""
    if len(files) == 1:
        return file_sha256(home, files[0])
    lines = "".join(f"{file_sha256(home, f)}  {f.name}\n" for f in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def machine_identity(rpc: tuple[str, ...] = ()) -> dict:
    """What makes a tuning result carry over: CPU, cores, RAM size, GPUs, RPC workers (not free memory)."""

    m = hardware.detect()
    return {
        "os": m.os, "arch": m.arch, "cpu": m.cpu.model, "physical_cores": m.cpu.physical_cores,
        "logical_cores": m.cpu.logical_cores, "ram_bytes": round(m.ram_total / 2**30) * 2**30,  # whole GiB
        "gpus": [f"{g.name} ({round(g.total_bytes / 2**30)} GiB)" for g in m.gpus if g.vendor != "rpc"],
        "rpc": sorted(rpc), "node": platform.node(),
    }


def fingerprint(identity: dict) -> str:
    keep = {k: identity[k] for k in ("os", "arch", "cpu", "physical_cores", "logical_cores", "gpus", "rpc")}
    keep["ram_gib"] = identity["ram_bytes"] // 2**30 if "ram_bytes" in identity else identity["ram_gib"]  # as in /1
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


# --- results ------------------------------------------------------------------------------------

def results_file(home) -> Path:
    return home.results / "bench.jsonl"


def save(home, record: dict) -> Path:
    path = results_file(home)
    home.ensure(home.results)
    with locked(path.with_suffix(".lock")):
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=False) + "\n")
    return path


def load(home) -> list[dict]:
    """Every saved result, oldest first; lines that are not r1run.bench records are skipped."""
    path = results_file(home)
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            raise BadInput(f"{path}:{n} is not JSON", "fix or delete that line") from None
        if isinstance(rec, dict) and rec.get("schema") == SCHEMA:
            out.append(rec)
        elif isinstance(rec, dict) and rec.get("schema") == OLD_SCHEMA:
            out.append(_upgrade(rec))
    return out


def _upgrade(rec: dict) -> dict:
    """A saved r1run.bench/1 record in version 2's names (UTC start time, seconds, RAM in bytes)."""
    started = rec.pop("time", None)
    try:
        started = datetime.strptime(started, "%Y-%m-%dT%H:%M:%S%z").astimezone(timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        started = None
    machine = dict(rec.get("machine") or {})
    if "ram_gib" in machine:
        machine["ram_bytes"] = machine.pop("ram_gib") * 2**30
    took = rec.pop("seconds", None)
    return {**rec, "schema": SCHEMA, "started_at": started, "took_s": took, "machine": machine}
