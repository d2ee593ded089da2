"""`r1run eval flappy`: the scorer plays the games of a written corpus headless and scores each item as expected;
bad input; the whole path on the real SmolLM2 with the real llama.cpp."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from clihelp import invoke
from r1run.eval import scorer
from r1run.eval.extract import game_source, last_python_block, why_no_game
from r1run.eval.flappy import ITEMS
from r1run.eval.sandbox import Limits

DATA = Path(__file__).parent / "data" / "flappy"

# Expected scores, in ITEMS order: Pygame, Background, Accelerate SPACE, Bird shape, Land, Top right score, Pipes,
# Best Score, Quit, Runnable.
EXPECTED = {
    "correct.md": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    # flap sets the speed, always a circle, land always brown, pipes always green, score top left, never light
    # blue, q does nothing; classes and event.poll()
    "class_style.py": [1, 0.75, 0.5, 0.75, 0.5, 0.5, 0.75, 1, 0.5, 1],
    # sprites and images (the bird's shape read from how much of its box it fills), pipes from a set_timer event,
    # q and Esc through key.get_pressed(); the background is always the same light blue
    "sprites_timer.md": [1, 0.5, 1, 1, 1, 1, 1, 1, 1, 1],
    # globals and functions, colours by name, land by screen.fill(colour, rect), pipes timed by get_ticks(); an
    # orange ellipse bird (fixed, not dark), fixed light blue, fixed dark green pipes; "Score: 3  Best: 5" in one text
    "globals_named_colours.py": [1, 0.5, 1, 0.25, 1, 1, 0.75, 1, 1, 1],
    # a black "Press SPACE to start" screen first: the background judged is the one the game is played on
    "start_screen.md": [1] * 10,
    "q_does_nothing.md": [1, 1, 1, 1, 1, 1, 1, 1, 0.5, 1],
    # two python blocks after </think>: the last is the game, and it never draws the score
    "no_score.md": [1, 1, 1, 1, 1, 0, 1, 1, 1, 1],
    # NameError when the first pipe is passed: everything before it was seen, Runnable 0, Quit from the code
    "crash_after_start.md": [1, 1, 1, 1, 1, 0.5, 1, 0.75, 0.5, 0],
    "syntax_error.md": [0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    "no_block.md": [0] * 10,
    "no_window.py": [0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0],
}


def _score(name: str) -> scorer.Scorecard:
    path = DATA / name
    return scorer.score_source(game_source(path.read_text(), is_python_file=path.suffix == ".py"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_game_of_the_corpus_gets_its_expected_item_scores(name: str) -> None:
    card = _score(name)
    got = {i.name: i.score for i in card.items}
    assert got == dict(zip(ITEMS, EXPECTED[name], strict=True)), "\n".join(f"{i.name}: {i.score} {i.evidence}" for i in card.items)
    assert all(i.evidence for i in card.items)


HUMAN = json.loads((DATA / "human" / "human_scores.json").read_text())["games"]


@pytest.mark.parametrize("name", sorted(HUMAN))
def test_six_games_a_person_scored_agree_within_a_point_and_exactly_on_runnable(name: str) -> None:
    """Written and scored by hand by someone who had not seen the scorer (see human_scores.json's note)."""
    card = _score(f"human/{name}")
    human = HUMAN[name]
    got = {i.name: i.score for i in card.items}
    detail = "\n".join(f"{i.name}: {i.score} (person: {human['items'][i.name]}) {i.evidence}" for i in card.items)
    assert abs(card.total - human["total"]) <= 1.0, detail
    assert got["Runnable"] == human["items"]["Runnable"], detail


def test_runnable_says_why_a_game_is_not_runnable() -> None:
    assert "NameError" in _score("crash_after_start.md").items[-1].evidence
    assert "SyntaxError line" in _score("syntax_error.md").items[-1].evidence
    assert _score("no_block.md").items[-1].evidence == "no python block in the answer"
    assert "opened no window" in _score("no_window.py").items[-1].evidence


def test_the_game_is_the_last_python_block_after_the_thinking() -> None:
    text = "<think>```python\nthinking()\n```</think>\n```python\nfirst()\n```\ntext\n```py\nlast()\n```\n"
    assert last_python_block(text) == "last()\n"
    assert last_python_block("<think>```python\nonly_thinking()\n```</think>\nno code") is None
    assert last_python_block("```python\ndone()\n```\n```python\nunfinished(") == "done()\n"
    assert last_python_block("```\nbare()\n```") == "bare()\n"
    assert "never closed" in why_no_game("```python\nimport pygame\nwhile True:")
    assert why_no_game("<think>```python\nx\n```</think>no code") == "no python block in the answer"


def test_the_prompt_in_deepseeks_format_is_unsloths_verbatim() -> None:
    from r1run.eval.flappy import PROMPT
    from r1run.run.target import DEEPSEEK_TEMPLATE

    text = DEEPSEEK_TEMPLATE.replace("{prompt}", PROMPT)
    assert text.startswith("<｜User｜>Create a Flappy Bird game in Python. You must include these things:\n1. You must use")
    assert "\n4. The bird's shape should be randomly chosen as a square, circle or triangle. The color should be " \
        "randomly chosen as a dark color.\n" in text
    assert text.endswith("Check your code for errors and fix them before the final markdown section.<｜Assistant｜>")
    assert text.count("\n") == 9


def test_a_game_that_forks_and_sleeps_forever_is_killed_at_the_limit_with_nothing_left(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    code = (DATA / "forks_and_sleeps.py").read_text().replace("PIDS_FILE", str(pids))
    start = time.monotonic()
    card = scorer.score_source(code, Limits(seconds=4))
    assert time.monotonic() - start < 30
    runnable = card.items[-1]
    assert runnable.score == 0 and "4 s limit" in runnable.evidence and "killed" in runnable.evidence
    found = [int(p) for p in pids.read_text().split()]
    assert len(found) == 2 * 6  # parent and forked child, in each of the six runs
    time.sleep(0.2)
    alive = [p for p in found if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == []


def test_ctrl_c_while_scoring_kills_the_games_at_once_and_exits_130(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    game = tmp_path / "sleeper.py"
    game.write_text((DATA / "forks_and_sleeps.py").read_text().replace("PIDS_FILE", str(pids)))
    proc = subprocess.Popen([sys.executable, "-m", "r1run", "eval", "flappy", "--score", str(game)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while (not pids.exists() or len(pids.read_text().split()) < 4) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130 and "interrupted" in err and time.monotonic() - start < 5  # not the 30 s limit
    time.sleep(0.2)
    found = [int(p) for p in pids.read_text().split()]
    assert [p for p in found if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE] == []


def test_a_game_that_prints_without_end_stops_at_the_file_size_limit() -> None:
    card = scorer.score_source("import pygame\nscreen = pygame.display.set_mode((400, 600))\n"
                               "while True:\n    print('x' * 1000)\n", Limits(seconds=20))
    assert card.items[-1].score == 0 and "File too large" in card.items[-1].evidence
    assert all(not r["timed_out"] for r in card.runs)


def test_the_game_has_no_network_and_a_folder_of_its_own(tmp_path: Path) -> None:
    code = (DATA / "correct.md").read_text()
    game = last_python_block(code)
    assert game is not None
    probe = ("import os, socket\n"
             f"open({str(tmp_path / 'seen')!r}, 'w').write(os.getcwd() + ' ' + os.environ.get('HTTPS_PROXY', '-'))\n"
             "try:\n    socket.socket()\nexcept PermissionError as e:\n"
             f"    open({str(tmp_path / 'net')!r}, 'w').write(str(e))\n")
    scorer.score_source(probe + game)
    cwd, proxy = (tmp_path / "seen").read_text().split()
    assert "r1run-game-" in cwd and not Path(cwd).exists() and proxy == "-"
    assert "network access is disabled" in (tmp_path / "net").read_text()


def test_score_cli_prints_the_table_and_json() -> None:
    res = invoke("eval", "flappy", "--score", str(DATA / "q_does_nothing.md"))
    assert res.exit_code == 0, res.stderr
    assert "9.5/10" in res.stdout and "q did nothing" in res.stdout
    data = json.loads(invoke("eval", "flappy", "--score", str(DATA / "no_block.md"), "--json").stdout)
    assert data["schema"] == "r1run.eval.score/1" and data["total"] == 0
    assert [i["name"] for i in data["items"]] == list(ITEMS)


@pytest.mark.parametrize("args, text", [
    (["--score", "/nonexistent/answer.md"], "No such file"),
    (["--seeds", "1,x"], "--seeds must be whole numbers"),
    (["smollm2", "--score", "x.md"], "give no MODEL"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], text: str) -> None:
    res = invoke("eval", "flappy", *args)
    assert res.exit_code == 2 and text in res.stderr and "Traceback" not in res.stderr


def test_missing_pygame_is_one_line_with_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = scorer.importlib.util.find_spec
    monkeypatch.setattr(scorer.importlib.util, "find_spec", lambda name: None if name == "pygame" else real(name))
    res = invoke("eval", "flappy", "--score", str(DATA / "correct.md"))
    assert res.exit_code == 1 and "pip install 'r1run[eval]'" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.llama
def test_a_model_that_is_not_downloaded_gets_the_download_hint(home: Path) -> None:
    res = invoke("eval", "flappy", "deepseek-r1", "--quant", "UD-IQ1_S", "--seeds", "3407")
    assert res.exit_code != 0 and "not downloaded" in res.stderr and "r1run download" in res.stderr


@pytest.mark.llama
def test_the_whole_path_on_smollm2_generates_extracts_plays_and_tabulates(home: Path, smollm2: Path) -> None:
    # SmolLM2 (135M) never closes a python block within a few hundred tokens; a grammar makes the real model write
    # a short, closed one (its words chosen by the model) so the answer goes on to a headless run.
    grammar = 'root ::= "```python\\nimport pygame\\nprint(\\"" [a-z ]{1,24} "\\")\\n```\\n"'
    res = invoke("eval", "flappy", str(smollm2), "--seeds", "3407", "-n", "64", "--json", "--", "--grammar", grammar)
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    (result,) = data["results"]
    assert result["settings"]["temperature"] == 0.6 and result["settings"]["ctx"] == 8192
    assert result["settings"]["cache_type_k"] == "q4_0" and result["published"] is None
    (game,) = result["games"]
    assert game["seed"] == 3407 and game["gen_tps"] > 0 and game["tokens"] > 0
    answer = Path(game["answer"]).read_text()
    assert answer.startswith("```python\nimport pygame\nprint(") and Path(data["saved"]).is_file()
    assert len(game["runs"]) == 6 and all(r["frames"] == 0 and not r["timed_out"] for r in game["runs"])
    items = {i["name"]: i for i in game["items"]}
    assert game["total"] == 0.5 and items["Pygame"]["score"] == 0.5  # played: it imports pygame, opens no window
    assert items["Runnable"]["score"] == 0 and "opened no window" in items["Runnable"]["evidence"]
    log = Path(game["log"]).read_text()  # begins with the command: the prompt in the model's format, the seed
    assert "-s 3407 -p '<|im_start|>user\nCreate a Flappy Bird game in Python." in log and "-ctk q4_0" in log
    # unconstrained, as a user runs it: a table (SmolLM2 writes no game)
    human = invoke("eval", "flappy", str(smollm2), "--seeds", "3408", "-n", "32")
    assert human.exit_code == 0, human.stderr
    assert "pass@1 0.00/10" in human.stdout and "Runnable" in human.stdout and "gen t/s" in human.stdout
