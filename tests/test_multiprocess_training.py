"""One job across several processes (what `accelerate launch` does with one process per GPU), checked on CPU with
torch's own launcher and the gloo backend: two processes with one batch each per step take exactly the steps of
one process accumulating two batches per step."""

from __future__ import annotations

import sys
from pathlib import Path

from model_customization.datasets.build import build_dataset
from model_customization.jobs.orchestrator import start_job, wait_for_job
from model_customization.workspace import Workspace


def test_two_processes_train_like_one_process_accumulating_two_batches(ws, tiny_model, demo_paths, monkeypatch):
    dataset_id = build_dataset(ws, [p for p in demo_paths if "openai" in str(p)] or demo_paths).dataset_id
    hp = {"epochs": 1, "batch_size": 4, "lora_dropout": 0.0, "seed": 5}
    single = wait_for_job(ws, start_job(ws, dataset_id, base_model=str(tiny_model), hyperparameters={**hp, "gradient_accumulation_steps": 2})["job_id"], timeout=240, poll=0.2)
    assert single["status"] == "succeeded", single

    monkeypatch.setenv("MODEL_CUSTOMIZATION_WORKER_LAUNCHER", f"{sys.executable} -m torch.distributed.run --standalone --nproc-per-node 2")
    launched = Workspace.open(ws.settings.home)
    job = start_job(launched, dataset_id, base_model=str(tiny_model), hyperparameters=hp)
    parallel = wait_for_job(launched, job["job_id"], timeout=300, poll=0.2)
    log = (ws.settings.jobs_dir / job["job_id"] / "worker.log").read_text()[-3000:]
    assert parallel["status"] == "succeeded", (parallel, log)
    assert any("2 processes" in e["message"] for e in launched.store.jobs.events(job["job_id"], None))

    assert parallel["total_steps"] == single["total_steps"]
    losses_single = [m["train_loss"] for m in ws.store.jobs.metrics(single["job_id"]) if m["train_loss"] is not None]
    losses_parallel = [m["train_loss"] for m in ws.store.jobs.metrics(job["job_id"]) if m["train_loss"] is not None]
    assert len(losses_parallel) == parallel["total_steps"], "one process reports, once per step"
    for a, b in zip(losses_single, losses_parallel):
        assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), (a, b)

    from safetensors.torch import load_file

    def adapter(model_id: str):
        return load_file(Path(ws.store.models.get(model_id)["path"]) / "adapter_model.safetensors")

    a, b = adapter(single["model_id"]), adapter(parallel["model_id"])
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
