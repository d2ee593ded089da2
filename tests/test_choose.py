"""Which model a command means when the user names none (r1run.models.choose), and `--quant Q` alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from clihelp import invoke
from r1run import usage
from r1run.errors import BadInput
from r1run.home import Home
from r1run.models import choose


@pytest.fixture()
def home(r1run_home: Path) -> Home:
    return Home.from_env()


def _add_user_model(home: Home, quant: str) -> None:
    home.root.mkdir(parents=True, exist_ok=True)
    (home.root / "catalog.toml").write_text(
        f'[models.other]\nrepo = "someone/Other-GGUF"\ndefault_quant = "{quant}"\n'
        f'quants.{quant} = {{ include = ["*{quant}*.gguf"] }}\n', encoding="utf-8")


def test_nothing_downloaded_means_the_catalog_default_and_says_so(home: Home) -> None:
    c = choose(home, None, None)
    assert (c.model, c.quant) == ("smollm2", None)
    assert "nothing is downloaded yet" in c.describe()


def test_a_named_model_is_taken_as_given_with_no_reason(home: Home) -> None:
    c = choose(home, "deepseek-r1", "IQ1_S")
    assert (c.model, c.quant, c.reason) == ("deepseek-r1", "IQ1_S", None)


def test_quant_alone_names_the_one_catalog_model_that_has_it(home: Home) -> None:
    c = choose(home, None, "iq1_s")
    assert (c.model, c.quant) == ("deepseek-r1", "UD-IQ1_S")
    assert c.describe() == "deepseek-r1 UD-IQ1_S: the catalog model with quant iq1_s"


def test_quant_no_model_has_is_refused_with_a_pointer_to_the_catalog(home: Home) -> None:
    with pytest.raises(BadInput, match="no catalog model has a quant 'Q9_Z'") as exc:
        choose(home, None, "Q9_Z")
    assert "r1run models" in (exc.value.hint or "")


def test_quant_several_models_have_lists_them_and_asks_for_one(home: Home) -> None:
    _add_user_model(home, "UD-IQ1_S")
    with pytest.raises(BadInput, match="several catalog models have a quant 'IQ1_S': deepseek-r1, other"):
        choose(home, None, "IQ1_S")


def test_the_gguf_run_last_is_chosen_while_it_exists(home: Home, tmp_path: Path) -> None:
    gguf = tmp_path / "My-Model-Q4_K_M.gguf"
    gguf.write_bytes(b"GGUF")
    usage.record(home, str(gguf), "My-Model-Q4_K_M", "ran")
    c = choose(home, None, None)
    assert (c.model, c.quant) == (str(gguf), None)
    assert "the model you ran last" in c.describe()
    gguf.unlink()  # a record is a hint: a file that is gone is never chosen
    assert choose(home, None, None).model == "smollm2"


def test_a_download_that_is_not_verified_is_not_chosen(home: Home) -> None:
    usage.record(home, "deepseek-r1", "UD-IQ1_S", "downloaded")  # no manifest: nothing on disk
    assert choose(home, None, None).model == "smollm2"


def test_download_with_only_a_quant_that_no_model_has_exits_2_with_one_line(r1run_home: Path) -> None:
    res = invoke("download", "--quant", "Q9_Z", "--dry-run")
    assert res.exit_code == 2
    assert "no catalog model has a quant 'Q9_Z'" in res.output
    assert "Traceback" not in res.output


def test_an_unreadable_usage_file_counts_as_empty(home: Home) -> None:
    home.root.mkdir(parents=True)
    home.usage_file.write_text("{not json", encoding="utf-8")
    assert usage.load(home) == []
    usage.record(home, "deepseek-r1", "UD-IQ1_S", "ran")
    assert [u.model for u in usage.load(home)] == ["deepseek-r1"]
