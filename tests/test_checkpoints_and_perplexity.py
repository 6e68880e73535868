"""Checkpoints of a local job as models (<job_id>@step-N, <ft-id>@step-N) and the perplexity of local models.

Two tiny jobs run in this process on the same single-turn data and seed with a constant learning rate: job A for two
epochs, job B for one. A's end-of-epoch-1 checkpoint (step K) must then be exactly B's final adapter, and A's final
adapter something else. A is made to keep its checkpoints the way a job cancelled while saving its adapter does.
"""

from __future__ import annotations

import json
import math
import random
import string
from pathlib import Path

import pytest

from model_customization.errors import NotFoundError, UserError

HP = {"epochs": 2, "batch_size": 4, "learning_rate": 5e-3, "lr_scheduler": "constant", "warmup_fraction": 0.0, "checkpoint_interval_steps": 1000, "seed": 1}


def _memory_file(path: Path, n: int = 48) -> Path:
    """Single-turn chats with unrelated random words (no near-duplicates), answered in a fixed pattern to learn."""
    rng = random.Random(7)
    lines = []
    for i in range(n):
        words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 8))) for _ in range(rng.randint(3, 7))]
        lines.append(json.dumps({"messages": [
            {"role": "user", "content": f"Tag these words: {' '.join(words)}"},
            {"role": "assistant", "content": "TAGS: " + ", ".join(w.upper() for w in words)},
        ]}))  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _train_in_process(ws, job_id: str, dataset_id: str, base: str, hyperparameters: dict) -> dict:
    from model_customization.providers.local.train import train_job

    ws.store.jobs.add({"id": job_id, "provider": "local", "base_model": base, "dataset_id": dataset_id, "method": "sft",
                       "hyperparameters": hyperparameters, "status": "queued"})  # fmt: skip
    train_job(ws, job_id)
    return ws.store.jobs.get(job_id)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, model_cache, tiny_model):
    from model_customization.datasets.build import build_dataset
    from model_customization.workspace import Workspace

    home = tmp_path_factory.mktemp("checkpoints-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODEL_CUSTOMIZATION_MODEL_CACHE", str(model_cache))
        patch.setenv("MODEL_CUSTOMIZATION_HOME", str(home))
        ws = Workspace.open(home)
        dataset_id = build_dataset(ws, [_memory_file(home / "tags.jsonl")]).dataset_id
        # B: one epoch. A: two epochs, whose only checkpoint is the one at the end of epoch 1.
        job_b = _train_in_process(ws, "job-ckptb", dataset_id, str(tiny_model), {**HP, "epochs": 1})
        assert job_b["status"] == "succeeded", job_b
        # A succeeds; the adapter at the end of its first epoch stays on disk (without what only resuming needs).
        job_a = _train_in_process(ws, "job-ckpta", dataset_id, str(tiny_model), HP)
        assert job_a["status"] == "succeeded", job_a
        yield ws, dataset_id, job_a, job_b
        ws.store.close()


def test_a_checkpoint_is_a_model_equal_to_the_adapter_trained_that_far(trained, tiny_model):
    import torch
    from safetensors.torch import load_file

    from model_customization.providers.chat import chat_with_provider, resolve_chat_model
    from model_customization.providers.local.checkpoints import list_checkpoints
    from model_customization.providers.local.inference import _load, resolve_model

    ws, dataset_id, job_a, job_b = trained
    steps_per_epoch = job_b["step"]
    assert job_a["step"] == 2 * steps_per_epoch and job_a["model_id"] == "ft-ckpta"
    listed = list_checkpoints(ws, "job-ckpta")
    assert [c["step"] for c in listed] == [steps_per_epoch], listed  # epoch 1's end; epoch 2's is the final adapter
    kept = sorted(p.name for p in Path(listed[0]["path"]).iterdir())
    assert "adapter.safetensors" in kept and "optimizer.pt" not in kept and "rng.pt" not in kept
    name = f"job-ckpta@step-{steps_per_epoch}"
    assert listed[0]["model"] == name and listed[0]["train_loss"] is not None and listed[0]["epoch"] == 1

    # Weights: A's checkpoint at step K is B's final adapter (same data order, seed and constant learning rate).
    saved = load_file(Path(listed[0]["path"]) / "adapter.safetensors")
    final_b = load_file(Path(ws.store.models.get("ft-ckptb")["path"]) / "adapter_model.safetensors")
    assert {k.replace(".default", "") for k in saved} == set(final_b)
    for key, value in saved.items():
        assert torch.allclose(value, final_b[key.replace(".default", "")], atol=1e-6), key

    # Routing and resolution: not in the registry, so the name falls through to the local provider.
    assert resolve_chat_model(ws, name) == ("local", name)
    assert resolve_chat_model(ws, "ft-ckpta@step-3") == ("local", "ft-ckpta@step-3")
    resolved = resolve_model(ws, name)
    assert resolved.model_id == name and resolved.checkpoint.step == steps_per_epoch
    assert resolve_model(ws, f"ft-ckpta@step-{steps_per_epoch:07d}").model_id == name  # a tuned model's id names its job

    ids = torch.tensor([[1, 200, 300, 400, 500, 600]])
    with torch.no_grad():
        logits = {m: _load(ws, resolve_model(ws, m))[0](input_ids=ids).logits for m in (name, "ft-ckptb", "ft-ckpta", str(tiny_model))}
    assert torch.allclose(logits[name], logits["ft-ckptb"], atol=1e-4)
    assert not torch.allclose(logits[name], logits["ft-ckpta"], atol=1e-3)  # trained a further epoch
    assert not torch.allclose(logits[name], logits[str(tiny_model)], atol=1e-3)  # it learned something

    messages = [{"role": "user", "content": "Tag these words: alpha beta"}]
    answer = chat_with_provider(ws, "local", name, messages, max_tokens=8)
    assert answer["model"] == name and answer["provider"] == "local"
    assert answer["text"] == chat_with_provider(ws, "local", "ft-ckptb", messages, max_tokens=8)["text"]

    # The evaluation takes a checkpoint like any model, under its canonical name.
    from model_customization.evaluation.runner import evaluate

    report = evaluate(ws, dataset_id, [f"ft-ckpta@step-{steps_per_epoch}", "ft-ckptb"], limit=2, max_tokens=6)
    assert report["models"] == [name, "ft-ckptb"]
    scores = {m: {k: v for k, v in report["summary"][m].items() if "latency" not in k} for m in report["models"]}
    assert scores[name] == scores["ft-ckptb"] and scores[name]["token_f1"] is not None

    from model_customization.registry import model_lineage

    lineage = model_lineage(ws, name)
    assert lineage["model"]["kind"] == "checkpoint" and lineage["model"]["step"] == steps_per_epoch
    assert lineage["job"]["id"] == "job-ckpta" and lineage["dataset"]["id"] == dataset_id and len(lineage["sources"]) == 1
    assert [e["eval_id"] for e in lineage["evaluations"]] == [report["id"]]


