"""A training worker without the training, for tests of the queue across several servers (tests/test_multi_server.py).

Used as a job's launcher (`python tests/quick_worker.py`), so dispatch starts it exactly as it starts the real one:
`python tests/quick_worker.py -m model_customization.providers.local.worker HOME JOB_ID --reporter ...`. It runs the real worker
entry point (lease heartbeat, failure handling, dispatching the next job) with `train_job` replaced by a stand-in
that claims the job like the real one, appends "job pid host start end" to $QUICK_WORKER_LOG, and succeeds after
$QUICK_WORKER_SECONDS.
"""

from __future__ import annotations

import os
import sys
import time


def quick_train_job(ws, job_id: str) -> None:
    from model_customization.store.status import this_host

    if not ws.store.jobs.claim(job_id, os.getpid()):
        return  # as the real worker: cancelled or taken before it got going
    started = time.time()
    time.sleep(float(os.environ.get("QUICK_WORKER_SECONDS", "0.5")))
    ended = time.time()
    with open(os.environ["QUICK_WORKER_LOG"], "a") as log:  # O_APPEND: whole short lines from several processes
        log.write(f"{job_id} {os.getpid()} {this_host()} {started} {ended}\n")
    ws.store.jobs.finish(job_id, "succeeded", step=1, total_steps=1)


if __name__ == "__main__":
    import model_customization.providers.local.train as train
    from model_customization.providers.local import worker

    train.train_job = quick_train_job
    sys.exit(worker.main(sys.argv[sys.argv.index("model_customization.providers.local.worker") + 1 :]))
