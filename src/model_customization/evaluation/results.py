"""What a finished evaluation reports per model (metric means, judge counts, latency, tokens, cost, perplexity, 95%
intervals), its paired comparisons, and reading a stored evaluation back."""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import fmean
from typing import Any

from model_customization.datasets.redaction import redact_text
from model_customization.errors import NotFoundError
from model_customization.evaluation.participants import Participant
from model_customization.evaluation.statistics import compare, mean_ci
from model_customization.workspace import Workspace


def metric_means(results: list[dict[str, Any]], model_id: str, metric_names: list[str], *, judged: bool) -> dict[str, Any]:
    """Mean of each metric over the cases that have it (a suite's cases need not all provide the same checks)."""
    outputs = [r["outputs"][model_id] for r in results]
    summary: dict[str, Any] = {}
    for name in metric_names:
        values = [o[name] for o in outputs if o.get(name) is not None]
        summary[name] = round(fmean(values), 4) if values else None
    if judged:
        scores = [o["judge_score"] for o in outputs if o.get("judge_score") is not None]
        summary["judge_score"] = round(fmean(scores), 4) if scores else None  # mean over the cases judged
        summary["judged_cases"] = len(scores)
        summary["judge_errors"] = sum(1 for o in outputs if o.get("judge_error"))
    return summary


def confidence_intervals(results: list[dict[str, Any]], model_id: str, metric_names: list[str]) -> dict[str, Any]:
    """95% bootstrap interval of each metric's mean, over the cases that have a score for it."""
    intervals = {}
    for name in metric_names:
        values = [r["outputs"][model_id].get(name) for r in results]
        intervals[name] = mean_ci([v for v in values if v is not None])
    return intervals


def comparisons(results: list[dict[str, Any]], model_ids: list[str], metric: str) -> list[dict[str, Any]]:
    """Each later model against the first on `metric`, paired over the cases every model has a score for."""
    paired_cases = [r for r in results if all(r["outputs"][m].get(metric) is not None for m in model_ids)]
    scores = {m: [r["outputs"][m][metric] for r in paired_cases] for m in model_ids}
    return [{"baseline": c["baseline"], "candidate": c["candidate"], "metric": metric, **c} for c in compare(scores, baseline=model_ids[0])]


def costs(results: list[dict[str, Any]], participant: Participant) -> dict[str, Any]:
    """Latency and what the answers cost: mean and 95th percentile seconds, token totals, USD (None when unknown)."""
    outputs = [r["outputs"][participant.model_id] for r in results]
    seconds = sorted(o["seconds"] for o in outputs if o.get("seconds") is not None)
    costs = [o.get("cost_usd") for o in outputs]
    tokens = {key: [o.get(key) for o in outputs] for key in ("prompt_tokens", "completion_tokens")}
    scored = [o for o in outputs if o.get("reference_nll") is not None]
    tokens_scored = sum(o["reference_tokens"] for o in scored)
    return {
        # exp(mean negative log-likelihood per reference token): local models only, where token probabilities are known.
        "perplexity": round(math.exp(sum(o["reference_nll"] for o in scored) / tokens_scored), 4) if tokens_scored else None,
        "latency_seconds": round(fmean(seconds), 4) if seconds else None,
        "latency_p95_seconds": round(seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))], 4) if seconds else None,
        "prompt_tokens": sum(tokens["prompt_tokens"]) if all(t is not None for t in tokens["prompt_tokens"]) else None,
        "completion_tokens": sum(tokens["completion_tokens"]) if all(t is not None for t in tokens["completion_tokens"]) else None,
        "cost_usd": round(sum(costs), 6) if all(c is not None for c in costs) else None,
    }


def get_evaluation(ws: Workspace, eval_id: str, cases: int = 20) -> dict[str, Any]:
    row = ws.store.evaluations.get(eval_id)
    if not row:
        raise NotFoundError(f"Evaluation {eval_id!r} not found. Run evaluate to create one.")
    if row["status"] != "succeeded":
        plan = row.get("plan") or {}
        return {
            "id": eval_id,
            "status": row["status"],
            "error": redact_text(row["error"])[0] if row.get("error") else None,  # a provider's error may quote a prompt
            "dataset_id": plan.get("dataset_id"),
            "suite": plan.get("suite"),
            "models": row["models"],
            "pieces_stored": len(ws.store.evaluations.results(eval_id)),
            "next_step": f"evaluate with resume={eval_id!r} continues it" if row["status"] == "interrupted" else "it is still running",
        }
    folder = Path(row["path"])
    report = {**json.loads((folder / "report.json").read_text(encoding="utf-8")), "status": "succeeded"}
    with (folder / "cases.jsonl").open(encoding="utf-8") as handle:
        report["per_case"] = [json.loads(line) for _, line in zip(range(cases), handle)]
    return report
