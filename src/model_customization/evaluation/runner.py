"""Evaluate two or more models on a dataset's held-out split: generate, score, optionally judge, store.

Each case's prompt is the conversation up to its last assistant turn and the reference is that turn. Local models
answer greedily in batches (repeatable, and fast on CPU); cloud models (OpenAI, Anthropic, Bedrock) answer through
the chat router one case at a time at temperature 0. Every answer gets the string metrics; with a judge, a model of
any provider also rates each answer against the reference from 1 to 10 (stored as judge_score = (n-1)/9). A reply
the judge cannot be understood from, or a judge call that fails, is recorded on that case and counted, never dropped.
Per-case outputs go to `cases.jsonl` in the evaluation's folder and the per-model means to the ledger; both are
served as `evals://{id}`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

from model_customization.datasets.build import get_dataset, read_split
from model_customization.datasets.examples import prompt_and_reference
from model_customization.errors import NotFoundError, UserError
from model_customization.evaluation.metrics import METRICS
from model_customization.evaluation.statistics import compare, mean_ci
from model_customization.providers.chat import chat_with_provider, check_chat_model
from model_customization.providers.local.inference import generate_greedy_batch
from model_customization.workspace import Workspace

ProgressFn = Callable[[int, int, str], None]
SPLITS = ("train", "validation", "test")

# The judge sees the end of the conversation, the reference and the answer, each cut to a bounded size: the cost of
# a judge call should not grow with a long transcript.
JUDGE_CONTEXT_CHARS = 6000
JUDGE_ANSWER_CHARS = 3000
# A cloud judge stops after "Score: N"; the room is for models that think before they answer. A local judge gets
# little room, as it would otherwise ramble for the whole allowance on CPU.
JUDGE_MAX_TOKENS = {"local": 32, "cloud": 1024}
JUDGE_SYSTEM = (
    "You grade answers. You are shown the end of a conversation, the reference answer that was given at that point, "
    "and a candidate answer. Judge how well the candidate would serve the user in place of the reference: correct "
    "facts and decisions first, then completeness, then the expected format. Wording may differ from the reference.\n"
    "Reply with one line, exactly: Score: N\n"
    "where N is a whole number from 1 (wrong, unusable or empty) to 10 (as good as the reference)."
)


@dataclass(frozen=True)
class Participant:
    model_id: str  # the key in outputs and summary: canonical for local models, as given for cloud ones
    provider: str
    name: str  # what that provider is called with


def evaluate(
    ws: Workspace,
    dataset_id: str,
    models: Sequence[str],
    *,
    split: str = "test",
    max_tokens: int = 64,
    limit: int | None = None,
    batch_size: int = 8,
    judge: str | None = None,
    progress: ProgressFn | None = None,
    primary_metric: str = "token_f1",
) -> dict[str, Any]:
    if len(models) < 2:
        raise UserError("evaluate compares models: give at least two, e.g. the base model and the tuned model_id from check_job.")
    if len(set(models)) != len(models):
        raise UserError(f"The same model is listed twice in {list(models)}; list each model once.")
    if split not in SPLITS:
        raise UserError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    comparable = [*METRICS, "judge_score"] if judge is not None else list(METRICS)
    if primary_metric not in comparable:
        hint = " (judge_score needs a judge)" if primary_metric == "judge_score" else ""
        raise UserError(f"Unknown primary_metric {primary_metric!r}{hint}; use one of {', '.join(comparable)}.")
    get_dataset(ws, dataset_id)
    # Refuse unknown local models and missing keys before anything is generated or paid for.
    participants = [_participant(ws, m) for m in models]
    seen: dict[tuple[str, str], str] = {}
    for given, participant in zip(models, participants):
        key = (participant.provider, participant.name)
        if key in seen:
            raise UserError(f"{seen[key]!r} and {given!r} are the same model; list each model once.")
        seen[key] = given
    judge_by = _participant(ws, judge) if judge is not None else None
    cases = read_split(ws, dataset_id, split)
    if limit is not None:
        cases = cases[: max(limit, 0)]
    if not cases:
        raise UserError(f"Dataset {dataset_id} has no {split} examples to evaluate on. Build it with a test_fraction above 0.")

    eval_id = "ev-" + secrets.token_hex(6)
    split_cases = [prompt_and_reference(example) for example in cases]
    results: list[dict[str, Any]] = [
        {"case": index, "prompt": prompt, "reference": reference, "outputs": {}} for index, (prompt, reference) in enumerate(split_cases)
    ]
    total = len(cases) * len(participants) * (2 if judge_by else 1)
    done = 0

    def advance(count: int, note: str) -> None:
        nonlocal done
        done += count
        if progress:
            progress(done, total, note)

    for participant in participants:
        if participant.provider == "local":
            for start in range(0, len(cases), batch_size):
                chunk = results[start : start + batch_size]
                answers = generate_greedy_batch(ws, participant.name, [r["prompt"] for r in chunk], max_tokens=max_tokens, batch_size=batch_size)
                for row, answer in zip(chunk, answers):
                    row["outputs"][participant.model_id] = _scored(answer, row["reference"])
                advance(len(chunk), f"{participant.model_id}: {start + len(chunk)}/{len(cases)} cases")
        else:
            for row in results:
                try:
                    answer = chat_with_provider(ws, participant.provider, participant.name, row["prompt"], max_tokens=max_tokens, temperature=0.0, seed=0)
                except UserError as error:
                    raise UserError(f"{participant.model_id} could not answer case {row['case']}: {error} No evaluation was stored.") from error
                row["outputs"][participant.model_id] = _scored(answer, row["reference"])
                advance(1, f"{participant.model_id}: {row['case'] + 1}/{len(cases)} cases")

    if judge_by:
        for participant in participants:
            for row in results:
                output = row["outputs"][participant.model_id]
                output.update(judge_answer(ws, judge_by, row["prompt"], row["reference"], output["text"]))
                advance(1, f"judge {judge_by.model_id} on {participant.model_id}: {row['case'] + 1}/{len(cases)} cases")

    summary = {p.model_id: _summary(results, p.model_id, judged=judge_by is not None) for p in participants}
    model_ids = [p.model_id for p in participants]
    report = {
        "id": eval_id,
        "dataset_id": dataset_id,
        "split": split,
        "models": model_ids,
        "cases": len(results),
        "summary": summary,
        "judge": {"model": judge_by.model_id, "provider": judge_by.provider, "scale": "1-10, judge_score = (n-1)/9"} if judge_by else None,
        "primary_metric": primary_metric,
        "confidence_intervals": {m: _confidence_intervals(results, m, comparable) for m in model_ids},
        "comparisons": _comparisons(results, model_ids, primary_metric),
    }

    final_dir = ws.settings.evals_dir / eval_id
    ws.settings.evals_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{eval_id}-", dir=ws.settings.evals_dir))
    try:
        (staging / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
        with (staging / "cases.jsonl").open("w", encoding="utf-8") as handle:
            for row in results:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(staging, final_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    ws.ledger.add_evaluation(
        {"id": eval_id, "dataset_id": dataset_id, "models": model_ids, "status": "succeeded", "summary": summary, "path": str(final_dir)}
    )
    return {**report, "resource_uri": f"evals://{eval_id}"}


def _participant(ws: Workspace, model: str) -> Participant:
    provider, name = check_chat_model(ws, model)
    return Participant(name if provider == "local" else model.strip(), provider, name)


def _scored(answer: dict[str, Any], reference: str) -> dict[str, Any]:
    scores = {name: fn(answer["text"], reference) for name, fn in METRICS.items()}
    return {"text": answer["text"], "seconds": answer["seconds"], **scores}


def _summary(results: list[dict[str, Any]], model_id: str, *, judged: bool) -> dict[str, Any]:
    outputs = [r["outputs"][model_id] for r in results]
    summary: dict[str, Any] = {name: round(fmean(o[name] for o in outputs), 4) for name in METRICS}
    if judged:
        scores = [o["judge_score"] for o in outputs if o.get("judge_score") is not None]
        summary["judge_score"] = round(fmean(scores), 4) if scores else None  # mean over the cases judged
        summary["judged_cases"] = len(scores)
        summary["judge_errors"] = sum(1 for o in outputs if o.get("judge_error"))
    return summary


def _confidence_intervals(results: list[dict[str, Any]], model_id: str, metric_names: list[str]) -> dict[str, Any]:
    """95% bootstrap interval of each metric's mean; judge_score over the cases the judge scored."""
    intervals = {}
    for name in metric_names:
        values = [r["outputs"][model_id][name] for r in results]
        intervals[name] = mean_ci([v for v in values if v is not None])
    return intervals


