"""CPUs that advertise AMX but crash in llama.cpp's AMX kernels: found by running them, then built without.

Measured here: a Xeon (family 6, model 207) in a Firecracker VM lists amx_tile/amx_int8 in /proc/cpuinfo and
grants the tile state (arch_prctl), and a standalone tile load runs; yet every prompt of a -march=native
llama.cpp b11434 dies of SIGILL at `tileloadd` in ggml's AMX kernel (tinygemm_kernel_amx), while generation
(one token at a time, AVX-512 VNNI) runs. Only the built kernels tell, so after building on such a CPU r1run
runs a 32-token prompt of a small model (gguf.synth) through the new llama-bench; when it dies of a signal,
r1run builds again without -march=native, naming each of the CPU's other features (cmake.cpu_feature_flags),
and remembers the verdict for this CPU (R1RUN_HOME/cache/amx.json) so later builds skip the crash.
"""

from __future__ import annotations

import json
import signal
import tempfile
from pathlib import Path

from r1run import hardware, proc
from r1run.fsutil import write_atomic
from r1run.gguf import synth


def _cpu_model() -> str:
    return hardware.detect_cpu().model


def advertised(flags: tuple[str, ...]) -> bool:
    return "amx_tile" in flags


def known_to_crash(cache_dir: Path) -> bool:
    """This CPU's AMX crashed a build here before (the verdict is kept per CPU model)."""
    try:
        data = json.loads((cache_dir / "amx.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("cpu") == _cpu_model() and data.get("crashes") is True


def remember(cache_dir: Path, detail: str) -> None:
    """This CPU's AMX crashed a build (never forgotten by a build it did not crash: ik_llama.cpp has no AMX
    kernels)."""
    try:
        write_atomic(cache_dir / "amx.json", json.dumps({"cpu": _cpu_model(), "crashes": True, "detail": detail}))
    except OSError:
        pass  # a cache: the next build on this CPU runs the check again


def prompt_crashes(bench: Path, quantize: Path) -> str | None:
    """Run a 32-token prompt of the small model (Q4_0, a type ggml's AMX kernels take) through `bench`; the way it
    died when a signal ended it, else None (it ran, or a step before it failed: nothing to say about AMX)."""
    with tempfile.TemporaryDirectory(prefix="r1run-amx-") as tmp:
        model, made = synth.quantized(quantize, Path(tmp), "Q4_0")
        if made.returncode != 0:
            return None
        res = proc.run([bench, "-m", model, "-p", "32", "-n", "0", "-r", "1", "-t", "1"], timeout=300)
    if res.returncode < 0 and res.returncode != -9:  # -9: r1run's own timeout
        try:
            return f"killed by {signal.Signals(-res.returncode).name}"
        except ValueError:
            return f"killed by signal {-res.returncode}"
    return None
