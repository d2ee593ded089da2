"""Trying again after a passing failure: the one backoff r1run waits by."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Up to `attempts` tries; waits base, 2*base, 4*base, ... capped at `cap`, each one +-25% so that
    clients that failed together do not come back together."""

    attempts: int = 3
    base: float = 0.5
    cap: float = 30.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failure in a row (1, 2, ...)."""
        wait = min(self.cap, self.base * 2 ** (failures - 1))
        return wait * (0.75 + random.random() / 2)


def retrying(call: Callable[[], T], *, transient: Callable[[Exception], bool], backoff: Backoff = Backoff(),
             sleep: Callable[[float], None] = time.sleep) -> T:
    """`call()`, tried again after each failure that `transient` accepts, `backoff.attempts` tries in all;
    any other failure, or the last one, is raised."""
    failures = 0
    while True:
        try:
            return call()
        except Exception as exc:
            failures += 1
            if failures >= backoff.attempts or not transient(exc):
                raise
            sleep(backoff.delay(failures))
