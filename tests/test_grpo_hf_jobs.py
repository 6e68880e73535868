"""GRPO on Hugging Face Jobs: the remote worker is ours, so a GRPO job ships its suite cases as a dataset, trains
there and brings back its reward metrics and adapter (against the fake Hub of tests/hf_jobs_fake.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_customization.jobs import orchestrator
from test_hf_jobs_provider import _events, _wait, held, hub  # noqa: F401 - fixtures and helpers of the hf-jobs tests

FAST_GRPO = {"epochs": 1, "batch_size": 1, "group_size": 3, "max_new_tokens": 6, "holdout_fraction": 0.25, "learning_rate": 5e-3, "max_seq_length": 128, "flavor": "cpu-basic"}


def _suite(tmp_path: Path) -> Path:
    cases = [{"messages": [{"role": "user", "content": f"Say a word, number {i}."}], "contains": ["a", "e", "o"]} for i in range(4)]
    path = tmp_path / "words.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    return path


def test_a_grpo_quote_counts_the_sampled_answers_and_uploads_nothing(ws, held, tiny_model, tmp_path):  # noqa: F811
    quote = orchestrator.start_job(ws, provider="hf-jobs", method="grpo", suite=str(_suite(tmp_path)), base_model=str(tiny_model), hyperparameters=FAST_GRPO, dry_run=True)["quote"]
    assert quote["provider"] == "hf-jobs" and quote["trained_tokens"] == 3 * 3 * 6 * 3 and quote["estimated_cost_usd"] > 0
    assert held.uploaded_paths() == [] and ws.store.jobs.all() == []


@pytest.mark.slow
def test_a_grpo_job_trains_remotely_and_its_rewards_come_back(ws, hub, tiny_model, tmp_path):  # noqa: F811
    job = orchestrator.start_job(ws, provider="hf-jobs", method="grpo", suite=str(_suite(tmp_path)), base_model=str(tiny_model), hyperparameters=FAST_GRPO, confirm_cost_usd=100)
    done = _wait(ws, job["job_id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded", "\n".join(_events(ws, job["job_id"]))
    assert any("remote: GRPO on 3 prompts x 3 answers" in m for m in _events(ws, job["job_id"]))
    metrics = sorted(ws.store.jobs.metrics(job["job_id"]), key=lambda m: m["step"])
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert all(m["reward_mean"] is not None and 0 <= m["reward_mean"] <= 1 and m["kl"] is not None for m in metrics)
    assert done["rewards"]["reward_mean"] == metrics[-1]["reward_mean"]
    model = ws.store.models.get(done["model_id"])
    assert json.loads((Path(model["path"]) / "training.json").read_text())["method"] == "grpo"
