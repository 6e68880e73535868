"""KTO: sessions labelled desirable or undesirable by the outcome signals each importer reads, the validation gate
for labelled rows, the loss (half of each weight while the model is its reference), a local job that learns, survives
kill -9 and repeats the uninterrupted run, and the hosted providers that refuse kto before uploading anything."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from model_customization.datasets.build import build_dataset, build_dataset_from_request, read_split
from model_customization.datasets.inspect import inspect_dataset
from model_customization.datasets.outcomes import OutcomeLabeller
from model_customization.errors import UserError
from model_customization.jobs.orchestrator import check_job, start_job, wait_for_job
from model_customization.memory.detect import iter_memory
from model_customization.memory.records import Conversation
from model_customization.operations.datasets import BuildDatasetRequest
from model_customization.providers.local.train import latest_checkpoint
from model_customization.providers.registry import providers
from waiting import kill_worker_after

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SAMPLES = REPO.parent / "shared" / "fixtures" / "memory-samples"


def _signals(paths: list[Path], labeller: OutcomeLabeller | None = None) -> dict[str, list]:
    """file name -> the (label, signal) of each conversation imported from it."""
    labeller = labeller or OutcomeLabeller()
    found: dict[str, list] = {}
    for item in iter_memory(paths):
        if isinstance(item, Conversation):
            found.setdefault(Path(item.source_file).name, []).append(labeller.signal(item))
    return found


# --- labels from each importer's signal ---------------------------------------------------------------------------
def test_claude_code_rejections_interruptions_errors_and_clean_sessions():
    found = _signals([FIXTURES / "claude_code", SAMPLES / "claude-code" / "marot-spotter", SAMPLES / "claude-code" / "d-kimuson"])
    assert found["short.jsonl"] == [(False, "rejected")]  # the user refused a proposed tool call
    assert found["subagent.jsonl"] == [(False, "interrupted"), (False, "interrupted")]
    assert found["tool_heavy.jsonl"] == [(False, "interrupted")]
    assert found["agent-a7be2f0.jsonl"] == [(False, "error")]
    # A Claude Code session with no error, rejection or interruption: its clean run is the signal.
    assert found["agent-test-hash-123.jsonl"] == [(True, "clean_session")]
    assert Counter(found["fe5e1c67-53e7-4862-81ae-d0e013e3270b.jsonl"]) == {(False, "error"): 4, (True, "clean_session"): 2}
    # Switched off, only explicit judgements label: these sessions have none.
    quiet = _signals([SAMPLES / "claude-code" / "marot-spotter"], OutcomeLabeller(transcript_signals=False))
    assert all(s is None for signals in quiet.values() for s in signals)


def test_a_cass_memory_verdict_outranks_the_transcript():
    found = _signals([FIXTURES / "cass_memory"])
    # 1af7fc5e has a failed tool call, but cass-memory recorded success for the session: desirable.
    assert (True, "verdict") in found["1af7fc5e-8455-4414-9ccd-011d40f70b2a.jsonl"]
    assert Counter(found["5c0375b4-57a5-4f26-b12d-d022ee4e51b7.jsonl"])[(False, "verdict")] == 3


def test_rewards_against_the_threshold_the_caller_sets():
    tau = FIXTURES / "trajectories" / "tau_bench_retail_trials.jsonl"
    assert _signals([tau])[tau.name] == [(True, "reward"), (False, "reward")]  # rewards 1.0 and 0.0
    assert _signals([tau], OutcomeLabeller(reward_threshold=0.0))[tau.name] == [(True, "reward"), (True, "reward")]
    assert _signals([tau], OutcomeLabeller(reward_threshold=1.5))[tau.name] == [(False, "reward"), (False, "reward")]
    toolbench = _signals([SAMPLES / "agent-trajectories-labeled" / "toolbench"])
    assert toolbench["G1_answer_10_ChatGPT_DFS_woFilter_w2.json"] == [(True, "reward")]
    assert toolbench["G2_answer_127_ChatGPT_DFS_woFilter_w2.json"] == [(False, "reward")]  # gave up


def test_chatgpt_thumbs_label_the_rated_conversation(tmp_path):
    sample = SAMPLES / "chatgpt-export" / "samples" / "node-js-network-libraries.json"
    conversation = json.loads(sample.read_text(encoding="utf-8"))
    export = tmp_path / "export"
    export.mkdir()
    (export / "conversations.json").write_text(json.dumps([conversation]), encoding="utf-8")
    rated = {"id": "fb-1", "conversation_id": conversation["id"], "message_id": conversation["current_node"], "user_id": "u", "content": "{}"}
    for thumbs, expected in (("thumbs_down", [(False, "rating")]), ("thumbs_up", [(True, "rating")])):
        (export / "message_feedback.json").write_text(json.dumps([{**rated, "rating": thumbs}]), encoding="utf-8")
        assert _signals([export / "conversations.json"]) == {"conversations.json": expected}


def test_a_kto_file_keeps_its_labels_through_a_build(ws):
    kto_file = SAMPLES / "sharegpt" / "llamafactory_kto_en_demo.json"
    labels = Counter(row["label"] for row in json.loads(kto_file.read_text(encoding="utf-8")))
    built = build_dataset(ws, [kto_file], method="kto", near_duplicate_threshold=None)
    stored = Counter(row["label"] for split in ("train", "validation", "test") for row in read_split(ws, built.dataset_id, split))
    assert stored == labels
    card = ws.store.datasets.get(built.dataset_id)["card"]
    assert card["method"] == "kto" and card["format"] == "chat_kto"
    assert card["kto"]["desirable"] == labels[True] and card["kto"]["undesirable"] == labels[False]
    assert card["kto"]["decided_by"] == {"desirable": {"rating": labels[True]}, "undesirable": {"rating": labels[False]}}
    markdown = (Path(ws.store.datasets.get(built.dataset_id)["path"]) / "card.md").read_text(encoding="utf-8")
    assert f"- desirable: {labels[True]} (rating: {labels[True]})" in markdown


def test_sessions_without_a_signal_are_dropped_with_a_counted_reason(ws):
    plain = SAMPLES / "openai-finetune" / "mlteam-ai_toy_chat_fine_tuning.jsonl"
    with pytest.raises(UserError, match="no_outcome_signal.: 10.*kto build needs sessions with an outcome signal"):
        build_dataset(ws, [plain], method="kto")
    tau = FIXTURES / "trajectories" / "tau_bench_retail_trials.jsonl"
    built = build_dataset(ws, [plain, tau], method="kto", validation_fraction=0, test_fraction=0)
    assert built.dropped == {"no_outcome_signal": 10}
    rows = read_split(ws, built.dataset_id, "train")
    assert sorted(row["label"] for row in rows) == [False, True]
    assert all(row["messages"][-1]["role"] == "assistant" for row in rows)
    with pytest.raises(UserError, match="example_mode='conversation'"):
        build_dataset(ws, [tau], method="kto", example_mode="turns")


def test_the_threshold_and_transcript_switch_reach_the_build_from_the_request(ws):
    tau = str(FIXTURES / "trajectories" / "tau_bench_retail_trials.jsonl")
    request = BuildDatasetRequest(paths=[tau], method="kto", reward_threshold=0.0, validation_fraction=0, test_fraction=0)
    built = build_dataset_from_request(ws, request)
    assert [row["label"] for row in read_split(ws, built.dataset_id, "train")] == [True, True]
    assert built.card["kto"]["reward_threshold"] == 0.0
    marot = str(SAMPLES / "claude-code" / "marot-spotter")
    with pytest.raises(UserError, match="no_outcome_signal"):
        build_dataset_from_request(ws, BuildDatasetRequest(paths=[marot], method="kto", transcript_signals=False))


def test_dataset_build_on_the_command_line_takes_kto_and_the_threshold(ws):
    from typer.testing import CliRunner

    from model_customization.cli import app

    tau = str(FIXTURES / "trajectories" / "tau_bench_retail_trials.jsonl")
    args = ["dataset", "build", tau, "--method", "kto", "--reward-threshold", "1.5", "--validation-fraction", "0", "--test-fraction", "0", "--json", "--home", str(ws.settings.home)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    dataset_id = json.loads(result.output)["dataset_id"]
    assert [row["label"] for row in read_split(ws, dataset_id, "train")] == [False, False]


# --- the validation gate --------------------------------------------------------------------------------------------
def test_validation_accepts_labelled_rows_and_names_the_line_of_each_error(ws, tmp_path):
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "label": True}
    rows = [dict(good, messages=[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]) for i in range(12)]
    rows[4] = {**rows[4], "label": "yes"}
    rows[7] = {"messages": [{"role": "user", "content": "only a question"}], "label": False}
    path = tmp_path / "kto.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    report = inspect_dataset(ws, path=str(path), provider="openai", model="gpt-4.1-mini")
    errors = {(f["line"], f["code"]) for f in report["findings"] if f["severity"] == "error"}
    assert errors == {(5, "invalid_label"), (8, "example_missing_assistant_message")}
    assert not any(f["code"] == "unrecognized_key" for f in report["findings"]), "label is a known key of a kto row"
    path.write_text("".join(json.dumps(dict(good, messages=[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}])) + "\n" for i in range(12)), encoding="utf-8")
    assert inspect_dataset(ws, path=str(path), provider="openai", model="gpt-4.1-mini")["valid"]


# --- the loss ---------------------------------------------------------------------------------------------------
def _style_sessions(path: Path, n: int = 48) -> Path:
    """LLaMA-Factory's KTO format: desirable answers follow a fixed triage line, undesirable ones ramble."""
    rows = []
    for i in range(n):
        good = i % 3 != 0  # two desirable to one undesirable
        answer = f"TRIAGE severity=high component=svc-{i} action=page" if good else f"Hmm, svc-{i} might be fine, hard to say really."
        rows.append({"messages": [{"role": "user", "content": f"Classify: [svc-{i}] ERROR disk {i}% full"}, {"role": "assistant", "content": answer}], "label": good})
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def test_kto_starts_at_half_of_each_weight_and_learns_the_labels(ws, tiny_model, tmp_path):
    built = build_dataset(ws, [_style_sessions(tmp_path / "sessions.json")], method="kto")
    train = read_split(ws, built.dataset_id, "train")
    n_desirable = sum(row["label"] for row in train)
    n_undesirable = len(train) - n_desirable
    with pytest.raises(UserError, match="method='kto'"):
        start_job(ws, built.dataset_id, base_model=str(tiny_model), method="dpo")
    # One batch per step holds the whole training split, so step one averages over every example.
    hp = {"epochs": 4, "batch_size": 64, "learning_rate": 5e-3, "desirable_weight": 2.0, "undesirable_weight": 1.0, "kto_beta": 0.5}
    job = start_job(ws, built.dataset_id, base_model=str(tiny_model), method="kto", hyperparameters=hp)
    done = wait_for_job(ws, job["job_id"], timeout=300, poll=0.2)
    assert done["status"] == "succeeded", done
    losses = [m["train_loss"] for m in ws.store.jobs.metrics(job["job_id"]) if m["train_loss"] is not None]
    # Before the first update the model is its own reference: every implied reward is 0, z0 = max(0, KL 0) = 0, and
    # each term is weight x (1 - sigmoid(0)) = weight / 2.
    expected = 0.5 * (2.0 * n_desirable + 1.0 * n_undesirable) / len(train)
    assert abs(losses[0] - expected) < 1e-4, (losses[0], expected)
    assert losses[-1] < losses[0] - 0.05, losses
    assert done["validation_loss"] is not None
    events = [e["message"] for e in check_job(ws, job["job_id"], events=50)["events"]]
    assert any("scoring the labelled sessions with the starting model (the KTO reference)" in m for m in events)
    assert any(f"{n_desirable} desirable and {n_undesirable} undesirable sessions" in m for m in events)


