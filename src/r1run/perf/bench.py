"""llama-bench results in each of its output formats (`-o md|csv|json|jsonl|sql`), one record per test.

    | model                          |       size |     params | backend    | threads |            test |                  t/s |
    | ------------------------------ | ---------: | ---------: | ---------- | ------: | --------------: | -------------------: |
    | llama 256M Q4_1                |  92.10 MiB |   134.52 M | CPU        |       2 |            pp16 |        139.62 ± 0.00 |
    build: unknown (0)

    build_commit,build_number,cpu_info,...,n_prompt,n_gen,n_depth,test_time,avg_ns,stddev_ns,avg_ts,stddev_ts
    "unknown","0","AMD EPYC",...,"16","0","0","2026-11-29T05:00:38Z","3003397672","0","5.327300","0.000000"

    {"build_commit": "unknown", "build_number": 0, ..., "n_prompt": 16, "n_gen": 0, ..., "avg_ts": 21.096896, "stddev_ts": 0.000000, ...}

    INSERT INTO llama_bench (build_commit, build_number, ...) VALUES ('unknown', '0', ...);

The markdown table shows only the columns that differ from llama-bench's defaults, under short
names (`ngl`, `fa`, `threads`); they are mapped back to the field names of the other formats.
"""

from __future__ import annotations

import csv
import re
from typing import Any

from r1run.perf.lines import num
from r1run.perf.model import BenchTest, Phase

# markdown display name -> field name (llama-bench's get_field_display_name, reversed)
_MD_FIELDS = {
    "ngl": "n_gpu_layers", "sm": "split_mode", "threads": "n_threads", "nkvo": "no_kv_offload", "fa": "flash_attn",
    "lm": "load_mode", "embd": "embeddings", "nopo": "no_op_offload", "noh": "no_host", "rpk": "repack",
    "dev": "devices", "ts": "tensor_split", "ot": "tensor_buft_overrides", "fitt": "fit_target", "fitc": "fit_min_ctx",
    "model": "model_type", "size": "model_size", "params": "model_n_params", "backend": "backends",
}
# fields that describe the machine or the measurement itself rather than a knob
_NOT_PARAMS = {"avg_ts", "stddev_ts", "avg_ns", "stddev_ns", "samples_ns", "samples_ts", "test_time", "t/s", "test",
               "n_prompt", "n_gen", "n_depth", "build_commit", "build_number", "cpu_info", "gpu_info"}
_TEST = re.compile(r"^(?:pp(\d+))?\+?(?:tg(\d+))?(?: @ d(\d+))?$")
BENCH_FIELDS = ("build_commit", "n_prompt", "n_gen", "avg_ts")


def is_bench_record(obj: Any) -> bool:
    return isinstance(obj, dict) and all(k in obj for k in BENCH_FIELDS)


def test_name(n_prompt: int, n_gen: int, n_depth: int = 0) -> str:
    """llama-bench's own name for a test: `pp512`, `tg128`, `pp512+tg128`, with ` @ d4096` for depth."""
    if n_prompt > 0 and n_gen == 0:
        name = f"pp{n_prompt}"
    elif n_gen > 0 and n_prompt == 0:
        name = f"tg{n_gen}"
    else:
        name = f"pp{n_prompt}+tg{n_gen}"
    return f"{name} @ d{n_depth}" if n_depth else name


def _typed(value: Any) -> str | int | float | bool:
    if isinstance(value, (bool, int, float)):
        return value
    text = str(value)
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d+", text):
        return float(text)
    return text


def from_record(rec: dict[str, Any]) -> BenchTest:
    """A json/jsonl/csv/sql record (llama-bench's field names) as a BenchTest."""
    n_prompt, n_gen = int(rec.get("n_prompt") or 0), int(rec.get("n_gen") or 0)
    n_depth = int(rec.get("n_depth") or 0)
    params = {k: _typed(v) for k, v in rec.items() if k not in _NOT_PARAMS and not isinstance(v, (list, dict))}
    avg_ns, stddev_ns = rec.get("avg_ns"), rec.get("stddev_ns")
    return BenchTest(
        test=test_name(n_prompt, n_gen, n_depth), n_prompt=n_prompt, n_gen=n_gen, n_depth=n_depth,
        avg_ts=float(rec["avg_ts"]), stddev_ts=num(str(rec["stddev_ts"])) if "stddev_ts" in rec else None,
        avg_ns=int(avg_ns) if avg_ns not in (None, "") else None,
        stddev_ns=int(stddev_ns) if stddev_ns not in (None, "") else None,
        params=params,
    )


def build_of(rec: dict[str, Any]) -> str | None:
    if "build_number" not in rec and "build_commit" not in rec:
        return None
    return f"{rec.get('build_number', '?')} ({rec.get('build_commit', 'unknown')})"


def parse_csv(text: str) -> list[dict[str, str]]:
    """`-o csv`: a header of field names, then one quoted row per test (other lines before the header skipped)."""
    table = CsvRows()
    return [row for line in text.splitlines() if (row := table.feed(line)) is not None]


