"""One CLI: -h and -V, shell completion, unknown options refused before `--`, JSON errors with --json."""

from __future__ import annotations

import json
import re
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
    assert json.loads(res.stdout) == {"schema": "r1run.error/1", "error": "unknown model 'no-such-model'; known models: deepseek-r1, smollm2",
                                      "hint": "any hub repository works too: r1run download --repo owner/name "
                                              "--include 'PATTERN'", "exit_code": 2}
    assert "error: unknown model" in res.stderr


COMMANDS = ["build", "doctor", "models", "download", "list", "rm", "ps", "stop", "inspect", "plan", "chat", "serve",
            "bench", "perf", "worker", "quickstart"]


@pytest.mark.parametrize("command", [*COMMANDS, "eval flappy"])
def test_help_names_values_never_python_types(command: str) -> None:
    res = invoke(*command.split(), "--help", env={"COLUMNS": "80"})
    assert res.exit_code == 0
    leaks = [line for line in res.stdout.splitlines()
             if re.search(r"<(str|int|float|path|list\[.*\])>|\{[A-Za-z_]+\}|\bTEXT\b.*\bTEXT\b", line)]
    assert leaks == []
    assert re.match(r"Usage: r1run \S+( flappy)? \[OPTIONS\]( \[?[A-Z]+\]?(\.\.\.)?)?$", res.stdout.splitlines()[0])


def test_the_command_list_is_not_cut_at_80_columns() -> None:
    lines = invoke("--help", env={"COLUMNS": "80"}).stdout.splitlines()
    listed = lines[lines.index("Commands:") + 1:]
    assert len(listed) >= len(COMMANDS) and not [line for line in listed if line.rstrip().endswith("...")]


@pytest.mark.parametrize("command, hint", [("bench", "--prompt-tokens 16"), ("worker", "--port 16")])
def test_p_is_always_a_prompt(r1run_home: Path, command: str, hint: str) -> None:
    res = invoke(command, "-p", "16")
    assert res.exit_code == 2 and "-p is a prompt's text" in res.output and hint in res.output
