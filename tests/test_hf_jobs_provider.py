"""The hf-jobs provider against a fake Hugging Face Hub (tests/hf_jobs_fake.py): the Jobs API and repository
storage over HTTP on 127.0.0.1, every job spec and job body checked with huggingface_hub's own types. A job there
really runs: our wheel is built, shipped through the repository, installed into the job's folder, and its worker
trains the tiny model in a subprocess, so the adapter that comes back is a real one that prompt_model loads.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hf_jobs_fake import SpecViolation, check_job_info, check_job_spec, serving
from model_customization.errors import UserError
from model_customization.jobs import orchestrator
from model_customization.jobs.spending import ConfirmationNeeded

TOKEN = "hf_test_SECRET_token_0123456789abcdef"


@pytest.fixture
def hub(ws, tmp_path, monkeypatch):
    monkeypatch.setenv("MODEL_CUSTOMIZATION_POLL_BACKOFF_SECONDS", "0")
    with serving(monkeypatch, TOKEN, tmp_path / "fake-hub") as fake:
        yield fake


@pytest.fixture
def dataset_id(ws, demo_paths) -> str:
    from model_customization.datasets.build import build_dataset

    return build_dataset(ws, demo_paths).dataset_id


FAST = {"epochs": 1, "batch_size": 8, "learning_rate": 5e-3, "flavor": "cpu-basic"}


def _events(ws, job_id: str) -> list[str]:
    return [e["message"] for e in ws.store.jobs.events(job_id, None)]


def _wait(ws, job_id: str, statuses: tuple[str, ...], timeout: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = orchestrator.check_job(ws, job_id)
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, (job, _events(ws, job_id)[-30:])
        time.sleep(0.5)


def test_a_job_trains_remotely_and_its_adapter_comes_back_as_a_local_model(ws, hub, dataset_id, tiny_model):
    job = orchestrator.start_job(ws, dataset_id, provider="hf-jobs", base_model=str(tiny_model), hyperparameters=FAST, confirm_cost_usd=100)
    assert job["status"] in ("queued", "running", "validating") and job["remote_id"]
    assert job["quote"]["flavor"] == "cpu-basic" and "assumption" in job["quote"]
    done = _wait(ws, job["job_id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded", "\n".join(_events(ws, job["job_id"]))
    model = ws.store.models.get(done["model_id"])
    assert (model["provider"], model["job_id"], model["dataset_id"], model["base_model"]) == ("local", job["job_id"], dataset_id, str(tiny_model))
    assert (Path(model["path"]) / "adapter_model.safetensors").is_file()
    metrics = ws.store.jobs.metrics(job["job_id"])
    assert metrics and all(m["train_loss"] is not None for m in metrics if m["validation_loss"] is None)
    print("\n".join(_events(ws, job["job_id"])))
