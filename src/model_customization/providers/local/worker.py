"""Entry point of a detached training worker: `python -m model_customization.providers.local.worker HOME JOB_ID`.

It runs in its own process session, so the server can stop or restart while training goes on; all it has to say
goes to the ledger. Any failure ends the job as failed with the error text, never as a silent stop.
"""

from __future__ import annotations

import os
import sys
import traceback


def main(argv: list[str]) -> int:
    home, job_id = argv
    from model_customization.workspace import Workspace

    ws = Workspace.open(home)
    try:
        from model_customization.providers.local.train import train_job

        with _lease(ws, job_id):
            train_job(ws, job_id)
        return 0
    except BaseException as error:  # noqa: BLE001 - the ledger must learn of every way a worker can end
        traceback.print_exc()
        from model_customization.errors import UserError

        message = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
        if ws.ledger.finish_job(job_id, "failed", error=message):
            ws.ledger.add_event(job_id, f"failed: {message}", "error")
        return 1
    finally:
        if os.environ.get("RANK", "0") == "0":
            _start_next(ws)


def _lease(ws, job_id: str):
    """Renew the job's lease while it trains: servers sharing the ledger from other machines judge this worker by it.
    Should the job be cancelled from another machine, or taken over after the lease ran out, this worker stops."""
    import contextlib

    if os.environ.get("RANK", "0") != "0":
        return contextlib.nullcontext()

    def lost(job) -> None:
        import signal

        from model_customization.jobs.ledger import this_host

        why = "it was cancelled" if job is None or job["status"] == "cancelled" else f"it is now held by process {job['worker_pid']} on {job['worker_host']}"
        if job is not None:
            ws.ledger.add_event(job_id, f"worker process {os.getpid()} on {this_host()} stops: {why}", "warning")
        leader = os.getpgrp() == os.getpid()  # started by dispatch: its own process group, launcher children included
        (os.killpg if leader else os.kill)(os.getpid(), signal.SIGTERM)

    return ws.ledger.lease_heartbeat(job_id, os.getpid(), on_lost=lost)


def _start_next(ws) -> None:
    # This job's slot is free now: launch the next queued job without waiting for anyone to poll.
    try:
        from model_customization.jobs.orchestrator import dispatch

        dispatch(ws)
    except Exception:  # noqa: BLE001 - the next check_job or server start dispatches again
        traceback.print_exc()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
