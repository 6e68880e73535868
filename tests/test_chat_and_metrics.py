"""Loss masking on the real chat template, example checks, and answer metrics on hand-checked cases."""

from __future__ import annotations

import pytest

from model_customization.datasets.examples import example_problem, prompt_and_reference, to_plain_chat
from model_customization.evaluation.metrics import exact_match, normalized_exact_match, token_f1


@pytest.fixture(scope="module")
def tokenizer(embedded_base):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_base)


def _trained_text(tokenizer, example) -> str:
    return tokenizer.decode([label for label in example.labels if label != -100])


def test_loss_covers_assistant_tokens_only(tokenizer):
    from model_customization.providers.local.chat import tokenize_chat

    messages = [
        {"role": "system", "content": "You are OpsBot."},
        {"role": "user", "content": "Triage: [db] ERROR down"},
        {"role": "assistant", "content": "TRIAGE severity=high component=db action=page"},
        {"role": "user", "content": "And [cdn] INFO ok?"},
        {"role": "assistant", "content": "TRIAGE severity=low component=cdn action=ignore"},
    ]
    example = tokenize_chat(tokenizer, messages, max_length=512)
    assert len(example.input_ids) == len(example.labels)
    trained = _trained_text(tokenizer, example)
    assert trained == (
        "TRIAGE severity=high component=db action=page<|im_end|>\n"
        "TRIAGE severity=low component=cdn action=ignore<|im_end|>\n"
    )
    # The token ids are the same as rendering the whole conversation at once: masking changes nothing else.
    whole = tokenizer(tokenizer.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"]
    assert example.input_ids == whole
    assert not example.truncated


def test_weight_zero_turn_is_not_learned(tokenizer):
    from model_customization.providers.local.chat import tokenize_chat

    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "bad answer", "weight": 0},
        {"role": "user", "content": "second"},
        {"role": "assistant", "content": "good answer", "weight": 1},
    ]
    trained = _trained_text(tokenizer, tokenize_chat(tokenizer, messages, max_length=512))
    assert "good answer" in trained and "bad answer" not in trained


def test_truncation_is_reported(tokenizer):
    from model_customization.providers.local.chat import tokenize_chat

    messages = [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}]
    example = tokenize_chat(tokenizer, messages, max_length=64)
    assert example.truncated and len(example.input_ids) == 64
    assert example.trained_tokens == 0  # the answer was cut off: the trainer drops such examples


def test_tool_calls_render_as_text_for_training_and_evaluation():
    example = {
        "messages": [
            {"role": "user", "content": "weather in Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "4 C"},
            {"role": "assistant", "content": "It is 4 C in Oslo."},
        ]
    }
    assert example_problem(example) is None
    plain = to_plain_chat(example["messages"])
    assert plain[1]["content"] == '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
    prompt, reference = prompt_and_reference(example)
    assert reference == "It is 4 C in Oslo." and len(prompt) == 3


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ([], "no_messages"),
        ([{"role": "user", "content": "hi"}], "no_assistant_message"),
        ([{"role": "assistant", "content": "hi"}], "no_user_message"),
        ([{"role": "wizard", "content": "hi"}], "unrecognised_role"),
        ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}], "no_assistant_message"),
        (
            [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "", "tool_calls": [{"id": "x", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "user", "content": "never mind"},
                {"role": "assistant", "content": "ok"},
            ],
            "unanswered_tool_call",
        ),
    ],
)
def test_example_problems(messages, reason):
    assert example_problem({"messages": messages}) == reason


def test_metrics_on_hand_checked_cases():
    assert exact_match("TRIAGE a", "TRIAGE a") == 1.0
    assert exact_match("TRIAGE a ", " TRIAGE a") == 1.0
    assert exact_match("triage a", "TRIAGE a") == 0.0
    assert normalized_exact_match("Triage: A!", "triage a") == 1.0
    # 2 of 3 predicted tokens are right, 2 of 4 expected found: P=2/3, R=1/2, F1=4/7.
    assert token_f1("the cat sat", "the cat is here") == pytest.approx(4 / 7)
    assert token_f1("", "") == 1.0
    assert token_f1("something", "") == 0.0
    assert token_f1("a b", "c d") == 0.0
    # Repeated tokens count only as often as the reference has them.
    assert token_f1("the the the", "the cat") == pytest.approx(2 * (1 / 3) * (1 / 2) / ((1 / 3) + (1 / 2)))