def test_kto_loss_of_the_reference_with_a_mismatched_kl_pair(tiny_model):
    """The objective itself, on a model equal to its reference: every term is half its weight whatever the batch."""
    import torch
    from transformers import AutoModelForCausalLM

    from model_customization.providers.local.hyperparameters import parse_hyperparameters
    from model_customization.providers.local.objectives import for_method
    from model_customization.providers.local.train import load_tokenizer

    hp = parse_hyperparameters({"desirable_weight": 1.5, "undesirable_weight": 0.5})
    tokenizer = load_tokenizer(tiny_model, hp, str(tiny_model))
    objective = for_method("kto", tokenizer, hp, "cpu")
    rows = [
        {"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i} " * (i + 1)}], "label": i % 2 == 0}
        for i in range(5)
    ]
    items, truncated, skipped = objective.prepare(rows)
    assert (len(items), truncated, skipped) == (5, 0, 0)
    # Each mismatched sequence is this prompt with another example's answer.
    assert all(item.mismatched.input_ids != item.session.input_ids for item in items)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    objective.prepare_reference(model, items, 2)
    loss, _ = objective.loss(model, items)
    assert loss.item() == pytest.approx(0.5 * (1.5 * 3 + 0.5 * 2) / 5, abs=1e-5)
    with pytest.raises(UserError, match="method='kto'"):
        objective.prepare([{"messages": rows[0]["messages"]}])


