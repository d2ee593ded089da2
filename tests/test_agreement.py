"""Same model, same answers (issue 12 §4): each engine's perplexity over r1run's text, through its own
llama-imatrix, on the real builds; a faster engine that computes something else is never chosen by auto."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from clihelp import invoke
from r1run.bench import agreement
from r1run.home import Home
from r1run.llama import manifest
from r1run.run import engine
from testkit.cache import register_builds

pytestmark = pytest.mark.llama

MAINLINE = ("0.00.512.001 I compute_imatrix: computing over 3 chunks, n_ctx=256, batch_size=2048, n_seq=8",
            "[1]41.5322,[2]52.3131,[3]46.4990,",
            "Final estimate: PPL = 46.4990 +/- 6.93428")
IK = ("compute_imatrix: computing over 3 chunks with batch_size 256",
      "[1]200.4467,[2]230.5611,[3]228.2988,",
      "Final estimate: PPL = 228.2988 +/- 38.64693",
      "llama_print_timings:        load time =     101.21 ms")


def test_the_check_runs_with_the_flags_of_the_run_it_checks() -> None:
    flags = ("-c", "256", "-t", "2", "-ngl", "99", "-ot", "exps=CPU", "--run-time-repack")
    argv = agreement.argv(Path("imatrix"), Path("m.gguf"), Path("t.txt"), Path("o"), threads=2, run_flags=flags)
    assert argv[:3 + len(flags)] == ["imatrix", "-m", "m.gguf", *flags]  # placement and kernels as the run has them
    assert argv.count("-c") == 1 and argv.count("-t") == 1 and argv[argv.index("-f") + 1] == "t.txt"
    bare = agreement.argv(Path("imatrix"), Path("m.gguf"), Path("t.txt"), Path("o"), threads=2)
    assert bare[bare.index("-c") + 1] == str(agreement.CTX) and bare[bare.index("-t") + 1] == "2"


def test_the_final_estimate_is_read_from_either_engines_log() -> None:
    main, ik = agreement.parse(list(MAINLINE)), agreement.parse(list(IK))
    assert main is not None and (main.value, main.error, main.line) == (46.499, 6.93428, MAINLINE[-1])
    assert ik is not None and ik.value == 228.2988 and ik.line == IK[2] and ik.chunks == (200.4467, 230.5611, 228.2988)
    assert not agreement.agree(main, ik)
    # llama.cpp b11434 now and then exits 0 before writing its last lines: the running estimate stands in, and two
    # engines are compared after the chunks both printed
    cut = agreement.parse(["[1]200.4467,[2]230.5611,# exit 0"])
    assert cut is not None and cut.value == 230.5611 and cut.error is None and "no final line" in cut.line
    assert agreement.agree(cut, ik) and not agreement.agree(cut, agreement.parse(["[1]190.0,[2]250.0,"]))
    assert agreement.parse(["llama_print_timings: ..."]) is None  # no estimate at all
    assert agreement.agree(agreement.Perplexity(46.89, 7.0, ""), agreement.Perplexity(47.07, 7.0, ""))  # 0.4%


def _bins(r1run_home: Path) -> dict[str, Path]:
    return {name: Path(p) / "llama-imatrix" for name, p in register_builds(r1run_home).items()}


@pytest.mark.parametrize("layout", ["original", "mla"])
def test_both_engines_compute_the_same_perplexity_on_the_r1_shaped_model(r1run_home: Path, ik_home: Path,
                                                                          request, layout: str) -> None:
    model = request.getfixturevalue("r1_tiny" if layout == "original" else "r1_small_mla").path
    found = {name: agreement.measure(prog, model, r1run_home / f"{name}.log", threads=2)
             for name, prog in _bins(r1run_home).items()}
    main, ik = found["llama.cpp"], found["ik_llama.cpp"]
    assert main is not None and ik is not None, found
    assert agreement.agree(main, ik), (main.line, ik.line)


def test_bench_compares_perplexity_and_auto_keeps_llama_cpp_when_the_engines_disagree(
        r1run_home: Path, ik_home: Path, smollm2: Path, tmp_path: Path) -> None:
    register_builds(r1run_home)
    # SmolLM2's Q4_1 file: ik_llama.cpp 0.1.5 computes Q4_1 wrongly in prompt batches on this machine
    res = invoke("bench", str(smollm2), "--engine", "llama.cpp,ik_llama.cpp", "--prompt-tokens", "16", "-n", "4",
                 "-r", "2", "--json")
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout)
    ppl = {name: p["value"] for name, p in rec["perplexity"].items()}
    assert rec["agree"] is False and ppl["ik_llama.cpp"] > 2 * ppl["llama.cpp"], ppl
    assert "`--engine auto` now runs llama.cpp" in res.stderr
    # each engine's check ran as r1run runs that engine: ik with its run-time repacking
    (ik_log,) = (r1run_home / "logs").glob("*perplexity-ik_llama.cpp.log")
    assert "--run-time-repack" in ik_log.read_text().splitlines()[0]
    measured = engine.Measurement("ik_llama.cpp", 1.3, "now", agree=False, perplexity=ppl)
    choice = engine.choose("auto", "deepseek2", {"llama.cpp": "cpu", "ik_llama.cpp": "cpu"}, measured)
    assert choice.name == "llama.cpp" and "the engines disagree on this model" in choice.note
    # and without any measurement, a DeepSeek file holding Q4_1 tensors is kept off ik_llama.cpp
    both = {"llama.cpp": "cpu", "ik_llama.cpp": "cpu"}
    q4_1 = engine.choose("auto", "deepseek2", both, tensor_types=frozenset({"Q4_1", "Q8_0"}))
    assert q4_1.name == "llama.cpp" and "computes Q4_1 tensors wrongly" in q4_1.note
    assert engine.choose("auto", "deepseek2", both, tensor_types=frozenset({"Q4_K", "Q6_K"})).name == "ik_llama.cpp"

    # the same weights in Q8_0 agree within 1%
    quantize = Path(manifest.default_build(Home(r1run_home), "llama.cpp").binaries["quantize"])
    q8 = tmp_path / "smollm2-q8_0.gguf"
    subprocess.run([str(quantize), "--allow-requantize", str(smollm2), str(q8), "Q8_0", "2"], check=True,
                   capture_output=True)
    found = {name: agreement.measure(prog, q8, tmp_path / f"{name}.log", threads=2)
             for name, prog in _bins(r1run_home).items()}
    main, ik = found["llama.cpp"], found["ik_llama.cpp"]
    assert main is not None and ik is not None and agreement.agree(main, ik), found
