"""Paired statistics for evaluations: intervals and verdicts on known distributions, and their place in evaluate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mcp import Client

from model_customization.errors import UserError
from model_customization.evaluation.statistics import compare, mean_ci, paired_difference
from model_customization.server.app import build_server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- mean_ci -------------------------------------------------------------------------------------------------


def test_mean_ci_covers_the_true_mean_and_narrows_with_more_cases():
    rng = np.random.default_rng(7)
    small = mean_ci(rng.normal(0.5, 0.1, 20))
    large = mean_ci(rng.normal(0.5, 0.1, 400))
    for result in (small, large):
        assert result["low"] < 0.5 < result["high"]
        assert result["low"] <= result["mean"] <= result["high"]
    assert small["n"] == 20 and large["n"] == 400
    # The standard error shrinks as 1/sqrt(n): 20x the cases, roughly a 4.5x narrower interval.
    assert (large["high"] - large["low"]) < (small["high"] - small["low"]) / 3


def test_mean_ci_is_repeatable_for_a_seed_and_wider_at_higher_confidence():
    values = [0, 1, 0, 1, 1, 0, 0, 0, 1, 0, 1, 1]
    assert mean_ci(values, seed=3) == mean_ci(values, seed=3)
    at_90, at_99 = mean_ci(values, confidence=0.90), mean_ci(values, confidence=0.99)
    assert at_99["low"] < at_90["low"] and at_99["high"] > at_90["high"]


def test_mean_ci_of_equal_values_one_value_or_none_does_not_crash():
    assert mean_ci([0.25, 0.25, 0.25]) == {"mean": 0.25, "low": 0.25, "high": 0.25, "n": 3}
    assert mean_ci([0.7]) == {"mean": 0.7, "low": 0.7, "high": 0.7, "n": 1}
    assert mean_ci([]) == {"mean": None, "low": None, "high": None, "n": 0}
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([0.1, 0.2], confidence=95)


# --- paired_difference ---------------------------------------------------------------------------------------


def test_a_clear_improvement_is_significant_in_the_right_direction():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 0.6, 40)
    b = a + 0.3 + rng.normal(0, 0.02, 40)

    better_b = paired_difference(a, b)
    assert better_b["significant"] is True
    assert better_b["mean_difference"] == pytest.approx(0.3, abs=0.02)
    assert 0.25 < better_b["low"] < better_b["mean_difference"] < better_b["high"] < 0.35
    assert (better_b["wins_b"], better_b["wins_a"], better_b["ties"], better_b["n"]) == (40, 0, 0, 40)
    assert better_b["sign_test_p"] == pytest.approx(2 * 0.5**40)
    assert better_b["wilcoxon_p"] < 1e-6
    assert better_b["verdict"].startswith("B better than A at 95% (mean +0.3")
    assert "sign test p=" in better_b["verdict"]

    # Swapped, the same evidence points the other way.
    better_a = paired_difference(b, a, name_a="base", name_b="ft-1")
    assert better_a["significant"] is True and better_a["mean_difference"] < 0 and better_a["high"] < 0
    assert better_a["verdict"].startswith("base better than ft-1 at 95% (mean -0.3")


def test_identical_models_are_not_significantly_different():
    scores = list(np.random.default_rng(1).uniform(0, 1, 30))
    result = paired_difference(scores, scores)
    assert result["significant"] is False
    assert result["sign_test_p"] == 1.0 and result["wilcoxon_p"] is None
    assert (result["mean_difference"], result["low"], result["high"]) == (0.0, 0.0, 0.0)
    assert result["ties"] == 30 and result["wins_a"] == result["wins_b"] == 0
    assert result["verdict"].startswith("no significant difference between A and B at 95%")


def test_independent_noise_with_the_same_mean_is_not_significant():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.5, 0.1, 40), rng.normal(0.5, 0.1, 40)
    result = paired_difference(a, b, seed=0)
    assert result["significant"] is False
    assert result["low"] < 0 < result["high"]
    assert result["sign_test_p"] > 0.05
    assert result["verdict"].startswith("no significant difference")


def test_few_cases_are_not_enough_even_when_every_one_improves():
    # Four wins out of four: the interval excludes 0, but a sign test cannot reach p < 0.05 on four cases (p = 0.125).
    result = paired_difference([0.1, 0.2, 0.3, 0.4], [0.5, 0.9, 0.6, 0.8])
    assert result["low"] > 0 and result["sign_test_p"] == pytest.approx(0.125)
    assert result["significant"] is False
    assert "evaluate more cases" in result["verdict"]


def test_binary_metrics_with_ties_are_handled():
    a = [0] * 20 + [1] * 5 + [0] * 15
    b = [1] * 20 + [1] * 5 + [0] * 15  # b wins 20 cases, ties 20
    result = paired_difference(a, b)
    assert (result["wins_b"], result["wins_a"], result["ties"]) == (20, 0, 20)
    assert result["mean_difference"] == 0.5 and result["significant"] is True
    assert result["low"] > 0 and result["high"] <= 1


def test_equal_differences_one_case_and_no_cases_do_not_crash():
    shifted = paired_difference([0.1, 0.2, 0.3], [0.3, 0.4, 0.5])  # every case +0.2: nothing to resample
    assert shifted["low"] == shifted["high"] == shifted["mean_difference"] == 0.2
    single = paired_difference([0.5], [0.7])
    assert single["n"] == 1 and single["sign_test_p"] == 1.0 and single["significant"] is False
    empty = paired_difference([], [])
    assert empty["n"] == 0 and empty["mean_difference"] is None and empty["significant"] is False
    assert "no case has a score from both" in empty["verdict"]
    with pytest.raises(ValueError, match="same cases"):
        paired_difference([0.1, 0.2], [0.3])


def test_compare_puts_every_model_against_the_first():
    rng = np.random.default_rng(2)
    base = list(rng.uniform(0, 0.5, 40))
    scores = {"base": base, "tuned": [x + 0.4 for x in base], "same": list(base)}
    results = compare(scores)
    assert [(r["baseline"], r["candidate"]) for r in results] == [("base", "tuned"), ("base", "same")]
    tuned, same = results
    assert tuned["significant"] and tuned["verdict"].startswith("tuned better than base at 95%")
    assert not same["significant"] and same["verdict"].startswith("no significant difference between base and same")
    assert [r["candidate"] for r in compare(scores, baseline="tuned")] == ["base", "same"]
    with pytest.raises(ValueError, match="baseline 'gone'"):
        compare(scores, baseline="gone")


# --- in evaluate ---------------------------------------------------------------------------------------------


def _dataset(ws) -> str:
    from model_customization.datasets.build import store_examples

    def example(question: str, answer: str) -> dict[str, Any]:
        return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}

    examples = [("train", example("Status of api?", "api ok"))] + [
        ("test", example(f"Status of service {i}?", f"service {i} ok")) for i in range(4)
    ]
    card_fields = {"conversations_read": 5, "sources": [], "formats": {}, "dropped": {}, "unreadable": {"count": 0, "first": []}, "options": {}}
    dataset_id, _, _ = store_examples(ws, examples, name="status", method="sft", card_fields=card_fields)
    return dataset_id


@pytest.mark.anyio
@pytest.mark.timeout(180)
async def test_evaluate_reports_intervals_and_a_paired_verdict(ws, tiny_model, tmp_path):
    dataset_id = _dataset(ws)
    # A copy of the same weights in another folder: a second model that answers exactly as the first.
    twin = Path(shutil.copytree(tiny_model, tmp_path / "tiny-twin"))
    first, second = str(Path(tiny_model).resolve()), str(twin.resolve())

    async with Client(build_server(ws=ws)) as client:
        result = await client.call_tool("evaluate", {"dataset_id": dataset_id, "models": [first, second], "max_tokens": 4})
        assert not result.is_error, result.content
        output = result.structured_content
        report = json.loads((await client.read_resource(output["resource_uri"])).contents[0].text)

    assert output["primary_metric"] == "token_f1" and report["primary_metric"] == "token_f1"
    assert set(output["scores"][first]) >= {"exact_match", "normalized_exact_match", "token_f1"}  # the means stay
    [comparison] = output["comparisons"]
    assert (comparison["baseline"], comparison["candidate"], comparison["metric"]) == (first, second, "token_f1")
    # Same weights, greedy decoding: every case a tie, so no difference can be claimed.
    assert comparison["n"] == 4 and comparison["ties"] == 4 and comparison["sign_test_p"] == 1.0
    assert comparison["significant"] is False
    assert comparison["verdict"].startswith(f"no significant difference between {first} and {second} at 95%")
    assert report["comparisons"][0]["verdict"] == comparison["verdict"]

    intervals = report["confidence_intervals"]
    assert set(intervals) == {first, second}
    for model in (first, second):
        for metric, interval in intervals[model].items():
            assert interval["n"] == 4
            assert interval["low"] <= interval["mean"] <= interval["high"]
            assert interval["mean"] == pytest.approx(report["summary"][model][metric])
    # The ledger keeps the plain means, as before.
    [stored] = ws.store.evaluations.all()
    assert set(stored["summary"][first]) == set(report["summary"][first])


def test_evaluate_refuses_an_unknown_primary_metric_before_generating(ws, tiny_model):
    from model_customization.evaluation.runner import evaluate

    dataset_id = _dataset(ws)
    models = [str(tiny_model), "SmolLM2-135M-Instruct"]
    with pytest.raises(UserError, match="Unknown primary_metric 'accuracy'; use one of .*token_f1"):
        evaluate(ws, dataset_id, models, primary_metric="accuracy")
    with pytest.raises(UserError, match="judge_score needs a judge"):
        evaluate(ws, dataset_id, models, primary_metric="judge_score")
    assert ws.store.evaluations.all() == []
