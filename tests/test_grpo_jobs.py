"""GRPO jobs end to end: a suite's cases as prompts and its checks as the reward, group advantages, the KL to the
reference, metrics per step, held-out cases for evaluate, exact resume after kill -9, and the refusals that come
before anything is stored or uploaded."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from model_customization.errors import UserError
from model_customization.jobs.orchestrator import check_job, start_job, wait_for_job
from model_customization.providers.local.grpo import group_advantages
from model_customization.providers.local.train import latest_checkpoint
from waiting import kill_worker_after

# Random text from the tiny model contains some of these letters and not others: rewards differ within a group.
LETTERS = ["a", "e", "o", "s", "t", "n"]


def _suite(tmp_path: Path, count: int = 10) -> Path:
    cases = [
        {"id": f"c{i}", "messages": [{"role": "user", "content": f"Say something with vowels, number {i}."}], "contains": LETTERS[i % 3 :], "regex": "[aeiou]{2}"}
        for i in range(count)
    ]
    path = tmp_path / "letters.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    return path


def _history(ws, job_id: str) -> list[tuple[int, float, float, float, float]]:
    rows = [m for m in ws.store.jobs.metrics(job_id) if m["train_loss"] is not None]
    return [(m["step"], m["train_loss"], m["reward_mean"], m["reward_std"], m["kl"]) for m in sorted(rows, key=lambda m: m["step"])]


def _validations(ws, job_id: str) -> list[tuple[int, float]]:
    return [(m["step"], m["validation_reward"]) for m in ws.store.jobs.metrics(job_id) if m["validation_reward"] is not None]


# --- advantages ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rewards", [[0.0, 1.0, 0.5, 0.25], [0.9, 0.1], [1.0, 1.0, 0.0, 0.0, 0.0, 0.7], [0.3] * 5])
def test_advantages_have_zero_mean_and_unit_spread_within_each_group(rewards):
    advantages = group_advantages(rewards)
    assert abs(sum(advantages)) < 1e-9
    spread = math.sqrt(sum(a * a for a in advantages) / len(advantages))
    if len(set(rewards)) == 1:
        assert advantages == [0.0] * len(rewards)  # all alike: nothing to prefer
    else:
        assert spread == pytest.approx(1.0, abs=1e-3)
        # Order kept: a better answer in the group always gets the larger advantage.
        assert all((a > b) == (ra > rb) for a, ra in zip(advantages, rewards, strict=True) for b, rb in zip(advantages, rewards, strict=True) if ra != rb)


# --- refusals before anything is stored --------------------------------------------------------------------------
def test_grpo_needs_a_reward_and_checks_its_hyperparameters_first(ws, tmp_path):
    with pytest.raises(UserError, match="needs its reward"):
        start_job(ws, method="grpo")
    with pytest.raises(UserError, match="suite and agent give the reward of a method='grpo' job"):
        start_job(ws, "ds-x", suite=str(_suite(tmp_path)))
    with pytest.raises(UserError, match="group_size"):
        start_job(ws, method="grpo", suite=str(_suite(tmp_path)), hyperparameters={"group_size": 1})
    with pytest.raises(UserError, match="not a 0-1 metric"):
        start_job(ws, method="grpo", suite=str(_suite(tmp_path)), hyperparameters={"reward_weights": {"answer_tokens": 1}})
    from model_customization.providers.registry import get_provider

    with pytest.raises(UserError, match="apply to method='grpo' only"):
        get_provider("local").parse_hyperparameters("sft", {"group_size": 4})
    assert get_provider("local").parse_hyperparameters("grpo", None)["learning_rate"] == 1e-4
    with pytest.raises(UserError, match="no suite"):
        start_job(ws, method="grpo", agent="nobody")
    rubric_only = tmp_path / "rubric.jsonl"
    rubric_only.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}], "rubric": "be kind"}) + "\n")
    with pytest.raises(UserError, match="nothing in this case gives a reward"):
        start_job(ws, method="grpo", suite=str(rubric_only))
    assert ws.store.jobs.all() == [] and ws.store.datasets.all() == []


@pytest.mark.parametrize("provider", ["openai", "together", "bedrock"])
def test_hosted_providers_refuse_grpo_before_reading_or_uploading(ws, tmp_path, provider, monkeypatch):
    from model_customization.providers.registry import get_provider

    trainer = get_provider(provider)

    def must_not_be_called(*args, **kwargs):
        raise AssertionError("nothing may be checked, uploaded or submitted for a method the provider lacks")

    for step in ("check_available", "quote", "submit", "find_existing"):
        monkeypatch.setattr(type(trainer), step, must_not_be_called, raising=False)
    with pytest.raises(UserError, match=r"not 'grpo'; local.* can"):
        start_job(ws, method="grpo", provider=provider, suite=str(_suite(tmp_path)))
    assert ws.store.jobs.all() == [] and ws.store.datasets.all() == []


# --- end to end on the embedded model ----------------------------------------------------------------------------
def test_a_small_grpo_job_trains_on_the_suite_and_holds_cases_out(ws, tmp_path):
    from model_customization.evaluation.runner import evaluate
    from model_customization.jobs.plots import loss_curve_png

    suite = _suite(tmp_path, 7)
    hp = {"epochs": 1, "batch_size": 2, "group_size": 3, "max_new_tokens": 6, "holdout_fraction": 0.29, "validation_fraction": 0.15, "seed": 1, "learning_rate": 1e-4}
    dry = start_job(ws, method="grpo", suite=str(suite), hyperparameters=hp, dry_run=True)
    assert dry["status"] == "dry_run" and dry["quote"]["prompts"] == 4 and dry["quote"]["held_out_cases"] == 2 and dry["quote"]["steps"] == 2
    from model_customization.datasets.build import get_dataset

    assert get_dataset(ws, dry["dataset_id"])["counts"] == {"train": 4, "validation": 1, "test": 2}
    started = start_job(ws, method="grpo", suite=str(suite), hyperparameters=hp)
    assert started["method"] == "grpo" and started["dataset_id"] == dry["dataset_id"]
    done = wait_for_job(ws, started["job_id"], timeout=900, poll=0.2)
    assert done["status"] == "succeeded", done
    history = _history(ws, done["job_id"])
    assert [h[0] for h in history] == [1, 2]
    for _, loss, mean, spread, kl in history:
        assert 0.0 <= mean <= 1.0 and spread >= 0.0 and kl >= 0.0 and math.isfinite(loss)
    # The validation case is answered at the start and after each step (2 steps: about ten times per job is each step).
    validations = _validations(ws, done["job_id"])
    assert [s for s, _ in validations] == [0, 1, 2] and all(0.0 <= v <= 1.0 for _, v in validations)
    assert done["rewards"] == {
        "reward_mean": history[-1][2], "reward_std": history[-1][3], "kl": history[-1][4],
        "validation_reward": validations[-1][1], "best_validation_reward": max(v for _, v in validations),
    }
    assert loss_curve_png(ws, done["job_id"]).startswith(b"\x89PNG")
    messages = [e["message"] for e in check_job(ws, done["job_id"], events=50)["events"]]
    assert any("GRPO on 4 prompts x 3 answers" in m for m in messages)
    assert any("scores the 2 held-out cases" in m for m in messages)
    # The adapter kept is the best validation step's, the later one on a tie.
    best_step = max(validations, key=lambda sv: (sv[1], sv[0]))[0]
    kept = {0: "keeping the starting adapter", 2: "keeping the last step's adapter"}.get(best_step, f"keeping the adapter of step {best_step}")
    assert any(m.startswith(kept) for m in messages), messages
    # The held-out cases are the dataset's test split; evaluate scores them by their own checks.
    report = evaluate(ws, done["dataset_id"], ["SmolLM2-135M-Instruct", done["model_id"]], split="test", max_tokens=6)
    assert report["cases"] == 2 and "contains" in report["summary"][done["model_id"]] and "regex_match" in report["summary"][done["model_id"]]


def test_grpo_resumed_after_kill_9_repeats_the_uninterrupted_rewards_and_losses(ws, tiny_model, tmp_path):
    suite = _suite(tmp_path, 5)
    # Small on purpose (each sampled token is a forward pass): 3 prompts x 2 epochs, one prompt per step, and one
    # validation case answered at the start and after every step (the best step's adapter is restored on resume).
    hp = {
        "epochs": 2, "batch_size": 1, "group_size": 4, "max_new_tokens": 6, "holdout_fraction": 0.2, "validation_fraction": 0.2, "seed": 5,
        "checkpoint_interval_steps": 2, "lora_dropout": 0.1, "learning_rate": 5e-3,
    }
    reference = start_job(ws, method="grpo", suite=str(suite), base_model=str(tiny_model), hyperparameters=hp)
    interrupted = start_job(ws, method="grpo", suite=str(suite), base_model=str(tiny_model), hyperparameters=hp)
    # One local job at a time: the second waits in the queue as any other job does.
    assert interrupted["status"] == "queued" and interrupted["queue_position"] == 1
    reference_done = wait_for_job(ws, reference["job_id"], timeout=300, poll=0.2)
    assert reference_done["status"] == "succeeded", reference_done
    total = reference_done["total_steps"]
    assert total == 6

    job_id = interrupted["job_id"]
    kill_worker_after(ws, job_id, 3)
    assert ws.store.jobs.get(job_id)["step"] < total, "the kill must land mid-training"
    checkpoint = latest_checkpoint(ws, job_id)
    assert checkpoint is not None and int(checkpoint.name[5:]) >= 2

    check_job(ws, job_id)  # notices the dead worker and resumes the job from its checkpoint
    done = wait_for_job(ws, job_id, timeout=300, poll=0.2)
    assert done["status"] == "succeeded", done
    assert any(f"resumed from checkpoint at step {int(checkpoint.name[5:])}" in e["message"] for e in check_job(ws, job_id, events=60)["events"])
    a, b = _history(ws, reference["job_id"]), _history(ws, job_id)
    assert [h[0] for h in b] == list(range(1, total + 1)), "each step recorded once, none lost or doubled"
    for row_a, row_b in zip(a, b, strict=True):
        for x, y in zip(row_a[1:], row_b[1:], strict=True):
            assert abs(x - y) <= 1e-5 * max(1.0, abs(x)), (row_a, row_b)
    va, vb = _validations(ws, reference["job_id"]), _validations(ws, job_id)
    assert [s for s, _ in vb] == [s for s, _ in va] == list(range(total + 1)), "each validation recorded once"
    assert all(abs(x - y) <= 1e-6 for (_, x), (_, y) in zip(va, vb, strict=True))

    def kept(job):
        return [e["message"] for e in check_job(ws, job, events=80)["events"] if e["message"].startswith("keeping ")]

    assert kept(job_id) == kept(reference["job_id"]) and len(kept(job_id)) == 1
    # The rewards moved: the groups were not all alike, so the run was a real policy-gradient run.
    assert any(h[3] > 0 for h in a) and any(h[4] > 0 for h in a[1:])


def test_grpo_continuing_a_tuned_adapter_measures_kl_from_that_adapter(ws, tiny_model, tmp_path, demo_paths):
    from model_customization.datasets.build import build_dataset

    sft_data = build_dataset(ws, [p for p in demo_paths if "openai" in str(p)] or demo_paths).dataset_id
    sft = wait_for_job(ws, start_job(ws, sft_data, base_model=str(tiny_model), hyperparameters={"epochs": 1, "batch_size": 8, "learning_rate": 5e-2})["job_id"], timeout=300, poll=0.2)
    assert sft["status"] == "succeeded", sft
    hp = {"epochs": 1, "batch_size": 1, "group_size": 3, "max_new_tokens": 6, "holdout_fraction": 0.0, "learning_rate": 5e-3, "lora_dropout": 0.0}
    job = start_job(ws, method="grpo", suite=str(_suite(tmp_path, 2)), base_model=str(tiny_model), continue_from=sft["model_id"], hyperparameters=hp)
    done = wait_for_job(ws, job["job_id"], timeout=300, poll=0.2)
    assert done["status"] == "succeeded", done
    history = _history(ws, done["job_id"])
    # At the first step the policy is the tuned adapter itself: the KL to the reference is nothing. (Against the bare
    # base, which the SFT job moved away from, it would not be.)
    assert history[0][4] == pytest.approx(0.0, abs=1e-6) and len(history) == 2
    assert any("which is also the KL reference" in e["message"] for e in check_job(ws, done["job_id"], events=30)["events"])
