"""Entry point of a detached training worker: `python -m model_customization.providers.local.worker HOME JOB_ID
[--reporter module:Class]`.

It runs in its own process session, so the server can stop or restart while training goes on; all it has to say
goes to the ledger and to its JobReporter. Any failure ends the job as failed with the error text, never as a
silent stop.

The reporter is named by --reporter ("module:Class", given by the process that launched the worker:
jobs/processes.py names the orchestrator's queue). The worker knows only the narrow JobReporter interface,
so this package does not import the orchestrator above it. Run by hand without one, it records a failure itself
and starts nothing else.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from typing import Any, Protocol

from model_customization.errors import UserError
from model_customization.workspace import Workspace

class JobReporter(Protocol):
    def job_failed(self, ws: Workspace, job_id: str, message: str) -> None:
        """Record that the job ended in failure (once: a job already ended keeps its status)."""

    def slot_freed(self, ws: Workspace) -> None:
        """This worker is done: another queued job may start."""


class LedgerReporter:
    """A reporter for a worker started by hand: the failure goes to the ledger, nothing else is started."""

    def job_failed(self, ws: Workspace, job_id: str, message: str) -> None:
        if ws.store.jobs.finish(job_id, "failed", error=message):
            ws.store.jobs.add_event(job_id, f"failed: {message}", "error")

    def slot_freed(self, ws: Workspace) -> None:
        return None


def load_reporter(target: str | None) -> JobReporter:
    """The reporter a "module:Class" names; without one, a LedgerReporter."""
    if not target or not target.strip():
        return LedgerReporter()
    module_name, _, class_name = target.strip().partition(":")
    return getattr(importlib.import_module(module_name), class_name)()


def main(argv: list[str], reporter: JobReporter | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_customization.providers.local.worker")
    parser.add_argument("home")
    parser.add_argument("job_id")
    parser.add_argument("--reporter", default=None, help="module:Class of the JobReporter (default: record failures only)")
    arguments = parser.parse_args(argv)
    job_id = arguments.job_id
    ws = Workspace.open(arguments.home)
    try:
        reporter = reporter or load_reporter(arguments.reporter)
    except Exception:  # noqa: BLE001 - a bad reporter setting must still leave the job's failure on record
        traceback.print_exc()
        reporter = LedgerReporter()
    try:
        from model_customization.providers.local.train import train_job

        with _lease(ws, job_id):
            train_job(ws, job_id)
        return 0
    except BaseException as error:  # noqa: BLE001 - the ledger must learn of every way a worker can end
        traceback.print_exc()
        message = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
        reporter.job_failed(ws, job_id, message)
        return 1
    finally:
        if os.environ.get("RANK", "0") == "0":
            _start_next(ws, reporter)


def _lease(ws: Workspace, job_id: str) -> Any:
    """Renew the job's lease while it trains: servers sharing the ledger from other machines judge this worker by it.
    Should the job be cancelled from another machine, or taken over after the lease ran out, this worker stops."""
    import contextlib

    if os.environ.get("RANK", "0") != "0":
        return contextlib.nullcontext()

    def lost(job) -> None:
        import signal

        from model_customization.store.status import this_host

        why = "it was cancelled" if job is None or job["status"] == "cancelled" else f"it is now held by process {job['worker_pid']} on {job['worker_host']}"
        if job is not None:
            ws.store.jobs.add_event(job_id, f"worker process {os.getpid()} on {this_host()} stops: {why}", "warning")
        leader = os.getpgrp() == os.getpid()  # started by dispatch: its own process group, launcher children included
        (os.killpg if leader else os.kill)(os.getpid(), signal.SIGTERM)

    return ws.store.jobs.lease_heartbeat(job_id, os.getpid(), on_lost=lost)


def _start_next(ws: Workspace, reporter: JobReporter) -> None:
    # This job's slot is free now: the next queued job starts without waiting for anyone to poll.
    try:
        reporter.slot_freed(ws)
    except Exception:  # noqa: BLE001 - the next check_job or server start dispatches again
        traceback.print_exc()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
