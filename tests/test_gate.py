"""The gate before any job: token counts, renderers, validation findings, quotes, inspect_dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_customization.datasets.build import build_dataset
from model_customization.datasets.inspect import inspect_dataset
from model_customization.datasets.quote import default_epochs, openai_terms, quote_local, quote_openai
from model_customization.datasets.render import render_bedrock_claude, render_openai
from model_customization.datasets.tokens import count_chat_tokens, count_text, encoding_name_for
from model_customization.datasets.validate import example_findings, validate_rows
from model_customization.errors import UserError

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "memory-samples" / "openai-finetune"


# --- tokens ------------------------------------------------------------------------------------------------------
def test_token_counts_match_the_published_encodings():
    # Reference ids from OpenAI's encodings: "hello world" is 2 tokens in both; o200k merges more than cl100k.
    assert count_text("hello world", "o200k_base") == 2
    assert count_text("hello world", "cl100k_base") == 2
    assert count_text("", "o200k_base") == 0
    # Longer than one bpe-openai call accepts, so it is counted in pieces cut at spaces: the total must equal what
    # one unchunked call gives ("token " x N is N words plus the trailing space, as a short text shows).
    assert count_text("token " * 1000, "o200k_base") == 1001
    assert count_text("token " * 300_000, "o200k_base") == 300_001
    assert encoding_name_for("gpt-4o-mini-2024-07-18") == "o200k_base"
    assert encoding_name_for("gpt-4.1-mini") == "o200k_base"
    assert encoding_name_for("gpt-3.5-turbo-0125") == "cl100k_base"
    with pytest.raises(UserError, match="No tokenizer known"):
        encoding_name_for("llama-3")


def test_chat_token_count_adds_the_message_overhead():
    messages = [{"role": "user", "content": "hello world"}, {"role": "assistant", "content": "hello world"}]
    # 3 reply-priming + per message (3 + tokens of "role\ncontent"): "user\nhello world" is 4 tokens in o200k.
    per_message = [3 + count_text(f"{m['role']}\n{m['content']}", "o200k_base") for m in messages]
    assert count_chat_tokens(messages, "o200k_base") == 3 + sum(per_message)


# --- quote -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("n_train", "epochs"), [(1, 25), (10, 10), (20, 5), (34, 3), (100, 3), (8333, 3), (8334, 2), (30000, 1)])
def test_default_epochs_follow_openais_rule(n_train, epochs):
    assert default_epochs(n_train) == epochs


def test_openai_quote_clips_each_example_at_the_model_limit():
    terms = openai_terms("gpt-3.5-turbo")
    quote = quote_openai("gpt-3.5-turbo", [100, 20_000], epochs=2)
    assert quote["tokens_per_epoch"] == 100 + terms.example_token_limit
    assert quote["billed_tokens"] == 2 * (100 + 16_385)
    assert quote["estimated_cost_usd"] == pytest.approx(quote["billed_tokens"] * 8.00 / 1e6, abs=1e-4)
    assert quote["prices_read_on"] and quote["model"] == "gpt-3.5-turbo-0125"
    assert openai_terms("gpt-4o-mini-2024-07-18").snapshot == "gpt-4o-mini-2024-07-18"
    assert openai_terms("gpt-4o-mini").training_usd_per_million != openai_terms("gpt-4o").training_usd_per_million
    with pytest.raises(UserError, match="No price known"):
        openai_terms("gpt-imaginary")


def test_local_quote_learns_speed_from_history():
    fresh = quote_local("SmolLM2-135M-Instruct", [100, 700], max_seq_length=512, epochs=2, history=[])
    assert fresh["trained_tokens"] == 2 * (100 + 512)
    assert "default" in fresh["speed_basis"]
    learned = quote_local("SmolLM2-135M-Instruct", [100, 700], max_seq_length=512, epochs=2, history=[100.0, 300.0, 200.0])
    assert learned["tokens_per_second"] == 200.0 and learned["estimated_seconds"] == pytest.approx(1224 / 200, abs=0.1)


# --- validation --------------------------------------------------------------------------------------------------
def _codes(row) -> set[str]:
    return {code for code, _ in example_findings(row)}


@pytest.mark.parametrize(
    ("row", "code"),
    [
        ([1, 2], "data_type"),
        ({"prompt": "x"}, "missing_messages_list"),
        ({"messages": [{"content": "x"}, {"role": "assistant", "content": "y"}]}, "message_missing_key"),
        ({"messages": [{"role": "user", "content": "x", "mood": "sad"}, {"role": "assistant", "content": "y"}]}, "message_unrecognized_key"),
        ({"messages": [{"role": "wizard", "content": "x"}, {"role": "assistant", "content": "y"}]}, "unrecognized_role"),
        ({"messages": [{"role": "user"}, {"role": "assistant", "content": "y"}]}, "missing_content"),
        ({"messages": [{"role": "user", "content": "x"}]}, "example_missing_assistant_message"),
        ({"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "y"}]}, "example_missing_user_message"),
        ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "weight": 2}]}, "invalid_weight"),
        (
            {"messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "r"}, {"role": "assistant", "content": "y"}]},
            "tool_result_without_call",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                    {"role": "user", "content": "well?"},
                    {"role": "assistant", "content": "y"},
                ]
            },
            "unanswered_tool_call",
        ),
        ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "extra": 1}, "unrecognized_key"),
        ({"input": {"messages": [{"role": "user", "content": "q"}]}, "preferred_output": [{"role": "assistant", "content": "a"}]}, "missing_preference_key"),
    ],
)
def test_each_check_reports_its_code(row, code):
    assert code in _codes(row)


def test_a_valid_tool_call_example_passes():
    row = {
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "r"},
            {"role": "assistant", "content": "y", "weight": 1},
        ]
    }
    assert _codes(row) == set()
    # Ending on a tool call is fine (the model learns to call): nothing to answer yet.
    assert _codes({"messages": row["messages"][:2]}) == set()


def test_dataset_level_findings_carry_split_and_line():
    rows = [("train", i + 1, {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}) for i in range(9)]
    rows.append(("train", 10, rows[0][2]))
    rows.append(("test", 3, {"messages": []}))
    findings, counts = validate_rows(rows)
    assert counts == {"train": 10, "test": 1}
    located = {(f.split, f.line, f.code) for f in findings}
    assert ("train", 10, "duplicate_example") in located
    assert ("test", 3, "missing_messages_list") in located
    assert not any(f.code == "too_few_examples" for f in findings)  # exactly 10 is enough
    findings, _ = validate_rows(rows[:9])
    assert any(f.code == "too_few_examples" and f.line == 0 for f in findings)


# --- renderers ---------------------------------------------------------------------------------------------------
_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool"]), "content": st.text(min_size=1, max_size=20)}
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_message, min_size=1, max_size=12))
def test_bedrock_rendering_strictly_alternates(messages):
    rendered = render_bedrock_claude({"messages": messages})
    roles = [m["role"] for m in rendered["messages"]]
    assert all(a != b for a, b in zip(roles, roles[1:]))
    if roles:
        assert roles[0] == "user" and roles[-1] == "assistant"
        assert all(m["content"] for m in rendered["messages"])
    assert "system" not in roles
    if any(m["role"] == "system" for m in messages):
        assert "system" in rendered


@settings(max_examples=100, deadline=None)
@given(st.lists(_message, min_size=1, max_size=8))
def test_openai_rendering_keeps_every_message_and_its_text(messages):
    rendered = render_openai({"messages": messages})
    assert [m["content"] for m in rendered["messages"]] == [m["content"] for m in messages]
    assert json.loads(json.dumps(rendered)) == rendered


def test_openai_rendering_drops_empty_content_on_tool_calls_and_weights_off_assistants():
    example = {
        "messages": [
            {"role": "user", "content": "x", "weight": 1},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}], "weight": 0},
            {"role": "tool", "tool_call_id": "c1", "content": "r"},
            {"role": "assistant", "content": "y"},
        ]
    }
    rendered = render_openai(example)["messages"]
    assert "weight" not in rendered[0] and "content" not in rendered[1] and rendered[1]["weight"] == 0
    assert example_findings({"messages": rendered}) == []


# --- inspect_dataset ---------------------------------------------------------------------------------------------
def test_inspect_a_file_reports_bad_lines_with_their_numbers(ws, tmp_path):
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    lines = [json.dumps({**good, "messages": [{"role": "user", "content": f"q{i}"}, good["messages"][1]]}) for i in range(12)]
    lines.insert(3, "{not json")
    lines.insert(7, json.dumps({"messages": [{"role": "user", "content": "only a question"}]}))
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = inspect_dataset(ws, path=str(path), provider="openai", model="gpt-4o-mini")
    assert report["valid"] is False and report["errors"] == 2
    located = {(f["line"], f["code"]) for f in report["findings"]}
    assert located == {(4, "invalid_json"), (8, "example_missing_assistant_message")}
    assert report["token_stats"]["train"]["examples"] == 12  # the bad lines are not counted
    assert report["quote"]["epochs"] == 8  # 12 examples: OpenAI's rule gives 100 // 12 epochs


def test_inspect_the_real_samples(ws):
    toy = inspect_dataset(ws, path=str(SAMPLES / "mlteam-ai_toy_chat_fine_tuning.jsonl"), provider="openai", model="gpt-4o-mini")
    # Lines 4, 9, 10 have no user message; lines 6-10 repeat lines 1-4 (checked by reading the file).
    assert toy["finding_counts"] == {"example_missing_user_message": 3, "duplicate_example": 5}
    assert toy["valid"] is True  # warnings only: OpenAI would accept it
    dpo = inspect_dataset(ws, path=str(SAMPLES / "dpo" / "microsoft-foundry_orca_dpo_pairs_validation.jsonl"), provider="openai", model="gpt-4.1-mini")
    assert dpo["valid"] is True and dpo["counts"] == {"train": 284}
    assert dpo["quote"]["epochs"] == 3 and dpo["quote"]["billed_tokens"] == 3 * dpo["token_stats"]["train"]["total"]


def test_inspect_a_stored_dataset_for_each_provider(ws, demo_paths, tiny_model):
    built = build_dataset(ws, demo_paths)
    for provider in ("openai", "bedrock"):
        report = inspect_dataset(ws, dataset_id=built.dataset_id, provider=provider)
        assert report["valid"] is True, report["findings"]
        assert report["counts"] == built.counts
        assert {s: v["examples"] for s, v in report["token_stats"].items()} == built.counts
    local = inspect_dataset(ws, dataset_id=built.dataset_id, provider="local", model=str(tiny_model), max_seq_length=64, epochs=1)
    # Cut at 64 tokens, most examples lose their answer (errors); the others only lose context (warnings).
    assert local["truncated_examples"] > 0 and local["errors"] + local["warnings"] == local["truncated_examples"]
    assert local["valid"] is False and local["errors"] > 0
    assert local["quote"]["trained_tokens"] <= 64 * built.counts["train"]
    assert local["quote"]["estimated_seconds"] > 0
    assert all(f["code"] == "truncated" for f in local["findings"])
    assert ws.store.jobs.all() == []  # inspection starts nothing


def test_inspect_refuses_what_it_cannot_judge(ws, tmp_path):
    with pytest.raises(UserError, match="exactly one of dataset_id"):
        inspect_dataset(ws)
    with pytest.raises(UserError, match="No price known"):
        inspect_dataset(ws, path=str(tmp_path / "x.jsonl"), model="gpt-imaginary")
    with pytest.raises(UserError, match="File not found"):
        inspect_dataset(ws, path=str(tmp_path / "missing.jsonl"))
    with pytest.raises(UserError, match="Unknown provider"):
        inspect_dataset(ws, path=str(tmp_path / "missing.jsonl"), provider="cohere")


# --- validators, property-based ----------------------------------------------------------------------------------
@st.composite
def _valid_chat(draw):
    """A valid conversation: optional system, then user turns each answered directly or through a tool call."""
    messages = [{"role": "system", "content": draw(st.text(min_size=1, max_size=10))}] if draw(st.booleans()) else []
    for turn in range(draw(st.integers(1, 4))):
        messages.append({"role": "user", "content": draw(st.text(min_size=1, max_size=10))})
        if draw(st.booleans()):
            call_id = f"call_{turn}"
            messages.append({"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]})
            messages.append({"role": "tool", "tool_call_id": call_id, "content": draw(st.text(min_size=1, max_size=10))})
        messages.append({"role": "assistant", "content": draw(st.text(min_size=1, max_size=10)), "weight": draw(st.sampled_from([0, 1]))})
    return {"messages": messages}


@settings(max_examples=150, deadline=None)
@given(_valid_chat())
def test_rendered_valid_examples_pass_validation(example):
    assert example_findings(render_openai(example)) == []


@settings(max_examples=150, deadline=None)
@given(_valid_chat(), st.data())
def test_breaking_any_message_is_reported(example, data):
    rendered = render_openai(example)
    index = data.draw(st.integers(0, len(rendered["messages"]) - 1))
    breakage = data.draw(st.sampled_from(["drop_role", "bad_role", "extra_key", "no_content"]))
    message = rendered["messages"][index]
    expected = {"drop_role": "message_missing_key", "bad_role": "unrecognized_role", "extra_key": "message_unrecognized_key", "no_content": "missing_content"}[breakage]
    if breakage == "drop_role":
        message.pop("role")
    elif breakage == "bad_role":
        message["role"] = "narrator"
    elif breakage == "extra_key":
        message["mood"] = "cheerful"
    else:
        if message.get("tool_calls"):
            message.pop("tool_calls")
        message.pop("content", None)
    assert expected in {code for code, _ in example_findings(rendered)}
