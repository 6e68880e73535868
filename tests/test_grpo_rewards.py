"""GRPO's reward: a suite case scores an answer exactly as evaluate scores it, combined with stated weights; and
GRPO's advantages are normalised within each group of answers to one prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_customization.errors import UserError
from model_customization.evaluation import runner
from model_customization.evaluation.metrics import MEASUREMENTS
from model_customization.evaluation.rewards import REWARD_WEIGHTS, check_rewardable, reward, reward_weights
from model_customization.evaluation.runner import evaluate

SCHEMA = {"type": "object", "properties": {"severity": {"enum": ["low", "high"]}, "component": {"type": "string"}}, "required": ["severity", "component"]}
CASES = [
    {"messages": [{"role": "user", "content": "Capital of Land1?"}], "reference": "The capital is Land1ville."},
    {"messages": [{"role": "user", "content": "Triage as JSON: db down"}], "json_schema": SCHEMA},
    {"messages": [{"role": "user", "content": "Capital of Land2?"}], "regex": r"Land2ville", "contains": ["capital", "Land2"]},
    {"messages": [{"role": "user", "content": "What is the weather in Oslo?"}], "expected_tool_call": {"name": "get_weather", "arguments": {"city": "Oslo", "unit": "C"}}},
    {"messages": [{"role": "user", "content": "Triage db down, JSON, and say capital Land2"}], "json_schema": SCHEMA, "reference": '{"severity": "high"}', "contains": "high"},
]
# Per model, per case: answers that hit, half-hit and miss the checks.
ANSWERS = {
    "terse": ["no", "{}", "capital", "get_weather", "high"],
    "thorough": [
        "The capital is Land1ville.",
        '```json\n{"severity": "high", "component": "db"}\n```',
        "The capital is Land2ville.",
        json.dumps({"name": "get_weather", "arguments": {"city": "Oslo"}}),
        '{"severity": "high", "component": "db"}',
    ],
    "claude-plain": [
        "Land1ville is the capital, I think",
        '{"severity": "urgent", "component": "db"}',
        "It is Land2 something",
        json.dumps({"name": "get_forecast", "arguments": {"city": "Oslo", "unit": "C"}}),
        '{"severity": "low"}',
    ],
}


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key")
    by_prompt = {case["messages"][-1]["content"]: index for index, case in enumerate(CASES)}

    def fake_chat(ws, provider, name, messages, *, max_tokens=256, temperature=0.0, seed=0, allowance=None):
        return {"text": ANSWERS[name][by_prompt[messages[-1]["content"]]], "seconds": 0.01, "provider": provider}

    monkeypatch.setattr(runner, "chat_with_provider", fake_chat)


def test_rewards_are_the_weighted_mean_of_evaluates_own_per_case_scores(ws, scripted, tmp_path: Path):
    suite = tmp_path / "checks.jsonl"
    suite.write_text("".join(json.dumps(c) + "\n" for c in CASES), encoding="utf-8")
    models = [f"anthropic:{name}" for name in ANSWERS]
    report = evaluate(ws, None, models, suite=str(suite))
    per_case = [json.loads(line) for line in (ws.settings.evals_dir / report["id"] / "cases.jsonl").read_text().splitlines()]
    assert len(per_case) == len(CASES)
    rewards_seen = set()
    for row, case in zip(per_case, CASES, strict=True):
        for model in models:
            stored = row["outputs"][model]
            value, scores = reward(stored["text"], case)
            # Every metric the reward saw is the one evaluate stored for this answer, value for value.
            for name, score in scores.items():
                assert stored[name] == pytest.approx(score), (model, name)
            weighted = {n: REWARD_WEIGHTS[n] for n in scores if n not in MEASUREMENTS and REWARD_WEIGHTS[n] > 0}
            expected = sum(w * stored[n] for n, w in weighted.items()) / sum(weighted.values())
            assert value == pytest.approx(expected)
            assert 0.0 <= value <= 1.0
            rewards_seen.add(round(value, 6))
    # The answers were chosen to hit, half-hit and miss: the rewards spread over [0, 1] rather than being constant.
    assert min(rewards_seen) == 0.0 and max(rewards_seen) == 1.0 and len(rewards_seen) >= 6


def test_partial_credit_and_own_weights():
    case = CASES[3]
    right_name = json.dumps({"name": "get_weather", "arguments": {"city": "Oslo"}})
    value, scores = reward(right_name, case)
    # name right (0.25), one of two argument names agrees (0.25 * 0.5), not exact (0.5 * 0)
    assert scores["tool_arguments_match"] == 0.5 and value == pytest.approx(0.25 + 0.125)
    exact_only, _ = reward(right_name, case, reward_weights({"tool_name_match": 0, "tool_arguments_match": 0}))
    assert exact_only == 0.0
    tool_call_dict, _ = reward({"text": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": '{"city": "Oslo", "unit": "C"}'}}]}, case)
    assert tool_call_dict == 1.0


def test_unknown_or_negative_weights_and_unrewardable_cases_are_refused():
    with pytest.raises(UserError, match="not a 0-1 metric"):
        reward_weights({"answer_chars": 1.0})
    with pytest.raises(UserError, match="from 0 to 100"):
        reward_weights({"regex_match": -1})
    with pytest.raises(UserError, match="nothing in this case gives a reward"):
        check_rewardable({"messages": [], "rubric": "be kind"}, reward_weights(), "suite.jsonl:3")
    with pytest.raises(UserError, match="nothing in this case gives a reward"):
        check_rewardable(CASES[2], reward_weights({"regex_match": 0, "contains": 0}), "suite.jsonl:3")
    check_rewardable(CASES[2], reward_weights({"regex_match": 0}), "suite.jsonl:3")