class CsvRows:
    """`-o csv` read line by line. ik_llama.cpp's llama-bench (0.1.5) prints other lines on stdout between its
    header and its rows (when it computes MLA tensors of an original-layout DeepSeek file), has more fields
    (mla_attn, fused_moe, repack, ...) and no samples (tests/data/perf/ik-0.1.5-bench-r1tiny.csv):

        build_commit,build_number,cuda,vulkan,kompute,metal,sycl,rpc,gpu_blas,blas,cpu_info,gpu_info,model_filename,model_type,model_size,model_n_params,n_batch,n_ubatch,n_threads,type_k,type_v,n_gpu_layers,split_mode,main_gpu,no_kv_offload,flash_attn,mla_attn,attn_max_batch,ser,reuse,tensor_split,use_mmap,embeddings,repack,mqkv,muge,fused_moe,grouped_er,no_fused_up_gate,use_thp,no_ooae,rcache,sas,max_gpu,cuda_params,override_tensor,n_prompt,n_gen,test_time,avg_ns,stddev_ns,avg_ts,stddev_ts,test
        Computed blk.0.attn_k_b.weight as 128 x 256 x 2 of type q8_0 and stored in buffer CPU
        Computed blk.0.attn_v_b.weight as 256 x 128 x 2 of type q4_K and stored in buffer CPU
        "ik-llama-cpp-python-0.1.5","0","0",...,"deepseek2 ?B Q4_K - Medium","8315206","13150000","2048","512","2","f16","f16","999","layer","0","0","1","3","0","-1,0","1","0.00","1","0","1",...,"16","0","2026-11-30T23:15:00Z","859331","0","18619.135118","0.000000","pp16"

    Mainline's rows follow its header directly (tests/data/perf/b11434-bench.csv).
    """

    def __init__(self) -> None:
        self.fields: list[str] | None = None

    @staticmethod
    def _is_header(line: str) -> bool:
        return line.startswith("build_commit,") and "avg_ts" in line

    def header_seen(self, line: str) -> bool:
        return self._is_header(line.strip())

    def feed(self, line: str) -> dict[str, str] | None:
        s = line.strip()
        if self._is_header(s):
            self.fields = next(csv.reader([s]))
            return None
        if self.fields is None or not s.startswith('"'):
            return None
        values = next(csv.reader([s]))
        if len(values) != len(self.fields):
            return None
        row = dict(zip(self.fields, values, strict=True))
        return row if row.get("avg_ts") else None


_SQL_ROW = re.compile(r"INSERT INTO llama_bench \((?P<fields>[^)]*)\) VALUES \((?P<values>.*)\);\s*$")


def parse_sql_line(line: str) -> dict[str, str] | None:
    """`-o sql`: one `INSERT INTO llama_bench (...) VALUES ('...', ...);` per test."""
    m = _SQL_ROW.search(line)
    if not m:
        return None
    fields = [f.strip() for f in m.group("fields").split(",")]
    values = next(csv.reader([m.group("values")], quotechar="'", skipinitialspace=True))
    return dict(zip(fields, values, strict=True)) if len(fields) == len(values) else None


class MarkdownTable:
    """`-o md` read line by line (the table can sit inside a log captured with 2>&1)."""

    def __init__(self) -> None:
        self.columns: list[str] | None = None
        self._pending: list[str] | None = None

    @staticmethod
    def _cells(line: str) -> list[str] | None:
        s = line.strip()
        if not (s.startswith("|") and s.endswith("|")) or len(s) < 3:
            return None
        return [c.strip() for c in s[1:-1].split("|")]

    def feed(self, line: str) -> BenchTest | None:
        cells = self._cells(line)
        if cells is None:
            self.columns = self._pending = None
            return None
        if self._pending is not None and all(re.fullmatch(r"-+:?", c) for c in cells):
            self.columns, self._pending = self._pending, None
            return None
        if "t/s" in cells and "test" in cells:
            self._pending, self.columns = cells, None
            return None
        if self.columns is None or len(cells) != len(self.columns):
            return None
        row = dict(zip(self.columns, cells, strict=True))
        return self._test(row)

    @staticmethod
    def _test(row: dict[str, str]) -> BenchTest | None:
        m = re.fullmatch(r"([\d.]+) ± ([\d.]+)", row["t/s"])
        t = _TEST.match(row["test"])
        if not m or not t or not (t.group(1) or t.group(2)):
            return None
        params: dict[str, str | int | float | bool] = {}
        for col, value in row.items():
            if col in ("t/s", "test"):
                continue
            params[_MD_FIELDS.get(col, col)] = _typed(value)
        return BenchTest(
            test=row["test"], n_prompt=int(t.group(1) or 0), n_gen=int(t.group(2) or 0), n_depth=int(t.group(3) or 0),
            avg_ts=float(m.group(1)), stddev_ts=float(m.group(2)), params=params,
        )


def phases(t: BenchTest) -> tuple[Phase | None, Phase | None]:
    """(prompt, eval): a pp test as the prompt phase, a tg test as the eval phase; pp+tg tests give one combined
    speed only, so neither."""
    if (t.n_gen == 0) == (t.n_prompt == 0):
        return None, None
    phase = Phase(ms=t.avg_ns / 1e6 if t.avg_ns else None, tokens=t.n_prompt or t.n_gen, tps=t.avg_ts,
                  ms_per_token=1000.0 / t.avg_ts if t.avg_ts else None)
    return (phase, None) if t.n_gen == 0 else (None, phase)


BENCH_FOOTER = re.compile(r"^build: (\S+) \((\d+)\)\s*$")
"""The line after a markdown table: `build: unknown (0)` (commit, then number)."""
