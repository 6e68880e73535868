"""Training methods and schedules on a tiny model: DPO, early stopping that keeps the best adapter, and the
refusal of a start_job call that names no dataset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from model_customization.datasets.build import build_dataset, read_split
from model_customization.errors import UserError
from model_customization.jobs.orchestrator import start_job, wait_for_job


def _preference_file(path: Path, n: int = 40) -> Path:
    """Pairs where the preferred reply follows a fixed triage format and the other one rambles."""
    lines = []
    for i in range(n):
        lines.append(
            json.dumps(
                {
                    "input": {"messages": [{"role": "user", "content": f"Classify: [svc-{i}] ERROR disk {i}% full"}]},
                    "preferred_output": [{"role": "assistant", "content": f"TRIAGE severity=high component=svc-{i} action=page"}],
                    "non_preferred_output": [{"role": "assistant", "content": f"Hmm, svc-{i} might be fine, hard to say."}],
                }
            )
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_dpo_starts_at_log_2_and_learns_the_preference(ws, tiny_model, tmp_path):
    built = build_dataset(ws, [_preference_file(tmp_path / "pairs.jsonl")], method="dpo")
    with pytest.raises(UserError, match="method='dpo'"):
        start_job(ws, built.dataset_id, base_model=str(tiny_model))
    job = start_job(ws, built.dataset_id, base_model=str(tiny_model), method="dpo", hyperparameters={"epochs": 3, "batch_size": 4, "learning_rate": 5e-3})
    done = wait_for_job(ws, job["job_id"], timeout=300, poll=0.2)
    assert done["status"] == "succeeded", done
    losses = [m["train_loss"] for m in ws.store.jobs.metrics(job["job_id"]) if m["train_loss"] is not None]
    # Before the first update the tuned model is the reference, so every margin is 0 and the loss is log 2.
    assert abs(losses[0] - math.log(2)) < 1e-4, losses[0]
    assert min(losses[-3:]) < losses[0] - 0.05, losses
    assert done["validation_loss"] is not None and done["validation_loss"] < math.log(2)
    assert ws.store.models.get(done["model_id"])["kind"] == "tuned"


def test_early_stopping_stops_and_keeps_the_best_adapter(ws, tiny_model, demo_paths):
    built = build_dataset(ws, [p for p in demo_paths if "openai" in str(p)] or demo_paths)
    # A learning rate this high makes the validation loss rise soon after it first falls.
    hp = {"epochs": 3, "batch_size": 4, "learning_rate": 0.5, "warmup_fraction": 0.0, "eval_interval_steps": 2, "early_stopping_patience": 2}
    done = wait_for_job(ws, start_job(ws, built.dataset_id, base_model=str(tiny_model), hyperparameters=hp)["job_id"], timeout=300, poll=0.2)
    assert done["status"] == "succeeded", done
    assert done["step"] < done["total_steps"], "it stopped early"
    events = [e["message"] for e in ws.store.jobs.events(done["job_id"], None)]
    assert any(m.startswith("early stopping at step") for m in events)
    validations = [m["validation_loss"] for m in ws.store.jobs.metrics(done["job_id"]) if m["validation_loss"] is not None]
    assert validations[-1] > min(validations) and done["validation_loss"] == pytest.approx(min(validations))

    # The saved adapter is the best one: its validation loss, computed afresh, is the minimum recorded.
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from model_customization.providers.local.hyperparameters import parse_hyperparameters
    from model_customization.providers.local.objectives import SupervisedObjective
    from model_customization.providers.local.train import load_tokenizer

    parsed = parse_hyperparameters(hp)
    tokenizer = load_tokenizer(tiny_model, parsed, str(tiny_model))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32), ws.store.models.get(done["model_id"])["path"])
    objective = SupervisedObjective(tokenizer, parsed, "cpu")
    items, _, _ = objective.prepare(read_split(ws, built.dataset_id, "validation"))
    assert objective.validation_loss(model, items, parsed.batch_size) == pytest.approx(min(validations), rel=1e-4)


def test_start_job_without_dataset_or_resume_is_refused(ws):
    with pytest.raises(UserError, match="needs a dataset_id.*resume"):
        start_job(ws)
    assert ws.store.jobs.all() == []
