"""A reward in [0, 1] for one answer to one suite case, from the very scores `evaluate` gives that answer.

`evaluate` scores an answer with suites.score_answer -> metrics.score_case: every 0-1 metric the case provides for
(reference metrics, json_valid/schema_valid, regex_match, contains, the tool-call matches). A reward is their weighted
mean. Only the metrics a case provides for count, so a case with only a regex is rewarded by regex_match alone and a
case with a schema and a reference by both. The counts in metrics.MEASUREMENTS (answer length) are never rewards.

Default weights (REWARD_WEIGHTS): each kind of check weighs 1 in total, split so that a near miss earns part of it:
json_valid 0.25 + schema_valid 0.75 (valid JSON that breaks the schema is on the way), tool_name_match 0.25 +
tool_arguments_match 0.25 + tool_call_exact 0.5, and of the reference metrics token_f1 alone (evaluate's default
primary metric; the others say much the same and would weigh the reference several times over). A caller may give
its own weights by metric name; a metric given weight 0 is left out, and a metric not named keeps its default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from model_customization.errors import UserError
from model_customization.evaluation.metrics import METRICS, score_case
from model_customization.evaluation.suites import SUITE_EXPECTATIONS

REWARD_WEIGHTS: dict[str, float] = {
    **{name: 0.0 for name in METRICS},
    "token_f1": 1.0,
    "json_valid": 0.25,
    "schema_valid": 0.75,
    "regex_match": 1.0,
    "contains": 1.0,
    "tool_name_match": 0.25,
    "tool_arguments_match": 0.25,
    "tool_call_exact": 0.5,
}


# Not a metric: the weight of an LLM judge's 0-1 score in the reward, present only when a GRPO job has a judge
# (its judge_weight hyperparameter); evaluate's scores never hold it.
JUDGE = "judge"


def reward_weights(overrides: Mapping[str, float] | None = None, *, judge_weight: float | None = None) -> dict[str, float]:
    """The default weights with the caller's overrides, and the judge's weight (JUDGE) when a judge takes part;
    UserError for an unknown metric or a negative weight."""
    weights = dict(REWARD_WEIGHTS)
    extra = {JUDGE: judge_weight} if judge_weight is not None else {}
    for name, value in {**(overrides or {}), **extra}.items():
        if name not in REWARD_WEIGHTS and name != JUDGE:
            raise UserError(f"reward_weights names {name!r}, which is not a 0-1 metric; use any of {', '.join(REWARD_WEIGHTS)}.")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 100:
            raise UserError(f"reward_weights[{name!r}] must be a number from 0 to 100 (got {value!r}).")
        weights[name] = float(value)
    return weights


def case_expectations(case: Mapping[str, Any]) -> dict[str, Any]:
    """What a suite case asks of an answer (its keys among SUITE_EXPECTATIONS), as evaluate lays it out."""
    return {key: case[key] for key in SUITE_EXPECTATIONS if key in case}


def check_rewardable(case: Mapping[str, Any], weights: Mapping[str, float], where: str) -> None:
    """UserError when no weighted metric applies to the case (only a rubric, or all its metrics weighted 0): every
    answer would get the same reward and nothing could be learnt from it."""
    if weights.get(JUDGE, 0.0) > 0:  # a judge rewards any case, a rubric-only one included (see judge_weight)
        return
    probe = score_case("", case_expectations(case))
    if not any(weights.get(name, 0.0) > 0 for name in probe if name in weights):
        raise UserError(
            f"{where}: nothing in this case gives a reward (it needs a reference, json_schema, regex, contains or "
            "expected_tool_call with a weight above 0; a rubric alone needs a judge). Add one, or leave the case out."
        )


def reward(
    answer: str | Mapping[str, Any], case: Mapping[str, Any], weights: Mapping[str, float] | None = None, *, judge_score: float | None = None
) -> tuple[float, dict[str, float]]:
    """(reward in [0, 1], the per-metric scores it was made from) for an answer (text, or a dict with text and
    tool_calls) to a suite case. The scores are score_case's, the same function evaluate scores suite answers with.

    With a judge's score (0-1) and a judge weight in `weights` (JUDGE), the judge counts as one more check: (the
    checks weighted + judge weight x judge_score) / (their weights + judge weight), so a case with no check is
    rewarded by the judge alone. The judge's score is then among the scores returned, as "judge"."""
    weights = reward_weights(weights) if weights is None or not set(REWARD_WEIGHTS) <= set(weights) else weights
    scores = score_case(answer, case_expectations(case))
    weighted = [(weights[name], value) for name, value in scores.items() if weights.get(name, 0.0) > 0]
    if judge_score is not None and weights.get(JUDGE, 0.0) > 0:
        weighted.append((weights[JUDGE], judge_score))
        scores = {**scores, JUDGE: judge_score}
    total = sum(w for w, _ in weighted)
    if total == 0:
        return 0.0, scores
    return min(max(sum(w * v for w, v in weighted) / total, 0.0), 1.0), scores