def test_unknown_checkpoints_are_refused_with_the_ones_that_exist(trained):
    from model_customization.providers.local.checkpoints import list_checkpoints
    from model_customization.providers.local.inference import resolve_model

    ws, _, _, job_b = trained
    k = job_b["step"]
    with pytest.raises(NotFoundError, match=rf"No checkpoint at step 999 of job job-ckpta\. Checkpoints of job-ckpta now: job-ckpta@step-{k}\."):
        resolve_model(ws, "job-ckpta@step-999")
    with pytest.raises(NotFoundError, match="final adapter \\(ft-ckptb\\)"):
        resolve_model(ws, "job-ckptb@step-1")  # a finished job's checkpoints were removed
    with pytest.raises(NotFoundError, match="No job or tuned model 'job-nope'"):
        resolve_model(ws, "job-nope@step-1")
    with pytest.raises(NotFoundError, match="not found"):
        list_checkpoints(ws, "job-nope")
    assert list_checkpoints(ws, "job-ckptb") == []


def _cases(ws, dataset_id: str, split: str) -> list[tuple[list[dict], str]]:
    from model_customization.datasets.build import read_split
    from model_customization.datasets.examples import prompt_and_reference

    return [prompt_and_reference(row) for row in read_split(ws, dataset_id, split)]


def test_reference_nll_matches_a_direct_computation_and_batches_exactly(trained, tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from model_customization.evaluation.perplexity import perplexity, reference_log_likelihoods

    ws, dataset_id, _, _ = trained
    # A multi-turn prompt too: its earlier assistant turn is context, not scored.
    cases = _cases(ws, dataset_id, "test")[:3] + [
        ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
          {"role": "user", "content": "Tag: x y"}], "TAGS: X, Y"),
    ]  # fmt: skip
    one_by_one = reference_log_likelihoods(ws, str(tiny_model), cases, batch_size=1)
    batched = reference_log_likelihoods(ws, str(tiny_model), cases, batch_size=3)
    assert [r["reference_tokens"] for r in one_by_one] == [r["reference_tokens"] for r in batched]
    for single, together in zip(one_by_one, batched):
        assert abs(single["nll"] - together["nll"]) < 1e-4, (single, together)

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    for (prompt, reference), result in zip(cases, one_by_one):
        # By hand: the assistant turn is the text between the generation prompt and the end of the full rendering.
        start = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": reference}], tokenize=False)
        assert full.startswith(start) and "<|im_end|>" in full[len(start):]
        context = tokenizer(start, add_special_tokens=False)["input_ids"]
        answer = tokenizer(full[len(start):], add_special_tokens=False)["input_ids"]
        ids = torch.tensor([context + answer])
        with torch.no_grad():
            log_probs = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
        expected = -sum(log_probs[len(context) + i - 1, token].item() for i, token in enumerate(answer))
        assert result["reference_tokens"] == len(answer)
        assert result["nll"] == pytest.approx(expected, rel=1e-4)
    total_nll, total_tokens = sum(r["nll"] for r in one_by_one), sum(r["reference_tokens"] for r in one_by_one)
    assert perplexity(one_by_one) == pytest.approx(math.exp(total_nll / total_tokens))
    assert perplexity(one_by_one) > 1000  # a random model over a ~49k vocabulary

    with pytest.raises(UserError, match="no reference tokens|No reference tokens"):
        perplexity([])
    with pytest.raises(UserError, match="needs a reference"):
        reference_log_likelihoods(ws, str(tiny_model), [([{"role": "user", "content": "x"}], None)])


def test_a_tuned_model_finds_its_data_more_likely_and_matches_its_validation_loss(trained, tiny_model):
    from model_customization.evaluation.perplexity import perplexity, reference_log_likelihoods

    ws, dataset_id, _, job_b = trained
    for split in ("train", "test"):
        cases = _cases(ws, dataset_id, split)
        base = perplexity(reference_log_likelihoods(ws, str(tiny_model), cases))
        tuned = perplexity(reference_log_likelihoods(ws, "ft-ckptb", cases))
        assert tuned < base * 0.8, (split, tuned, base)
    # Single-turn examples: the validation loss training recorded is the log-perplexity of the validation split.
    validation = perplexity(reference_log_likelihoods(ws, "ft-ckptb", _cases(ws, dataset_id, "validation"), batch_size=4))
    assert math.log(validation) == pytest.approx(job_b["validation_loss"], rel=1e-4)
