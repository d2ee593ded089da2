"""How long `r1run --help` takes (target: under 0.3 s). Prints the median of several runs."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

RUNS = 15


def time_once(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> None:
    cases = {
        "python -c pass (interpreter floor)": [sys.executable, "-c", "pass"],
        "r1run --help": [sys.executable, "-m", "r1run", "--help"],
        "r1run build --help": [sys.executable, "-m", "r1run", "build", "--help"],
    }
    for name, argv in cases.items():
        time_once(argv)  # warm the page cache
        samples = [time_once(argv) for _ in range(RUNS)]
        print(f"{name:40s} median {statistics.median(samples) * 1000:6.0f} ms  "
              f"min {min(samples) * 1000:6.0f} ms  max {max(samples) * 1000:6.0f} ms  (n={RUNS})")


if __name__ == "__main__":
    main()
