"""Jobs outlive the process that started them, state survives a restart, and a dead worker is noticed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from mcp import Client

from model_customization.datasets.build import build_dataset
from model_customization.jobs.orchestrator import check_job, start_job, wait_for_job
from model_customization.jobs.processes import worker_alive
from model_customization.server.app import build_server
from model_customization.workspace import Workspace


@pytest.fixture
def anyio_backend():
    return "asyncio"


def _cli(*args: str, home, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "model_customization", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "MODEL_CUSTOMIZATION_HOME": str(home)},
    )


@pytest.mark.anyio
async def test_job_started_by_a_process_that_exits_keeps_running_and_a_new_server_sees_it(ws, tiny_model, demo_paths):
    built = _cli("dataset", "build", *map(str, demo_paths), "--json", home=ws.settings.home)
    assert built.returncode == 0, built.stderr
    dataset_id = json.loads(built.stdout)["dataset_id"]

    started = _cli("job", "start", dataset_id, "--base-model", str(tiny_model), "--epochs", "4", "--batch-size", "4", "--json", home=ws.settings.home)
    assert started.returncode == 0, started.stderr
    job_id = json.loads(started.stdout)["job_id"]

    # The CLI process is gone; the worker it launched is not.
    fresh = Workspace.open(ws.settings.home)
    pid = fresh.store.jobs.get(job_id)["worker_pid"]
    assert worker_alive(pid, job_id)
    assert os.getsid(pid) == pid  # its own session: not tied to the terminal or server that started it

    # A server started afterwards on the same home sees the job, the dataset and the live progress.
    async with Client(build_server(ws=fresh)) as client:
        listed = (await client.call_tool("list_jobs", {})).structured_content["jobs"]
        assert [j["job_id"] for j in listed] == [job_id]
        datasets = (await client.call_tool("list_datasets", {})).structured_content["datasets"]
        assert [d["dataset_id"] for d in datasets] == [dataset_id]
        final = wait_for_job(fresh, job_id, timeout=240, poll=0.5)
        assert final["status"] == "succeeded", final
        checked = (await client.call_tool("check_job", {"job_id": job_id})).structured_content
        assert checked["model_id"] == final["model_id"] and checked["step"] == checked["total_steps"]


def test_worker_error_is_recorded_as_failure(ws, tiny_model, demo_paths):
    """A worker that cannot train (every answer cut off by max_seq_length) fails with the reason, not silently."""
    built = build_dataset(ws, demo_paths)
    job = start_job(ws, built.dataset_id, base_model=str(tiny_model), hyperparameters={"max_seq_length": 16})
    summary = wait_for_job(ws, job["job_id"], timeout=120, poll=0.3)
    assert summary["status"] == "failed"
    assert "max_seq_length=16" in summary["error"]
