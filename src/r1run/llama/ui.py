"""llama-server's web UI in a build: where it should come from (npm, the prebuilt download, none; the CMake
flags are `cmake.ui_flags`), and what the finished build actually embedded.

Since 2026 llama.cpp embeds its UI (tools/ui, a Svelte app) into llama-server at build time through
`scripts/ui-assets.cmake`, which provisions the assets in this order: a `tools/ui/dist` shipped in the
tree; `npm ci && npm run build` when `-DLLAMA_BUILD_UI=ON`; the prebuilt `dist.tar.gz` of this release
from the hub bucket `ggml-org/llama-ui` when `-DLLAMA_USE_PREBUILT_UI=ON` (upstream's default). When
all of them fail the script warns and builds llama-server without a UI (`GET /` answers 404): the build
itself never fails for the UI, so r1run reads what happened afterwards (`outcome`).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path

from r1run.errors import BadInput, ToolMissing
from r1run.llama.cmake import Toolchain
from r1run.llama.manifest import UiInfo


class UiMode(str, enum.Enum):
    AUTO = "auto"
    NPM = "npm"
    PREBUILT = "prebuilt"
    NONE = "none"


@dataclass(frozen=True)
class UiChoice:
    """What a build asks CMake for: `source` is npm, prebuilt or none."""

    source: str
    reason: str


def parse_ui(text: str) -> UiMode:
    """`--ui` as given; anything unknown is a BadInput naming the valid choices."""
    try:
        return UiMode(text.lower())
    except ValueError:
        valid = ", ".join(m.value for m in UiMode)
        raise BadInput(f"unknown --ui {text!r}", f"choose one of: {valid}") from None


NPM_HINT = ("install Node.js 20 or newer with npm (Debian/Ubuntu: `sudo apt-get install nodejs npm`), "
            "or use --ui prebuilt")


def choose(mode: UiMode, tc: Toolchain, *, offline: bool) -> UiChoice:
    """Where the web UI comes from. `auto` builds it from the tree's own tools/ui with npm when Node.js is
    installed (the UI then matches the exact source built, a local tree or a commit included, and needs no
    hub); else it downloads llama.cpp's prebuilt UI for the release from the hub, unless offline. Nothing
    is probed over the network here, so the same command always gives the same flags (and a second run
    stays a no-op); a download that fails leaves a build without UI, reported by `outcome`."""
    has_npm = bool(tc.npm and tc.node)
    if mode is UiMode.NPM:
        if not has_npm:
            missing = "npm" if not tc.npm else "node"
            raise ToolMissing(f"--ui npm needs Node.js and npm, and {missing} was not found on PATH", NPM_HINT)
        return UiChoice("npm", f"requested: built from the tree's tools/ui with npm ({tc.npm})")
    if mode is UiMode.PREBUILT:
        return UiChoice("prebuilt", "requested: llama.cpp's prebuilt UI, downloaded from the hub during the build")
    if mode is UiMode.NONE:
        return UiChoice("none", "requested (--ui none)")
    if has_npm:
        return UiChoice("npm", f"Node.js and npm found ({tc.npm}): built from the tree's tools/ui with npm")
    if offline:
        return UiChoice("none", "no npm to build it and HF_HUB_OFFLINE is set, so no prebuilt download")
    return UiChoice("prebuilt", "no npm found: llama.cpp's prebuilt UI, downloaded from the hub during the build")


# The header ui-assets.cmake generates in the build folder; `#define LLAMA_UI_HAS_ASSETS 1` only when
# assets were embedded (`/* #undef LLAMA_UI_HAS_ASSETS */` otherwise).
HEADER = Path("tools") / "ui" / "ui.h"
# Where ui-assets.cmake runs `npm ci` (700 MB of packages for b11434's UI). A rebuild does not need them while
# tools/ui is unchanged (the script skips npm when dist/ is newer than the UI's sources), so a build removes them.
NODE_MODULES = Path("tools") / "ui" / "ui-src" / "node_modules"
# Before tools/ui (2025 releases), llama-server compiled a committed, already built page from the tree.
LEGACY_ASSETS = (Path("tools/server/public/index.html.gz"), Path("examples/server/public/index.html.gz"))

_UI_LINE = re.compile(r"^(?:-- )?\s*(UI: .*)$")
_FAILED = re.compile(r"failed|not found|missing|mismatch|invalid|no assets", re.I)


def ui_lines(lines: list[str]) -> list[str]:
    """The `UI: ...` messages of a build's output, as ui-assets.cmake prints them during `cmake --build`:

        -- UI: running npm ci
        -- UI: npm ci failed (1)
        -- UI: npm build succeeded
        -- UI: downloading from b11434: https://huggingface.co/buckets/ggml-org/llama-ui/resolve/b11434/dist.tar.gz
        -- UI: download dist.tar.gz.sha256 from b11434 failed: "Couldn't resolve host name"
        -- UI: using pre-built assets from /src/llama.cpp/tools/ui/dist
        CMake Warning at /src/llama.cpp/scripts/ui-assets.cmake:584 (message):
          UI: no assets available - building without an embedded UI.  In a
        -- UI: embedded 0 assets
    """
    found = []
    for line in lines:
        m = _UI_LINE.match(line.rstrip())
        if m:
            found.append(m.group(1).strip())
    return found


def outcome(choice: UiChoice, header: str | None, legacy_assets: bool, lines: list[str]) -> UiInfo:
    """What the build embedded, from the generated header (`header`: its text, None when this tree has no
    tools/ui), whether the tree carries a pre-2026 built page, and the `UI:` lines of the build's output."""
    said = ui_lines(lines)
    if header is None:
        if legacy_assets:
            return UiInfo(source="tree", reason="this release compiles the web UI shipped in its source tree")
        return UiInfo(source="none", reason="this llama.cpp tree has no web UI")
    if "#define LLAMA_UI_HAS_ASSETS 1" in header:
        shipped = next((s for s in said if s.startswith("UI: using pre-built assets from")), None)
        if shipped:
            return UiInfo(source="tree", reason=f"assets shipped in the source tree ({shipped.rsplit(' ', 1)[-1]})")
        if any(s.startswith(("UI: npm build succeeded", "UI: npm output up-to-date")) for s in said):
            return UiInfo(source="npm", reason=choice.reason)
        if any(s.startswith(("UI: HF download succeeded", "UI: HF stamp matches")) for s in said):
            return UiInfo(source="prebuilt", reason=choice.reason)
        return UiInfo(source=choice.source, reason=choice.reason)
    if choice.source == "none":
        return UiInfo(source="none", reason=choice.reason)
    failures = [s.removeprefix("UI: ") for s in said if _FAILED.search(s) and "no assets available" not in s]
    how = "the npm build" if choice.source == "npm" else "the prebuilt download"
    why = failures[0] if failures else f"{how} produced no assets"
    return UiInfo(source="none", reason=f"{why}; built without a web UI")