def _comparisons(results: list[dict[str, Any]], model_ids: list[str], metric: str) -> list[dict[str, Any]]:
    """Each later model against the first on `metric`, paired over the cases every model has a score for."""
    paired_cases = [r for r in results if all(r["outputs"][m].get(metric) is not None for m in model_ids)]
    scores = {m: [r["outputs"][m][metric] for r in paired_cases] for m in model_ids}
    return [{"baseline": c["baseline"], "candidate": c["candidate"], "metric": metric, **c} for c in compare(scores, baseline=model_ids[0])]


# --- the judge -----------------------------------------------------------------------------------------------
def judge_messages(prompt: list[dict[str, Any]], reference: str, answer: str) -> list[dict[str, str]]:
    """The rubric conversation sent to the judge for one answer."""
    lines = [f"{m.get('role', 'user').capitalize()}: {m.get('content') or ''}" for m in prompt]
    conversation = "\n\n".join(lines)
    if len(conversation) > JUDGE_CONTEXT_CHARS:
        conversation = "[... earlier turns cut]\n" + conversation[-JUDGE_CONTEXT_CHARS:]
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {
            "role": "user",
            "content": (
                f"<conversation>\n{conversation}\n</conversation>\n\n"
                f"<reference_answer>\n{_cut(reference)}\n</reference_answer>\n\n"
                f"<candidate_answer>\n{_cut(answer) or '(empty)'}\n</candidate_answer>\n\n"
                "Rate the candidate answer. Reply with one line: Score: N (N from 1 to 10)."
            ),
        },
    ]


