"""r1run.hub's offline mode (huggingface_hub's semantics, read per call) and r1run.retry's backoff."""

from __future__ import annotations

import pytest

from r1run import hub
from r1run.retry import Backoff, retrying


@pytest.mark.parametrize("value, offline", [
    ("1", True), ("ON", True), ("yes", True), ("True", True),
    ("0", False), ("false", False), ("off", False), ("", False),
])
def test_offline_reads_hf_hub_offline_as_huggingface_hub_does(monkeypatch, value, offline):
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hub.offline() is offline


def test_offline_falls_back_to_transformers_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert not hub.offline()
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    assert hub.offline()


def test_retrying_waits_longer_each_time_and_gives_up():
    waits: list[float] = []
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("reset")
        return "ok"

    assert retrying(flaky, transient=lambda e: isinstance(e, ConnectionError), backoff=Backoff(attempts=3, base=1.0),
                    sleep=waits.append) == "ok"
    assert len(waits) == 2 and 0.75 <= waits[0] <= 1.25 and 1.5 <= waits[1] <= 2.5
    with pytest.raises(ConnectionError):
        retrying(lambda: (_ for _ in ()).throw(ConnectionError("down")), transient=lambda e: True,
                 backoff=Backoff(attempts=2, base=0.0), sleep=waits.append)
    with pytest.raises(ValueError):  # not transient: raised at once
        retrying(lambda: int("x"), transient=lambda e: False, sleep=lambda s: pytest.fail("slept"))


def test_backoff_is_capped():
    assert Backoff(base=1.0, cap=30.0).delay(10) <= 30 * 1.25
