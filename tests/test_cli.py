"""One CLI: -h and -V, shell completion, unknown options refused before `--`, JSON errors with --json."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from clihelp import invoke


def test_short_help_and_version() -> None:
    assert invoke("-V").stdout.startswith("r1run ")
    res = invoke("-h")
    assert res.exit_code == 0 and "chat" in res.stdout and "--install-completion" in res.stdout
    assert "Chat with a model" in invoke("chat", "-h").stdout


def test_an_unknown_option_before_the_separator_is_refused_with_a_suggestion(r1run_home: Path) -> None:
    res = invoke("chat", "smollm2", "--gpu-memry", "24GiB", "-p", "hi")
    assert res.exit_code == 2
    assert "No such option: --gpu-memry" in res.output and "--gpu-memory" in res.output


@pytest.mark.llama
def test_what_follows_the_separator_reaches_llama_cpp_verbatim(home: Path, smollm2: Path) -> None:
    res = invoke("chat", str(smollm2), "-p", "hi", "-t", "1", "--dry-run", "--", "--top-k", "5", "--no-such-flag")
    assert res.exit_code == 0, res.output
    assert shlex.split(res.stdout)[-3:] == ["--top-k", "5", "--no-such-flag"]


@pytest.mark.llama
def test_n_predict_minus_one_means_until_the_model_ends_as_in_llama_cpp(home: Path, smollm2: Path) -> None:
    res = invoke("chat", str(smollm2), "-p", "hi", "-t", "1", "-n", "-1", "--dry-run")
    assert res.exit_code == 0, res.output
    argv = shlex.split(res.stdout)
    assert argv[argv.index("-n") + 1] == "-1"


def test_with_json_an_error_is_json_on_stdout_too(r1run_home: Path) -> None:
    res = invoke("plan", "no-such-model", "--json")
    assert res.exit_code == 2
    assert json.loads(res.stdout) == {"error": "unknown model 'no-such-model'; known models: deepseek-r1, smollm2",
                                      "hint": "any hub repository works too: r1run download --repo owner/name "
                                              "--include 'PATTERN'", "exit_code": 2}
    assert "error: unknown model" in res.stderr