# --- a local job end to end, killed and resumed -------------------------------------------------------------------
def test_a_kto_job_killed_mid_run_resumes_and_repeats_the_uninterrupted_run(ws, tiny_model, tmp_path):
    built = build_dataset(ws, [_style_sessions(tmp_path / "sessions.json", n=40)], method="kto")
    hp = {"epochs": 2, "batch_size": 2, "checkpoint_interval_steps": 3, "lora_dropout": 0.1, "seed": 5, "learning_rate": 5e-3}
    reference = start_job(ws, built.dataset_id, base_model=str(tiny_model), method="kto", hyperparameters=hp)
    interrupted = start_job(ws, built.dataset_id, base_model=str(tiny_model), method="kto", hyperparameters=hp)
    reference_done = wait_for_job(ws, reference["job_id"], timeout=300, poll=0.2)
    assert reference_done["status"] == "succeeded", reference_done
    job_id = interrupted["job_id"]
    kill_worker_after(ws, job_id, 5)
    assert ws.store.jobs.get(job_id)["step"] < reference_done["total_steps"]
    checkpoint = latest_checkpoint(ws, job_id)
    assert checkpoint is not None
    done = wait_for_job(ws, job_id, timeout=300, poll=0.2)  # polling notices the dead worker and resumes the job
    assert done["status"] == "succeeded", done
    events = [e["message"] for e in check_job(ws, job_id, events=80)["events"]]
    assert any(f"resumed from checkpoint at step {int(checkpoint.name[5:])}" in m for m in events)

    def losses(job: str) -> list[tuple[int, float | None, float | None]]:
        return [(m["step"], m["train_loss"], m["validation_loss"]) for m in ws.store.jobs.metrics(job)]

    a, b = losses(reference["job_id"]), losses(job_id)
    assert [row[0] for row in a] == [row[0] for row in b]
    for (_, train_a, val_a), (_, train_b, val_b) in zip(a, b, strict=True):
        for x, y in ((train_a, train_b), (val_a, val_b)):
            assert (x is None) == (y is None) and (x is None or abs(x - y) <= 1e-5 * max(1.0, abs(x))), (a, b)
    from safetensors.torch import load_file

    tensors_a = load_file(Path(ws.store.models.get(reference_done["model_id"])["path"]) / "adapter_model.safetensors")
    tensors_b = load_file(Path(ws.store.models.get(done["model_id"])["path"]) / "adapter_model.safetensors")
    assert all((tensors_a[k] - tensors_b[k]).abs().max().item() < 1e-5 for k in tensors_a)