# --- a suite as the cases of a GRPO job -------------------------------------------------------------------------
def suite_dataset(
    ws: Any, *, suite: str | None, agent: str | None, holdout_fraction: float, seed: int, weights: Mapping[str, float] | None,
    validation_fraction: float = 0.0,
) -> str:
    """Store the cases of a suite file (or of the suite `agent` is judged on) as a GRPO dataset and return its id.

    Each example is a case's prompt and what it expects; a seeded share (`holdout_fraction`) of the cases goes to the
    test split, never trained on, so that evaluate(dataset_id=..., split='test') measures the tuned model on cases it
    has not seen; the next seeded share (`validation_fraction`) goes to the validation split, which the job answers
    greedily now and then to keep the adapter of its best step (a guard against a policy that collapses). The dataset is content-addressed: the same cases, seed and fraction give the same id, so a job
    resumed or started again trains on exactly the cases it started with, even if the suite file changed since."""
    import hashlib
    import json
    import random
    from collections import Counter
    from pathlib import Path

    from model_customization.datasets.redaction import redact_record
    from model_customization.datasets.build import get_dataset, read_split, store_examples
    from model_customization.datasets.examples import prompt_and_reference
    from model_customization.evaluation.suites import load_suite
    from model_customization.paths import resolve_user_path

    if suite and agent:
        raise UserError("Give suite or agent, not both: agent uses the suite set for it with set_agent_suite.")
    origin: dict[str, Any]
    if agent:
        from model_customization.deployments import agent_suite

        row = agent_suite(ws, agent, None)
        if row is None:
            raise UserError(f"Agent {agent!r} has no suite; name its cases with set_agent_suite(agent={agent!r}, suite=...) or give suite=<file>.")
        if row.get("suite"):
            suite = row["suite"]
        else:  # the agent is judged on a dataset's split: its last assistant turns are the references
            get_dataset(ws, row["dataset_id"])
            cases = []
            for number, example in enumerate(read_split(ws, row["dataset_id"], row["split"]), start=1):
                prompt, reference = prompt_and_reference(example)
                cases.append({"messages": prompt, "reference": reference, "source": f"{row['dataset_id']}/{row['split']}:{number}"})
            origin = {"agent": agent, "dataset_id": row["dataset_id"], "split": row["split"]}
    if suite:
        path = resolve_user_path(suite, what="Suite file")[1]
        cases = load_suite(path)
        origin = {"agent": agent, "suite": str(path)} if agent else {"suite": str(path)}
    if not cases:
        raise UserError("The suite has no cases to train on.")
    resolved = reward_weights(weights)
    for case in cases:
        check_rewardable(case, resolved, case["source"])
    order = list(range(len(cases)))
    random.Random(seed).shuffle(order)
    n_test = int(round(len(cases) * holdout_fraction))
    held_out = set(order[:n_test])
    validation = set(order[n_test : n_test + int(round(len(cases) * validation_fraction))])
    # Redacted as every stored dataset is: it may be shipped to a provider's machines (hf-jobs) later.
    redactions: Counter[str] = Counter()
    examples = []
    for index, case in enumerate(cases):
        example, found = redact_record({"messages": case["messages"], "expects": case_expectations(case), "source": case["source"]})
        redactions.update(found)
        examples.append(("test" if index in held_out else "validation" if index in validation else "train", example))
    source_text = json.dumps([example for _, example in examples], sort_keys=True).encode()
    where = origin.get("suite") or f"{origin.get('dataset_id')} ({origin.get('split')} split)"
    dataset_id, _, _ = store_examples(
        ws, examples, name=f"grpo cases of {Path(where).name if origin.get('suite') else where}", method="grpo",
        card_fields={
            "format": "suite_cases", "conversations_read": len(cases), "formats": {"suite": len(cases)}, "dropped": {},
            "duplicates_removed": {"exact": 0, "near": 0}, "redactions": dict(redactions), "unreadable": {"count": 0, "first": []},
            "sources": [{"path": where, "sha256": hashlib.sha256(source_text).hexdigest()}],
            "options": {"method": "grpo", **origin, "holdout_fraction": holdout_fraction, "seed": seed, "split": "held-out cases in test",
                        **({"validation_fraction": validation_fraction} if validation_fraction else {})},
        },
    )  # fmt: skip
    return dataset_id

