"""The curated build end to end: redaction before storage, filters, duplicates, per-turn and DPO datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_customization.datasets.build import build_dataset, read_split
from model_customization.datasets.filters import ConversationFilter
from model_customization.datasets.inspect import inspect_dataset
from model_customization.errors import UserError
from model_customization.jobs.orchestrator import start_job

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "memory-samples"
TRAJECTORIES = Path(__file__).resolve().parent / "fixtures" / "trajectories"

SEEDED = {
    "aws": "AKIAIOSFODNN7EXAMPLQ",
    "github": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "email": "dana.kowalski@example-mail.com",
    "card": "4111 1111 1111 1111",
    "phone": "+44 20 7946 0958",
    "ip": "203.0.113.77",
    "password": "hunter2-Blue-42",
    "home": "/home/dkowalski/projects",
}


def _seeded_memory(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(12):
        lines.append(
            {
                "messages": [
                    {"role": "user", "content": f"Case {i}: my key is {SEEDED['aws']} and token {SEEDED['github']}; mail me at {SEEDED['email']}."},
                    {"role": "assistant", "content": f"Rotate {SEEDED['aws']} now. I will write to {SEEDED['email']} about ticket {i * 17}."},
                    {"role": "user", "content": f"Card {SEEDED['card']}, phone {SEEDED['phone']}, server {SEEDED['ip']}, repo in {SEEDED['home']}/app{i}, db postgres://admin:{SEEDED['password']}@db.internal/app"},
                    {"role": "assistant", "content": f"Noted case {i}: never paste cards or passwords into chat; the repo path is fine."},
                ]
            }
        )
    path = folder / "leaky.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_no_seeded_secret_or_personal_value_survives_into_any_split(ws, tmp_path):
    _seeded_memory(tmp_path / "mem")
    result = build_dataset(ws, [tmp_path / "mem"], near_duplicate_threshold=None)
    folder = Path(ws.store.datasets.get(result.dataset_id)["path"])
    stored = "".join((folder / name).read_text() for name in ("train.jsonl", "validation.jsonl", "test.jsonl", "card.json", "card.md"))
    for kind, value in SEEDED.items():
        assert value not in stored, kind
    assert "dkowalski" not in stored
    redactions = result.card["redactions"]
    # Per conversation: aws 2, github 1, email 2, card 1, phone 1, ip 1, url password 1, home path 1.
    assert redactions["email"] == 24 and redactions["card"] == 12 and redactions["phone"] == 12 and redactions["ip"] == 12
    assert redactions["url_password"] == 12 and redactions["home_path"] == 12
    assert redactions["secret"] == 36
    example = read_split(ws, result.dataset_id, "train")[0]["messages"]
    # The same value gets the same placeholder everywhere in its conversation.
    assert "<SECRET_1>" in example[0]["content"] and "<SECRET_1>" in example[1]["content"]
    assert "<EMAIL_1>" in example[0]["content"] and "<EMAIL_1>" in example[1]["content"]


def test_without_redaction_the_values_stay(ws, tmp_path):
    _seeded_memory(tmp_path / "mem")
    result = build_dataset(ws, [tmp_path / "mem"], redact=False, near_duplicate_threshold=None)
    assert SEEDED["email"] in json.dumps(read_split(ws, result.dataset_id, "train"))
    assert result.card["redactions"] == {}


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared samples missing")
def test_outcome_and_tool_filters_drop_with_their_reason(ws):
    claude = SAMPLES / "claude-code"
    everything = build_dataset(ws, [claude], near_duplicate_threshold=None)
    successful = build_dataset(ws, [claude], filters=ConversationFilter(outcome="successful"), near_duplicate_threshold=None)
    failed = build_dataset(ws, [claude], filters=ConversationFilter(outcome="failed"), near_duplicate_threshold=None, test_fraction=0, validation_fraction=0)
    n_all = sum(everything.counts.values())
    assert sum(successful.counts.values()) + sum(failed.counts.values()) == n_all
    assert successful.dropped["filter:outcome"] == sum(failed.counts.values()) > 0
    without = build_dataset(ws, [claude], filters=ConversationFilter(tool_calls="without"), near_duplicate_threshold=None, test_fraction=0, validation_fraction=0)
    assert without.dropped.get("filter:has_tool_calls", 0) > 0
    assert all(not m.get("tool_calls") for e in read_split(ws, without.dataset_id, "train") for m in e["messages"])


def test_turns_mode_gives_one_example_per_assistant_turn(ws, tmp_path):
    line = {"messages": [
        {"role": "user", "content": "first question about the deploy"},
        {"role": "assistant", "content": "first answer about the deploy"},
        {"role": "user", "content": "second question about rollbacks"},
        {"role": "assistant", "content": "second answer about rollbacks"},
    ]}
    folder = tmp_path / "mem"
    folder.mkdir()
    (folder / "a.jsonl").write_text("".join(json.dumps({"messages": [{**m, "content": f"{m['content']} #{i}"} for m in line["messages"]]}) + "\n" for i in range(12)))
    whole = build_dataset(ws, [folder], near_duplicate_threshold=None, validation_fraction=0, test_fraction=0)
    turns = build_dataset(ws, [folder], example_mode="turns", near_duplicate_threshold=None, validation_fraction=0, test_fraction=0)
    assert whole.counts["train"] == 12 and turns.counts["train"] == 24
    examples = read_split(ws, turns.dataset_id, "train")
    lengths = sorted(len(e["messages"]) for e in examples)
    assert lengths == [2] * 12 + [4] * 12
    long_ones = [e for e in examples if len(e["messages"]) == 4]
    assert all(e["messages"][1]["weight"] == 0 for e in long_ones)  # the earlier turn is context, learned elsewhere
    assert inspect_dataset(ws, dataset_id=turns.dataset_id)["valid"]


def test_near_duplicates_are_removed_and_counted(ws, tmp_path):
    base = "The nightly backup of the orders database finished after forty two minutes and uploaded eleven archives to cold storage without errors"
    lines = [{"messages": [{"role": "user", "content": "status of last night?"}, {"role": "assistant", "content": base + (" today" if i % 2 else "")}]} for i in range(2)]
    lines += [{"messages": [{"role": "user", "content": f"unrelated question {i} about {w}"}, {"role": "assistant", "content": f"a distinct answer on {w} number {i}"}]} for i, w in enumerate(["dns", "tls", "cdn", "ssh", "vpn", "nfs", "smtp", "ldap", "ntp", "snmp"])]
    path = tmp_path / "near.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = build_dataset(ws, [path])
    assert result.dropped == {"near_duplicate": 1}
    assert result.card["duplicates_removed"] == {"exact": 0, "near": 1}
    assert sum(result.counts.values()) == 11


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared samples missing")
def test_dpo_dataset_from_preference_files_and_rewarded_attempts(ws, tiny_model):
    result = build_dataset(ws, [SAMPLES / "openai-finetune" / "dpo", TRAJECTORIES], method="dpo")
    assert result.card["method"] == "dpo" and result.card["format"] == "openai_dpo"
    # 284 stated pairs, plus one best-vs-worst pair per task whose tau-bench trials got different rewards: in the
    # fixtures that is task 3 (rewards 0 and 1 in the results array) and task 12 (0 and 1 in the JSONL file).
    n_pairs = sum(result.counts.values())
    assert n_pairs == 284 + 2
    examples = [e for s in ("train", "validation", "test") for e in read_split(ws, result.dataset_id, s)]
    assert all(len(e["preferred_output"]) == len(e["non_preferred_output"]) == 1 for e in examples)
    assert all(e["preferred_output"][0] != e["non_preferred_output"][0] for e in examples)
    assert all(e["preferred_output"][0]["role"] == "assistant" for e in examples)
    report = inspect_dataset(ws, dataset_id=result.dataset_id, provider="openai", model="gpt-4.1-mini")
    assert report["valid"], report["findings"][:3]
    with pytest.raises(UserError, match="holds dpo examples"):
        start_job(ws, result.dataset_id, base_model=str(tiny_model))
    assert ws.store.jobs.all() == []


def test_a_supervised_build_leaves_preference_pairs_out_and_says_so(ws):
    if not SAMPLES.is_dir():
        pytest.skip("../shared samples missing")
    with pytest.raises(UserError, match="No usable examples"):
        build_dataset(ws, [SAMPLES / "openai-finetune" / "dpo"])
