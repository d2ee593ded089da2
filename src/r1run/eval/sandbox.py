"""Running one game under the harness: its own process group, limits, an empty folder, no network.

Isolation chosen, and why: the game is code a model wrote, careless rather than hostile, so r1run guards
against accidents, not attacks. Each run gets a fresh temporary folder as its working directory and HOME
(removed afterwards), an environment of a few variables (no proxies, no tokens, SDL's dummy video and audio
drivers), resource limits the harness sets on itself before the game starts (address space, CPU seconds,
file size), socket creation that fails inside the game, and a wall-clock limit after which the whole process
group is killed (`proc.run_contained`). Namespaces or containers would isolate more but need privileges or
tools a user may not have; the choice is said in the score's evidence only when it mattered (a kill).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from r1run import proc

HARNESS = Path(__file__).resolve().parent / "harness.py"


@dataclass(frozen=True)
class Limits:
    seconds: float = 30.0  # wall clock per run
    memory_bytes: int = 2 << 30  # address space: Python, SDL and pygame map about 0.5 GiB


@dataclass(frozen=True)
class Scenario:
    seed: int
    end_frame: int
    presses: dict[int, list[str]]
    autopilot: list[tuple[int, int]]
    probes: list[tuple[int, int]]  # (from frame, presses): SPACE once the bird is low and falling
    quit_key: str | None = None
    quit_frame: int | None = None


@dataclass(frozen=True)
class RunResult:
    scenario: Scenario
    data: dict | None  # the harness's observations; None when it wrote none
    returncode: int
    timed_out: bool
    seconds: float
    output_tail: list[str]


def game_env(workdir: Path) -> dict[str, str]:
    """A small environment: no proxies or tokens, dummy SDL drivers, HOME in the temporary folder."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), "TMPDIR": str(workdir),
            "LANG": "C.UTF-8", "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy",
            "PYGAME_HIDE_SUPPORT_PROMPT": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def run_game(code: str, scenario: Scenario, limits: Limits, cancel: threading.Event | None = None) -> RunResult:
    """Play the scenario on the game in a fresh folder, removed afterwards whatever happened; `cancel` stops it."""
    workdir = Path(tempfile.mkdtemp(prefix="r1run-game-"))
    try:
        game, spec, out = workdir / "game.py", workdir / "scenario.json", workdir / "observations.json"
        game.write_text(code, encoding="utf-8")
        spec.write_text(json.dumps({
            "seed": scenario.seed, "end_frame": scenario.end_frame,
            "presses": {str(f): keys for f, keys in scenario.presses.items()},
            "autopilot": scenario.autopilot, "probes": scenario.probes, "memory_bytes": limits.memory_bytes,
            "cpu_seconds": int(limits.seconds) + 1}), encoding="utf-8")
        done = proc.run_contained([sys.executable, "-E", str(HARNESS), str(game), str(spec), str(out)],
                                  cwd=workdir, env=game_env(workdir), timeout=limits.seconds,
                                  output=workdir / "output.txt", cancel=cancel)
        try:
            data = json.loads(out.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        tail = [line for line in done.tail if line.strip()][-5:]
        return RunResult(scenario, data, done.returncode, done.timed_out, done.seconds, tail)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