# --- providers ------------------------------------------------------------------------------------------------------
def test_hosted_providers_without_kto_refuse_it_before_anything_is_uploaded(ws, tmp_path, monkeypatch):
    built = build_dataset(ws, [_style_sessions(tmp_path / "sessions.json")], method="kto")
    # Keys present, so that no refusal is about a missing key; any network call would fail (nothing listens).
    for name in ("OPENAI_API_KEY", "TOGETHER_API_KEY", "AZURE_OPENAI_API_KEY", "HF_TOKEN"):
        monkeypatch.setenv(name, "sk-test-not-real-0000000000000000")
    refused = []
    for provider in providers("train"):
        if provider.runs_locally or "kto" in provider.methods:
            continue
        with pytest.raises(UserError) as error:
            start_job(ws, built.dataset_id, provider=provider.name, method="kto")
        assert "kto" in str(error.value), (provider.name, str(error.value))
        refused.append(provider.name)
    assert {"openai", "together", "bedrock"} <= set(refused)
    assert ws.store.jobs.all() == []
    local = {p.name: p for p in providers("train")}
    assert "kto" in local["local"].methods and "kto" in local["hf-jobs"].methods


@pytest.mark.slow
def test_hf_jobs_trains_kto_with_our_own_worker(ws, tiny_model, tmp_path, monkeypatch):
    """hf-jobs runs this package's worker, so a kto job trains there the same way and comes back as a local model."""
    from hf_jobs_fake import serving

    token = "hf_test_SECRET_token_0123456789abcdef"
    monkeypatch.setenv("MODEL_CUSTOMIZATION_POLL_BACKOFF_SECONDS", "0")
    built = build_dataset(ws, [_style_sessions(tmp_path / "sessions.json", n=24)], method="kto")
    hp = {"epochs": 1, "batch_size": 8, "learning_rate": 5e-3, "max_seq_length": 128, "flavor": "cpu-basic", "undesirable_weight": 2.0}
    with serving(monkeypatch, token, tmp_path / "fake-hub"):
        job = start_job(ws, built.dataset_id, provider="hf-jobs", method="kto", base_model=str(tiny_model), hyperparameters=hp, confirm_cost_usd=100)
        deadline = time.monotonic() + 300
        while (done := check_job(ws, job["job_id"]))["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, [e["message"] for e in ws.store.jobs.events(job["job_id"], None)]
            time.sleep(1.0)
    events = [e["message"] for e in ws.store.jobs.events(job["job_id"], None)]
    assert done["status"] == "succeeded", events
    assert any("the KTO reference" in m for m in events), events
    adapter = Path(ws.store.models.get(done["model_id"])["path"])
    trained = json.loads((adapter / "training.json").read_text())
    assert trained["method"] == "kto" and trained["hyperparameters"]["undesirable_weight"] == 2.0
    losses = [m["train_loss"] for m in ws.store.jobs.metrics(job["job_id"]) if m["train_loss"] is not None]
    n = len(read_split(ws, built.dataset_id, "train"))
    assert len(losses) == done["total_steps"] == -(-n // 8)
