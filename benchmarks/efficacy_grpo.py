"""Efficacy of GRPO: with ten demonstrations and a verifier, does SFT followed by GRPO beat SFT alone on held-out cases?

The task is benchmarks/efficacy_tasks.py's help-desk intake: reply to a customer's e-mail with one JSON object
(category, priority, customer_id, product, refund_requested) under a JSON Schema that the system message states.

* SFT alone: ten supervised examples (a dataset of 10 conversations), the local provider's default hyperparameters
  (3 epochs, batch 8, learning rate 1e-3) on the embedded SmolLM2-135M-Instruct, on CPU.
* SFT then GRPO: that SFT model continued with start_job(method="grpo", suite=...), whose prompts are 40 further
  e-mails (no answers shown to the model) and whose reward is the suite's checks: the JSON Schema (json_valid 0.25,
  schema_valid 0.75) and the reference answer (token_f1), weighted as evaluation/rewards.py states. The KL reference
  is the SFT model.
* Held out: 40 other e-mails as a suite with the same checks. Both models answer greedily; `evaluate` pairs them
  case by case (bootstrap interval of the difference, sign test, Wilcoxon) on schema_valid, the primary metric.
  The script also reports fields_correct (share of the five fields equal to the reference's).

All e-mails are distinct. The CPU time of each job is its worker's user + system time (the worker is a child of this
process, so getrusage(RUSAGE_CHILDREN) grows by exactly that); conversion of the GGUF is done before, outside it.

Usage: python benchmarks/efficacy_grpo.py OUT.json [--home DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import efficacy_tasks  # noqa: E402

from model_customization.datasets.build import build_dataset  # noqa: E402
from model_customization.evaluation.metrics import parse_json_answer  # noqa: E402
from model_customization.evaluation.runner import evaluate  # noqa: E402
from model_customization.evaluation.statistics import compare, mean_ci  # noqa: E402
from model_customization.jobs.orchestrator import start_job, wait_for_job  # noqa: E402
from model_customization.providers.local.models import EMBEDDED_MODEL, ensure_base_model  # noqa: E402
from model_customization.workspace import Workspace  # noqa: E402

CPU_BUDGET_SECONDS = 1200.0  # 20 CPU-minutes for the GRPO stage
SFT_EXAMPLES, GRPO_PROMPTS, HELD_OUT = 10, 12, 30
GRPO_HYPERPARAMETERS = {
    "epochs": 1, "batch_size": 2, "group_size": 4, "max_new_tokens": 56, "temperature": 1.0, "learning_rate": 1e-3,
    "grpo_beta": 0.04, "holdout_fraction": 0.0, "max_seq_length": 384, "seed": 0, "checkpoint_interval_steps": 10,
}  # fmt: skip
FIELDS = tuple(efficacy_tasks.INTAKE_SCHEMA["required"])


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _conversations(seed: int = 21) -> list[dict[str, Any]]:
    rng, seen, rows = random.Random(seed), set(), []
    while len(rows) < SFT_EXAMPLES + GRPO_PROMPTS + HELD_OUT:
        conversation = efficacy_tasks.intake_conversation(rng)
        email = conversation["messages"][1]["content"]
        if email not in seen:
            seen.add(email)
            rows.append(conversation)
    return rows


def _suite_case(conversation: dict[str, Any], number: int) -> dict[str, Any]:
    system, user, answer = conversation["messages"]
    return {"id": f"intake-{number}", "messages": [system, user], "json_schema": efficacy_tasks.INTAKE_SCHEMA, "reference": answer["content"]}


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def _proc_cpu(pid: int | None) -> float | None:
    """utime + stime of a live process from /proc/<pid>/stat, in seconds."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _train(ws: Workspace, what: str, **arguments: Any) -> tuple[dict[str, Any], float | None, float]:
    """(the finished job, its worker's CPU seconds, wall seconds). A data home given again (--home) keeps a job of the
    same method started earlier on the same dataset (SFT) or from the same adapter (GRPO), finished or still running:
    it is not trained twice. Its worker is then no child of this process, so its CPU time is read from /proc while it
    runs (None when it had already finished)."""
    before, started = _children_cpu(), time.monotonic()
    method = arguments.get("method", "sft")
    for earlier in ws.store.jobs.all():
        same = earlier["dataset_id"] == arguments["dataset_id"] if arguments.get("dataset_id") else earlier.get("continue_from") == arguments.get("continue_from")
        if earlier["method"] == method and same and earlier["status"] not in ("failed", "cancelled"):
            seen: dict[str, float] = {}

            def watch(summary: dict[str, Any], seen: dict[str, float] = seen) -> None:
                row = ws.store.jobs.get(summary["job_id"]) or {}
                cpu = _proc_cpu(row.get("worker_pid"))
                if cpu is not None:
                    seen["cpu"] = cpu

            done = wait_for_job(ws, earlier["id"], timeout=3 * 3600, poll=1.0, on_poll=watch)
            if done["status"] == "succeeded":
                wall = (ws.store.jobs.get(earlier["id"])["finished_at"] or time.time()) - (earlier["started_at"] or earlier["created_at"])
                return done, seen.get("cpu"), wall
    job = start_job(ws, **arguments)
    done = wait_for_job(ws, job["job_id"], timeout=3 * 3600, poll=1.0)
    if done["status"] != "succeeded":
        raise SystemExit(f"{what} job {job['job_id']} ended {done['status']}: {done['error']}")
    return done, _children_cpu() - before, time.monotonic() - started


