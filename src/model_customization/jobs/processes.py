"""Detached worker processes: start one, tell whether it still lives, stop it for good."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path


# The worker (providers/local/worker.py) reports to the object this names ("module:Class"), so the provider package
# never imports the orchestrator that stands above it.
QUEUE_REPORTER = "model_customization.jobs.orchestrator:QueueReporter"


def spawn_worker(home: Path, job_id: str, log_path: Path, launcher: str | None = None) -> int:
    """Start the job's worker, detached; `launcher` (e.g. "accelerate launch --num_processes 2") runs it as several
    processes, one per GPU, which the worker joins into one data-parallel run."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")  # nothing may be downloaded at run time
    env.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [*(shlex.split(launcher) if launcher else [sys.executable]), "-m", "model_customization.providers.local.worker", str(home), job_id, "--reporter", QUEUE_REPORTER],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own session: it outlives the server and can be killed as a group
            close_fds=True,
        )
    return process.pid


def _reap(pid: int) -> None:
    # A worker we started ourselves stays a zombie (and looks alive) until we collect its exit status.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


# How long worker_alive waits for a process's arguments to appear: between the end of its exec (when Popen returns)
# and the new program's start the kernel shows an empty /proc/PID/cmdline (here: 0.03 ms typically, 12 ms at worst).
EXEC_SETTLE_SECONDS = 0.5


def worker_alive(pid: int | None, job_id: str) -> bool:
    """True while the process runs and is still the worker of this job (pids get reused).

    A worker launched a moment ago can still be in its exec, its arguments not set up yet: its command line reads
    empty, which must not count as gone (a dispatcher would take it for a dead worker and launch a second one)."""
    if not pid:
        return False
    _reap(pid)
    deadline = time.monotonic() + EXEC_SETTLE_SECONDS
    while True:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return False
        if state in (b"Z", b"X"):
            return False
        if cmdline or time.monotonic() > deadline:  # still empty after that: a kernel thread, not a worker
            return job_id.encode() in cmdline.split(b"\0")
        time.sleep(0.002)


def stop_worker(pid: int, job_id: str, grace_seconds: float = 5.0) -> bool:
    """Stop the worker's process group: SIGTERM, then SIGKILL after the grace period. True once it is gone."""
    if not worker_alive(pid, job_id):
        return True
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not worker_alive(pid, job_id):
                return True
            time.sleep(0.05)
    return not worker_alive(pid, job_id)
