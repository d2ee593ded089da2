"""What r1run's download (resume + streamed sha256 + manifest) costs over plain `snapshot_download`.

Both fetch the same generated GGUF shards from the same local hub (testkit.hubserver),
each in a fresh process and a fresh folder, alternating; the time is taken inside the process
around the download call alone (imports excluded), and end to end for the CLI as a second figure.

    python benchmarks/download_overhead.py [--files 4] [--mib 128] [--runs 5] [--link-mbs N]

Prints the median seconds of each and the overhead: the median of the ratios of runs done
back to back (r1run / snapshot_download, who goes first alternating), target at most 1.10.

Unthrottled, the local hub serves at memory speed and the client is CPU-bound: the
sha256 r1run computes (about 1.6 GB/s per core with SHA-NI) then competes with
receiving for the same cores, which is the worst case on a small machine. `--link-mbs N`
caps each response at N MB/s, as a real connection to the hub does; then the hashing
overlaps the transfer and what remains is r1run's fixed cost (planning, fsync, manifest).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _paths  # noqa: F401  (puts tests/ on sys.path for testkit)
from testkit.hubserver import HubServer, make_shard_set

REPO = "bench/DeepSeek-R1-GGUF"
PATTERN = "Bench-UD-IQ1_S/*.gguf"

BASELINE = """
import sys, time
from huggingface_hub import snapshot_download
t = time.perf_counter()
snapshot_download(sys.argv[1], local_dir=sys.argv[2], allow_patterns=[sys.argv[3]])
print(time.perf_counter() - t)
"""

# Like the baseline, import everything before the clock starts (r1run imports huggingface_hub lazily).
R1RUN = """
import sys, time
from pathlib import Path
import huggingface_hub.file_download, huggingface_hub.hf_api
from r1run.download import core
from r1run.home import Home
home = Home(Path(sys.argv[4]))
t = time.perf_counter()
result = core.download(core.DownloadRequest(repo=sys.argv[1], include=(sys.argv[3],), dir=Path(sys.argv[2])), home)
assert result.manifest.complete
print(time.perf_counter() - t)
"""


def timed(code: str, args: list[str], env: dict[str, str]) -> float:
    # Flush the previous run's dirty pages first, or this run pays for the other one's writeback.
    os.sync()
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def wall(argv: list[str], env: dict[str, str]) -> float:
    os.sync()
    t = time.perf_counter()
    subprocess.run(argv, env=env, capture_output=True, check=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--mib", type=int, default=128, help="size of each shard")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--link-mbs", type=float, default=None, help="cap each response at this many MB/s")
    ap.add_argument("--no-cli", action="store_true", help="skip the end-to-end CLI timings")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    opts = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="r1run-bench-"))
    try:
        files = make_shard_set(work / "src", "Bench-UD-IQ1_S", opts.files, opts.mib << 20)
        total = sum(p.stat().st_size for p in files.values())
        throttle = int(opts.link_mbs * 1e6) if opts.link_mbs else None
        with HubServer(workdir=work / "hub", throttle=throttle) as hub:
            hub.add_repo(REPO, files)
            env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(work / "hf-home"),
                   "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
            env.pop("HF_TOKEN", None)
            kinds = ["snapshot_download", "r1run"] + ([] if opts.no_cli else ["hf_cli", "r1run_cli"])
            results: dict[str, list[float]] = {k: [] for k in kinds}
            for i in range(opts.runs + 1):  # run 0 warms the page cache and is dropped
                dests = {k: work / f"{k}-{i}" for k in results}
                pair = {
                    "snapshot_download": lambda d=dests: timed(BASELINE, [REPO, str(d["snapshot_download"]), PATTERN], env),
                    "r1run": lambda d=dests, i=i: timed(R1RUN, [REPO, str(d["r1run"]), PATTERN, str(work / f"home-{i}")],
                                                        env),
                }
                order = list(pair) if i % 2 else list(pair)[::-1]  # alternate who goes first
                got = {k: pair[k]() for k in order}
                if not opts.no_cli:
                    got["hf_cli"] = wall([sys.executable, "-m", "huggingface_hub.cli.hf", "download", REPO,
                                          "--include", PATTERN, "--local-dir", str(dests["hf_cli"]), "--quiet"], env)
                    got["r1run_cli"] = wall([sys.executable, "-m", "r1run", "download", "--repo", REPO, "--include",
                                             PATTERN, "--dir", str(dests["r1run_cli"])],
                                            {**env, "R1RUN_HOME": str(work / f"cli-home-{i}")})
                for d in dests.values():
                    shutil.rmtree(d, ignore_errors=True)
                if i:
                    for k, v in got.items():
                        results[k].append(v)
        med = {k: statistics.median(v) for k, v in results.items()}
        # Each pair ran back to back, so their ratio is robust to the machine's load drifting between pairs.
        ratios = [r / b for r, b in zip(results["r1run"], results["snapshot_download"], strict=True)]
        report = {
            "files": opts.files, "bytes": total, "runs": opts.runs, "link_mbs": opts.link_mbs,
            "median_seconds": med, "throughput_MBps": {k: total / v / 1e6 for k, v in med.items()},
            "overhead_ratio": statistics.median(ratios), "pair_ratios": ratios,
            "overhead_ratio_cli": med["r1run_cli"] / med["hf_cli"] if not opts.no_cli else None,
        }
        if opts.json:
            print(json.dumps(report, indent=2))
            return
        link = f", each response capped at {opts.link_mbs:g} MB/s" if opts.link_mbs else ", unthrottled"
        print(f"{opts.files} files x {opts.mib} MiB = {total / 2**20:.0f} MiB from a local hub{link}, "
              f"{opts.runs} runs, median:")
        for k, v in med.items():
            print(f"  {k:18s} {v:7.3f} s  {total / v / 1e6:8.1f} MB/s")
        print(f"overhead r1run / snapshot_download, median of paired runs: {report['overhead_ratio']:.3f} "
              f"(target <= 1.10; pairs: {', '.join(f'{r:.2f}' for r in ratios)})")
        if not opts.no_cli:
            print(f"end to end, r1run download / hf download: {report['overhead_ratio_cli']:.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
