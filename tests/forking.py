"""A fork refused the way a library's at-fork guard refuses it, for the tests of the build's and the gate's pools."""

from __future__ import annotations

import os
from typing import Any


def refuse_every_second_fork(monkeypatch: Any) -> list[int]:
    """Make os.fork raise on every second call (as filelock does while another thread changes a descriptor's
    ownership); returns the list that grows by one item per fork tried."""
    real_fork, forks = os.fork, []

    def every_second_refused() -> int:
        forks.append(1)
        if len(forks) % 2 == 0:
            raise RuntimeError("os.fork is unsafe while filelock is changing descriptor ownership")
        return real_fork()

    monkeypatch.setattr(os, "fork", every_second_refused)
    return forks