def _fields_correct(text: str, reference: str) -> float:
    try:
        value = parse_json_answer(text)
    except ValueError:
        return 0.0
    expected = json.loads(reference)
    if not isinstance(value, dict):
        return 0.0
    return sum(1 for field in FIELDS if field in value and value[field] == expected[field]) / len(FIELDS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--home", type=Path, default=None)
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="efficacy-grpo-"))
    os.environ["MODEL_CUSTOMIZATION_HOME"] = str(home)
    os.environ.setdefault("MODEL_CUSTOMIZATION_ALLOWED_ROOTS", str(home))
    ws = Workspace.open(home)
    ensure_base_model(ws.settings, EMBEDDED_MODEL)  # GGUF conversion, outside the budget

    conversations = _conversations()
    sft_rows = conversations[:SFT_EXAMPLES]
    grpo_rows = conversations[SFT_EXAMPLES : SFT_EXAMPLES + GRPO_PROMPTS]
    held_rows = conversations[SFT_EXAMPLES + GRPO_PROMPTS :]
    data = home / "inputs"
    data.mkdir(exist_ok=True)
    sft_file = _write_jsonl(data / "intake_sft.jsonl", sft_rows)
    grpo_suite = _write_jsonl(data / "intake_grpo_suite.jsonl", [_suite_case(c, i) for i, c in enumerate(grpo_rows)])
    held_suite = _write_jsonl(data / "intake_held_out_suite.jsonl", [_suite_case(c, i) for i, c in enumerate(held_rows)])

    built = build_dataset(ws, [sft_file], seed=0, validation_fraction=0.0, test_fraction=0.0, near_duplicate_threshold=None)
    sft_done, sft_cpu, sft_wall = _train(ws, "SFT", dataset_id=built.dataset_id)
    grpo_done, grpo_cpu, grpo_wall = _train(
        ws, "GRPO", method="grpo", suite=str(grpo_suite), continue_from=sft_done["model_id"], hyperparameters=GRPO_HYPERPARAMETERS
    )
    metrics = ws.store.jobs.metrics(grpo_done["job_id"])
    rewards = [(m["step"], m["reward_mean"], m["reward_std"], m["kl"]) for m in sorted(metrics, key=lambda m: m["step"])]

    sft_model, grpo_model = sft_done["model_id"], grpo_done["model_id"]
    started = time.monotonic()
    report = evaluate(ws, None, [sft_model, grpo_model], suite=str(held_suite), primary_metric="schema_valid", max_tokens=64, batch_size=10)
    eval_wall = time.monotonic() - started
    cases = [json.loads(line) for line in (ws.settings.evals_dir / report["id"] / "cases.jsonl").read_text().splitlines()]
    fields = {m: [_fields_correct(c["outputs"][m]["text"], c["reference"]) for c in cases] for m in (sft_model, grpo_model)}
    [fields_comparison] = compare({sft_model: fields[sft_model], grpo_model: fields[grpo_model]}, baseline=sft_model)

    result = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "model": EMBEDDED_MODEL,
        "sizes": {"sft_examples": built.card["counts"]["train"], "grpo_prompts": len(grpo_rows), "held_out": len(held_rows)},
        "sft": {"job": sft_done["job_id"], "model": sft_model, "hyperparameters": sft_done["hyperparameters"], "cpu_seconds": round(sft_cpu, 1) if sft_cpu is not None else None, "wall_seconds": round(sft_wall, 1)},
        "grpo": {
            "job": grpo_done["job_id"], "model": grpo_model, "hyperparameters": GRPO_HYPERPARAMETERS, "steps": grpo_done["total_steps"],
            "cpu_seconds": round(grpo_cpu, 1) if grpo_cpu is not None else None, "wall_seconds": round(grpo_wall, 1), "cpu_budget_seconds": CPU_BUDGET_SECONDS,
            "within_budget": grpo_cpu is not None and grpo_cpu <= CPU_BUDGET_SECONDS, "rewards_per_step": rewards,
        },
        "evaluation": {
            "id": report["id"], "wall_seconds": round(eval_wall, 1), "summary": report["summary"], "comparisons": report["comparisons"],
            "fields_correct": {"sft": mean_ci(fields[sft_model]), "sft_grpo": mean_ci(fields[grpo_model]), "comparison": fields_comparison},
        },
    }  # fmt: skip
    args.out.write_text(json.dumps(result, indent=2, default=str))
    [comparison] = report["comparisons"]
    print(json.dumps({"schema_valid": comparison, "fields_correct": fields_comparison, "sft_cpu": sft_cpu, "grpo_cpu": grpo_cpu}, indent=2, default=str))


if __name__ == "__main__":
    main()
