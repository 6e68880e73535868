"""Waiting in tests for something another process does (a worker's step, a killed worker going away)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any, Callable


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, poll: float = 0.05) -> Any:
    """predicate()'s first truthy value; fails the test naming `what` when none came within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)
    return value


def kill_worker_after(ws: Any, job_id: str, step: int, timeout: float = 240) -> int:
    """kill -9 a local job's worker once it has passed `step` (so a checkpoint exists) and wait until it is gone;
    returns its pid."""
    from model_customization.jobs.processes import worker_alive

    wait_for(lambda: (ws.store.jobs.get(job_id)["step"] or 0) >= step, timeout, f"step {step}")
    pid = ws.store.jobs.get(job_id)["worker_pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not worker_alive(pid, job_id), 30, "the killed worker to go")
    return pid