_LABELLED = re.compile(r"\b(?:score|rating|grade)\b[^0-9\n]{0,12}?(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_OUT_OF_TEN = re.compile(r"(?<![\d.])(-?\d+(?:\.\d+)?)\s*(?:/|out of)\s*10\b", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"^\W*(-?\d+(?:\.\d+)?)\W*$")


def parse_judge_rating(reply: str) -> int:
    """The 1-10 rating in a judge's reply ("Score: 8", "**Score:** 8/10", "7 out of 10", "9"); ValueError says why not."""
    text = (reply or "").strip()
    if not text:
        raise ValueError("the judge's reply was empty")
    found = [m.group(1) for m in _LABELLED.finditer(text)] or [m.group(1) for m in _OUT_OF_TEN.finditer(text)]
    if not found and (bare := _BARE_NUMBER.match(text)):
        found = [bare.group(1)]
    if not found:
        raise ValueError("the judge's reply has no 'Score: N'")
    values = {float(v) for v in found}
    if len(values) > 1:
        raise ValueError(f"the judge's reply gives conflicting scores ({', '.join(dict.fromkeys(found))})")
    value = values.pop()
    if not value.is_integer():
        raise ValueError(f"the judge gave {found[0]}, not a whole number from 1 to 10")
    if not 1 <= value <= 10:
        raise ValueError(f"the judge gave {int(value)}, outside 1-10")
    return int(value)


def judge_answer(ws: Workspace, judge: Participant, prompt: list[dict[str, Any]], reference: str, answer: str) -> dict[str, Any]:
    """{judge_score (0-1) | None, judge_rating (1-10) | None, judge_reply, judge_error} for one answer."""
    max_tokens = JUDGE_MAX_TOKENS["local" if judge.provider == "local" else "cloud"]
    try:
        reply = chat_with_provider(ws, judge.provider, judge.name, judge_messages(prompt, reference, answer), max_tokens=max_tokens, temperature=0.0, seed=0)
    except UserError as error:
        return {"judge_score": None, "judge_rating": None, "judge_reply": None, "judge_error": f"judge call failed: {error}"}
    try:
        rating = parse_judge_rating(reply["text"])
    except ValueError as error:
        return {"judge_score": None, "judge_rating": None, "judge_reply": reply["text"], "judge_error": str(error)}
    return {"judge_score": round((rating - 1) / 9, 4), "judge_rating": rating, "judge_reply": reply["text"], "judge_error": None}


def _cut(text: str) -> str:
    return text if len(text) <= JUDGE_ANSWER_CHARS else text[:JUDGE_ANSWER_CHARS] + " [... cut]"


def get_evaluation(ws: Workspace, eval_id: str, cases: int = 20) -> dict[str, Any]:
    row = ws.ledger.get_evaluation(eval_id)
    if not row:
        raise NotFoundError(f"Evaluation {eval_id!r} not found. Run evaluate to create one.")
    folder = Path(row["path"])
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    with (folder / "cases.jsonl").open(encoding="utf-8") as handle:
        report["per_case"] = [json.loads(line) for _, line in zip(range(cases), handle)]
    return report
