"""r1run's fix to llama.cpp's logger (llama.patches): which trees get it, what the manifest says, and that a build
from before it is rebuilt; on miniature trees with the real cmake, compiler and git. The real b11434 build's
programs keeping their last lines: tests/test_build_real.py."""

from __future__ import annotations

import json
from pathlib import Path

from clihelp import invoke
from minillama import make_git_repo, make_tarball, write_tree
from r1run.home import Home
from r1run.llama import manifest, patches

# common_log_main() as llama.cpp has it since llama.cpp#22273 (b11434's text, less its comment)
LEAKY = """struct common_log * common_log_main() {
    static struct common_log * log;
    static std::once_flag    init_flag;
    std::call_once(init_flag, [&]() {
        log = new common_log;
        // Set default to auto-detect colors
        log->set_colors(tty_can_use_colors());
    });

    return log;
}
"""
# before it (and in ik_llama.cpp 0.1.5): a static logger, destroyed and so drained at exit
STATIC = """struct common_log * common_log_main() {
    static struct common_log log;
    return &log;
}
"""


def _tree(root: Path, log_cpp: str | None) -> Path:
    tree = write_tree(root)
    if log_cpp is not None:
        (tree / "common").mkdir()
        (tree / "common" / "log.cpp").write_text(log_cpp)
    return tree


def _build(*args: str):
    return invoke("build", "--backend", "cpu", "--jobs", "2", *args)


def test_the_patch_drains_the_leaked_logger_once(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "t", LEAKY)
    assert patches.needs_log_flush(tree) and patches.applies(tree) == [patches.LOG_FLUSH]
    assert patches.apply(tree) == [patches.LOG_FLUSH]
    text = (tree / "common" / "log.cpp").read_text()
    assert text.count("std::atexit([] { common_log_pause(common_log_main()); });") == 1
    assert text.index("log = new common_log;") < text.index("std::atexit") < text.index("log->set_colors")
    assert "#if !defined(_WIN32)" in text and not patches.needs_log_flush(tree)
    assert patches.apply(tree) == [patches.LOG_FLUSH] and (tree / "common" / "log.cpp").read_text() == text
    assert not list((tree / "common").glob("*.r1run-tmp"))
    # a tree without that text is left alone
    for i, other in enumerate((STATIC, None, LEAKY.replace("log = new common_log;", "log = new common_log(1);"),
                               LEAKY.replace("        log = new", "            log = new"),
                               LEAKY.replace("\n", "\r\n"))):  # a CRLF file: the script's awk would not match it
        t = _tree(tmp_path / f"other{i}", other)
        assert patches.apply(t) == [] and not patches.needs_log_flush(t)
        if other is not None:
            assert (t / "common" / "log.cpp").read_bytes() == other.encode()


def test_a_fetched_tree_is_patched_recorded_and_an_unpatched_build_is_redone(tmp_path: Path,
                                                                             r1run_home: Path) -> None:
    url = make_git_repo(_tree(tmp_path / "repo", LEAKY), "b888")
    first = _build("--source", "git", "--repo", url, "--ref", "b888", "--json")
    assert first.exit_code == 0, first.stderr
    m = json.loads(first.stdout)
    assert m["patches"] == [patches.LOG_FLUSH]
    clone = r1run_home / "sources" / "git-b888"
    assert "r1run: log-flush-at-exit" in (clone / "common" / "log.cpp").read_text()
    assert "r1run: " not in (tmp_path / "repo" / "common" / "log.cpp").read_text()  # the clone, not the origin

    again = _build("--source", "git", "--repo", url, "--ref", "b888", "--json")
    assert again.exit_code == 0 and "up to date" in again.stderr

    # a build made by an r1run that patched nothing: the next `r1run build` builds it again, with the fix
    path = manifest.manifest_path(Home(r1run_home), m["id"])
    old = json.loads(path.read_text())
    del old["patches"]
    path.write_text(json.dumps(old))
    assert manifest.load(Home(r1run_home), m["id"]).patches is None
    redone = _build("--source", "git", "--repo", url, "--ref", "b888", "--json")
    assert redone.exit_code == 0 and "up to date" not in redone.stderr, redone.stderr
    assert json.loads(redone.stdout)["patches"] == [patches.LOG_FLUSH]


def test_a_users_own_tree_is_never_changed_and_the_build_says_what_it_risks(tmp_path: Path,
                                                                           r1run_home: Path) -> None:
    tree = _tree(tmp_path / "mine", LEAKY)
    res = _build("--source", str(tree), "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["patches"] == []
    assert (tree / "common" / "log.cpp").read_text() == LEAKY
    said = " ".join(res.stderr.split())
    assert "can lose its last output lines at exit" in said and "llama.cpp#25504" in said
    # an archive is extracted into r1run's own sources: that copy is patched, the archive left as it was
    archive = make_tarball(tree, tmp_path / "mine.tar.gz")
    before = archive.read_bytes()
    packed = _build("--source", str(archive), "--force", "--json")
    assert packed.exit_code == 0, packed.stderr
    assert json.loads(packed.stdout)["patches"] == [patches.LOG_FLUSH] and archive.read_bytes() == before
    assert "can lose" not in packed.stderr
    # a tree whose logger is drained anyway: nothing to say
    plain = _build("--source", str(_tree(tmp_path / "old", STATIC)), "--force", "--json")
    assert plain.exit_code == 0 and json.loads(plain.stdout)["patches"] == []
    assert "can lose" not in plain.stderr


def test_the_shell_script_patches_a_tree_it_clones_as_r1run_does(tmp_path: Path) -> None:
    # scripts/build_llama_cpp.sh (no Python) clones, patches and builds a miniature tree; the patched file is byte
    # for byte what r1run's own patch makes of it
    import subprocess

    url = make_git_repo(_tree(tmp_path / "repo", "// the rest of log.cpp\n" + LEAKY), "b888")
    script = Path(__file__).resolve().parent.parent / "scripts" / "build_llama_cpp.sh"
    work = tmp_path / "work"
    work.mkdir()
    res = subprocess.run(["sh", str(script), "--repo", url, "--ref", "b888", "--backend", "cpu", "--ui", "none",
                          "--jobs", "2"], cwd=work, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "log is drained at exit (llama.cpp#25504)" in res.stdout
    by_script = (work / "llama.cpp-b888" / "common" / "log.cpp").read_bytes()
    by_r1run = _tree(tmp_path / "same", "// the rest of log.cpp\n" + LEAKY)
    patches.apply(by_r1run)
    assert by_script == (by_r1run / "common" / "log.cpp").read_bytes()
    assert (work / "llama.cpp-b888" / "build-cpu" / "bin" / "llama-completion").is_file()
    # a tree of yours (--source) is never changed
    mine = _tree(tmp_path / "mine", LEAKY)
    res = subprocess.run(["sh", str(script), "--source", str(mine), "--backend", "cpu", "--ui", "none", "--jobs", "2"],
                         cwd=work, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (mine / "common" / "log.cpp").read_text() == LEAKY and "patched" not in res.stdout
