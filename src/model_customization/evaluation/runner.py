"""Evaluate two or more models on a dataset's held-out split: generate, score, store.

Each case's prompt is the conversation up to its last assistant turn and the reference is that turn. Outputs are
greedy, so a run is repeatable; cases are generated in batches for speed. Per-case outputs go to `cases.jsonl` in the evaluation's folder and the per-model
means to the ledger; both are served as `evals://{id}`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import fmean
from typing import Any

from model_customization.datasets.build import get_dataset, read_split
from model_customization.datasets.examples import prompt_and_reference
from model_customization.errors import NotFoundError, UserError
from model_customization.evaluation.metrics import METRICS
from model_customization.providers.local.inference import generate_greedy_batch, resolve_model
from model_customization.workspace import Workspace

ProgressFn = Callable[[int, int, str], None]
SPLITS = ("train", "validation", "test")


def evaluate(
    ws: Workspace,
    dataset_id: str,
    models: Sequence[str],
    *,
    split: str = "test",
    max_tokens: int = 64,
    limit: int | None = None,
    batch_size: int = 8,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    if len(models) < 2:
        raise UserError("evaluate compares models: give at least two, e.g. the base model and the tuned model_id from check_job.")
    if len(set(models)) != len(models):
        raise UserError(f"The same model is listed twice in {list(models)}; list each model once.")
    if split not in SPLITS:
        raise UserError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    get_dataset(ws, dataset_id)
    resolved = [resolve_model(ws, m) for m in models]  # refuse unknown models before any generation
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
    total = len(cases) * len(resolved)
    done = 0
    for model in resolved:
        for start in range(0, len(cases), batch_size):
            chunk = results[start : start + batch_size]
            answers = generate_greedy_batch(ws, model.model_id, [r["prompt"] for r in chunk], max_tokens=max_tokens, batch_size=batch_size)
            for row, answer in zip(chunk, answers):
                scores = {name: fn(answer["text"], row["reference"]) for name, fn in METRICS.items()}
                row["outputs"][model.model_id] = {"text": answer["text"], "seconds": answer["seconds"], **scores}
            done += len(chunk)
            if progress:
                progress(done, total, f"{model.model_id}: {start + len(chunk)}/{len(cases)} cases")

    summary = {
        model.model_id: {name: round(fmean(r["outputs"][model.model_id][name] for r in results), 4) for name in METRICS}
        for model in resolved
    }
    model_ids = [m.model_id for m in resolved]
    report = {"id": eval_id, "dataset_id": dataset_id, "split": split, "models": model_ids, "cases": len(results), "summary": summary}

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


def get_evaluation(ws: Workspace, eval_id: str, cases: int = 20) -> dict[str, Any]:
    row = ws.ledger.get_evaluation(eval_id)
    if not row:
        raise NotFoundError(f"Evaluation {eval_id!r} not found. Run evaluate to create one.")
    folder = Path(row["path"])
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    with (folder / "cases.jsonl").open(encoding="utf-8") as handle:
        report["per_case"] = [json.loads(line) for _, line in zip(range(cases), handle)]
    return report
