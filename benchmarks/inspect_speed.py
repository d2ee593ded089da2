"""How fast r1run reads a DeepSeek-R1-sized 3-shard header set, against gguf.GGUFReader.

Writes (once, into a temporary folder) a header-only UD-IQ1_S-like R1 671B shard set: 61 layers,
R1's real tensor names and shapes, a 129,280-token vocabulary and 127,741 merges; the tensor data
is a sparse hole, so ~140 GiB of files take a few MB of disk. Then times, in this process:

    r1run read_header x3     the header parser alone
    r1run read_model         shard discovery + headers + checks + ModelInfo
    gguf.GGUFReader x3       the official reader (decodes every vocabulary entry)
    r1run inspect --json     the whole command in a fresh interpreter (imports included)

and prints medians and the ratio. Usage: python benchmarks/inspect_speed.py [--runs N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import _paths  # noqa: F401  (puts tests/ on sys.path for testkit)


def median_s(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm imports and the page cache
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", type=Path, help="write the shard set here and keep it")
    args = ap.parse_args()

    import gguf

    from r1run.gguf import read_header, read_model
    from testkit.headers import write_r1_headers

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        existing = sorted(folder.glob("DeepSeek-R1-UD-IQ1_S-*-of-00003.gguf"))
        t0 = time.perf_counter()
        files = existing or write_r1_headers(folder / "DeepSeek-R1-UD-IQ1_S")
        if not existing:
            print(f"wrote {len(files)} shards in {time.perf_counter() - t0:.1f} s: "
                  f"{sum(f.stat().st_size for f in files) / 2**30:.1f} GiB apparent, "
                  f"{sum(f.stat().st_blocks * 512 for f in files) / 2**20:.1f} MiB on disk")
        info = read_model(files[0])
        print(f"model: {info.architecture}, {info.hparams.block_count} layers, {info.parameter_count / 1e9:.1f} B "
              f"params, {info.tensor_bytes / 2**30:.1f} GiB of tensors, vocab {info.hparams.vocab_size}, "
              f"header of shard 1: {info.shards[0].header_bytes / 2**20:.1f} MiB")

        ours_headers = median_s(lambda: [read_header(f) for f in files], args.runs)
        ours_model = median_s(lambda: read_model(files[0]), args.runs)
        theirs = median_s(lambda: [gguf.GGUFReader(f) for f in files], max(1, args.runs // 2))
        cli = median_s(lambda: subprocess.run([sys.executable, "-m", "r1run", "inspect", str(files[0]), "--json"],
                                              stdout=subprocess.DEVNULL, check=True), max(1, args.runs // 2))
        print(f"{'r1run read_header x3':28s} median {ours_headers * 1000:8.1f} ms")
        print(f"{'r1run read_model':28s} median {ours_model * 1000:8.1f} ms")
        print(f"{'gguf.GGUFReader x3':28s} median {theirs * 1000:8.1f} ms")
        print(f"{'r1run inspect --json (CLI)':28s} median {cli * 1000:8.1f} ms  (fresh interpreter, imports included)")
        print(f"ratio GGUFReader / r1run read_header: {theirs / ours_headers:.0f}x; "
              f"/ read_model: {theirs / ours_model:.0f}x")


if __name__ == "__main__":
    main()
