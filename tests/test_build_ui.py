"""llama-server's web UI in `r1run build`: which way it is provisioned (`--ui`), and what the build reports.

The pure choice and the reading of ui-assets.cmake's output run on b11434's recorded output
(tests/data/ui/README.md); the end-to-end tests build the miniature tree (tests/minillama.py) with the real
cmake and the real npm. The real llama.cpp's UI is checked by tests/test_build_real.py and tests/test_webui.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from clihelp import invoke
from minillama import write_tree
from r1run.errors import BadInput, ToolMissing
from r1run.llama import cmake, ui
from r1run.llama.cmake import Toolchain
from r1run.llama.ui import UiChoice, UiMode

DATA = Path(__file__).parent / "data" / "ui"
NODE = Toolchain("Linux", "x86_64", npm="/usr/bin/npm", node="/usr/bin/node")
BARE = Toolchain("Linux", "x86_64")
NO_UI_HEADER = (DATA / "b11434-ui-none.h").read_text()
UI_HEADER = (DATA / "b11434-ui-npm.h").read_text()


def _lines(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


# --- the choice ---------------------------------------------------------------------------------------

def test_auto_builds_with_npm_when_node_is_installed() -> None:
    choice = ui.choose(UiMode.AUTO, NODE, offline=False)
    assert choice.source == "npm" and "/usr/bin/npm" in choice.reason
    assert cmake.ui_flags(choice.source) == ["-DLLAMA_BUILD_UI=ON", "-DLLAMA_USE_PREBUILT_UI=OFF"]


def test_auto_without_npm_downloads_the_prebuilt_ui_unless_offline() -> None:
    online = ui.choose(UiMode.AUTO, BARE, offline=False)
    assert online.source == "prebuilt" and "no npm" in online.reason
    assert cmake.ui_flags(online.source) == ["-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=ON"]
    offline = ui.choose(UiMode.AUTO, BARE, offline=True)
    assert offline.source == "none" and "HF_HUB_OFFLINE" in offline.reason
    assert cmake.ui_flags(offline.source) == ["-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF"]


def test_npm_requested_without_npm_is_refused_before_building() -> None:
    with pytest.raises(ToolMissing) as info:
        ui.choose(UiMode.NPM, BARE, offline=False)
    assert "--ui npm needs Node.js and npm" in info.value.message and "--ui prebuilt" in (info.value.hint or "")
    with pytest.raises(ToolMissing) as info:
        ui.choose(UiMode.NPM, Toolchain("Linux", "x86_64", npm="/usr/bin/npm"), offline=False)
    assert "node was not found" in info.value.message


def test_explicit_choices_win() -> None:
    assert ui.choose(UiMode.PREBUILT, NODE, offline=False).source == "prebuilt"
    assert ui.choose(UiMode.NONE, NODE, offline=False).source == "none"
    assert ui.choose(UiMode.NPM, NODE, offline=True).source == "npm"


def test_unknown_ui_lists_the_choices() -> None:
    assert ui.parse_ui("NPM") is UiMode.NPM
    with pytest.raises(BadInput) as info:
        ui.parse_ui("foo")
    assert info.value.hint == "choose one of: auto, npm, prebuilt, none"


def test_no_ui_flags_unless_asked() -> None:
    """Upstream's default downloads a UI at build time; r1run's flags never leave it to that default."""
    flags = cmake.cmake_flags(cmake.Backend.CPU, ccache=False)
    assert "-DLLAMA_USE_PREBUILT_UI=OFF" in flags and "-DLLAMA_BUILD_UI=OFF" in flags
    assert "-DLLAMA_BUILD_UI=ON" in cmake.cmake_flags(cmake.Backend.CPU, ccache=False, ui="npm")


# --- what the build embedded, from ui-assets.cmake's own output -----------------------------------------

NPM = UiChoice("npm", "Node.js and npm found")
PREBUILT = UiChoice("prebuilt", "no npm found")


def test_npm_build_recorded() -> None:
    info = ui.outcome(NPM, UI_HEADER, False, _lines("b11434-ui-npm.txt"))
    assert (info.source, info.reason) == ("npm", NPM.reason)


def test_prebuilt_download_that_cannot_reach_the_hub() -> None:
    info = ui.outcome(PREBUILT, NO_UI_HEADER, False, _lines("b11434-ui-prebuilt-offline.txt"))
    assert info.source == "none"
    assert info.reason == ('download dist.tar.gz.sha256 from b11434 failed: "Couldn\'t resolve host name"; '
                           "built without a web UI")


def test_npm_missing_at_build_time() -> None:
    info = ui.outcome(NPM, NO_UI_HEADER, False, _lines("b11434-ui-npm-missing.txt"))
    assert info.source == "none" and info.reason.startswith("npm not found, skipping npm build")


def test_none_requested() -> None:
    info = ui.outcome(UiChoice("none", "requested (--ui none)"), NO_UI_HEADER, False, _lines("b11434-ui-none.txt"))
    assert (info.source, info.reason) == ("none", "requested (--ui none)")


def test_assets_shipped_in_the_tree_and_releases_before_tools_ui() -> None:
    shipped = ui.outcome(UiChoice("none", "requested (--ui none)"), UI_HEADER, False,
                         ["-- UI: using pre-built assets from /src/llama.cpp/tools/ui/dist", "-- UI: embedded 58 assets"])
    assert shipped.source == "tree" and "/src/llama.cpp/tools/ui/dist" in shipped.reason
    assert ui.outcome(NPM, None, True, []).source == "tree"  # 2025: a built page committed in the tree
    assert ui.outcome(NPM, None, False, []).source == "none"


# --- end to end on the miniature tree: the real cmake, the real npm ----------------------------------------

def _build(*args: str, env: dict[str, str] | None = None):
    return invoke("build", "--backend", "cpu", "--jobs", "2", "--json", *args, env=env)


@pytest.fixture()
def path_without_npm(tmp_path: Path) -> str:
    """PATH as it is, less Node.js: every program of each PATH folder but npm, npx and node."""
    shims = tmp_path / "no-node-bin"
    shims.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        if not Path(folder).is_dir():
            continue
        for entry in Path(folder).iterdir():
            if entry.name not in ("npm", "npx", "node", "corepack") and not (shims / entry.name).exists():
                (shims / entry.name).symlink_to(entry)
    return str(shims)


def test_npm_builds_the_ui_and_the_manifest_says_so(tmp_path: Path, r1run_home: Path) -> None:
    tree = write_tree(tmp_path / "llama.cpp", ui="ok")
    res = _build("--source", str(tree), "--ui", "npm")
    assert res.exit_code == 0, res.stderr
    m = json.loads(res.stdout)
    assert m["ui"]["source"] == "npm"
    assert "-DLLAMA_BUILD_UI=ON" in m["cmake_flags"] and "-DLLAMA_USE_PREBUILT_UI=OFF" in m["cmake_flags"]
    assert "web UI: running npm ci" in res.stderr and "web UI: npm, embedded in llama-server" in res.stderr
    again = _build("--source", str(tree), "--ui", "npm")
    assert "up to date" in again.stderr and json.loads(again.stdout)["ui"] == m["ui"]


def test_a_failing_npm_build_still_builds_without_ui_and_says_so(tmp_path: Path, r1run_home: Path) -> None:
    tree = write_tree(tmp_path / "llama.cpp", ui="fail")
    res = _build("--source", str(tree))
    assert res.exit_code == 0, res.stderr
    m = json.loads(res.stdout)
    assert m["ui"] == {"source": "none", "reason": "npm run build failed (1); built without a web UI"}
    assert "web UI: none: npm run build failed (1); built without a web UI (`r1run build --force` tries again)" \
        in res.stderr
    assert Path(m["binaries"]["server"]).is_file()


def test_without_npm_auto_falls_back_with_a_status_line(tmp_path: Path, r1run_home: Path,
                                                         path_without_npm: str) -> None:
    tree = write_tree(tmp_path / "llama.cpp", ui="ok")
    res = _build("--source", str(tree), env={"PATH": path_without_npm})
    assert res.exit_code == 0, res.stderr
    assert "web UI: prebuilt (no npm found: llama.cpp's prebuilt UI, downloaded from the hub" in res.stderr
    m = json.loads(res.stdout)
    assert m["ui"]["source"] == "none" and "failed" in m["ui"]["reason"]
    assert "web UI: none: download dist.tar.gz.sha256 from latest failed" in res.stderr

    offline = _build("--source", str(tree), "--force", env={"PATH": path_without_npm, "HF_HUB_OFFLINE": "1"})
    assert offline.exit_code == 0, offline.stderr
    assert json.loads(offline.stdout)["ui"]["source"] == "none"
    assert "web UI: none (no npm to build it and HF_HUB_OFFLINE is set" in offline.stderr
    assert "downloading" not in offline.stderr

    refused = _build("--source", str(tree), "--ui", "npm", env={"PATH": path_without_npm})
    assert refused.exit_code == 1 and "--ui npm needs Node.js and npm" in refused.stderr and "hint:" in refused.stderr


def test_ui_none_and_a_tree_without_ui(tmp_path: Path, r1run_home: Path) -> None:
    res = _build("--source", str(write_tree(tmp_path / "with-ui", ui="ok")), "--ui", "none")
    assert json.loads(res.stdout)["ui"] == {"source": "none", "reason": "requested (--ui none)"}
    assert "npm" not in res.stderr.replace("web UI: none (requested (--ui none))", "")
    bare = _build("--source", str(write_tree(tmp_path / "bare")), "--force")
    assert json.loads(bare.stdout)["ui"] == {"source": "none", "reason": "this llama.cpp tree has no web UI"}


def test_bad_ui_value_exits_2_listing_the_choices(r1run_home: Path) -> None:
    res = invoke("build", "--ui", "foo")
    assert res.exit_code == 2
    assert "error: unknown --ui 'foo'" in res.stderr and "choose one of: auto, npm, prebuilt, none" in res.stderr
    assert not (r1run_home / "builds").exists()
