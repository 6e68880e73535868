"""Efficacy: does tuning the embedded model on an agent's transcripts beat the base model on held-out cases?

Three tasks, each: build a dataset from agent memory, train a LoRA adapter on the embedded SmolLM2-135M-Instruct
on CPU within a budget of CPU time, then evaluate base against tuned (greedy) on held-out cases with
`evaluation.runner.evaluate`, whose report gives the paired comparison (bootstrap CI of the difference, sign test,
Wilcoxon, verdict).

* triage: the shipped demo memory (log triage, Claude Code + OpenAI chat); primary metric exact_match.
* tool_calls: Claude Code transcripts of a deployment assistant (benchmarks/efficacy_tasks.py); the held-out
  reference is the session's last tool call, which the local model sees and writes as
  `<tool_call>{"name": ..., "arguments": ...}</tool_call>` (datasets/examples.render_tool_calls). Primary metric
  exact_match (the whole call, as rendered); the script also scores the call itself (name, arguments, both) with
  metrics.tool_call_scores on the JSON inside the tags, paired with the same statistics.
* json_intake: OpenAI chat JSONL of a help-desk intake agent whose system message gives a JSON Schema; evaluated
  as a suite built from the held-out split, with each case's json_schema and reference. Primary metric
  schema_valid; the script adds json_match (the answer's JSON value equals the reference's, whatever the key order
  or spacing) and fields_correct (share of the five fields right), paired with the same statistics.

Held-out cases are the test split of each dataset (split by session, disjoint from training). Training CPU time is
the worker process's own user + system time: the worker is a child of this process (start_job spawns it here, and
check_job reaps it), so the growth of getrusage(RUSAGE_CHILDREN) over the job is exactly its CPU time (conversion
of the GGUF to an HF folder is done before, outside the budget). /proc/<pid>/stat, polled each second while it
runs, is a cross-check.

Usage: python benchmarks/efficacy.py OUT.json [--home DIR] [--tasks triage,tool_calls,json_intake]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import efficacy_tasks  # noqa: E402

from model_customization.datasets.build import build_dataset, read_split  # noqa: E402
from model_customization.datasets.examples import prompt_and_reference  # noqa: E402
from model_customization.evaluation.metrics import parse_json_answer, tool_call_scores  # noqa: E402
from model_customization.evaluation.runner import evaluate  # noqa: E402
from model_customization.evaluation.statistics import compare, mean_ci  # noqa: E402
from model_customization.jobs.orchestrator import start_job, wait_for_job  # noqa: E402
from model_customization.providers.local.models import EMBEDDED_MODEL, ensure_base_model  # noqa: E402
from model_customization.workspace import Workspace  # noqa: E402

CPU_BUDGET_SECONDS = 300.0  # "5 CPU-minutes of training per task"

# Per task: how to build its dataset, how to train, how to evaluate. The hyperparameters were chosen to stay inside
# the CPU budget with margin on this 2-core machine (see BENCHMARKS.md).
TASKS: dict[str, dict[str, Any]] = {
    "triage": {
        "sessions": None,  # the shipped demo memory: 160 sessions
        "build": {"seed": 0, "validation_fraction": 0.05, "test_fraction": 0.25},
        "hyperparameters": {"epochs": 2, "batch_size": 8, "learning_rate": 1e-3, "lora_rank": 16, "max_seq_length": 256},
        "max_tokens": 24,
        "primary_metric": "exact_match",
    },
    "tool_calls": {
        "sessions": 200,
        "build": {"seed": 0, "validation_fraction": 0.05, "test_fraction": 0.2},
        "hyperparameters": {"epochs": 1, "batch_size": 4, "learning_rate": 1e-3, "lora_rank": 16, "max_seq_length": 384},
        "max_tokens": 64,
        "primary_metric": "exact_match",
    },
    "json_intake": {
        "sessions": 160,
        "build": {"seed": 0, "validation_fraction": 0.05, "test_fraction": 0.25},
        "hyperparameters": {"epochs": 1, "batch_size": 4, "learning_rate": 1e-3, "lora_rank": 16, "max_seq_length": 384},
        "max_tokens": 64,
        "primary_metric": "schema_valid",
    },
}
TOOL_CALL_TAG = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
INTAKE_FIELDS = tuple(efficacy_tasks.INTAKE_SCHEMA["required"])


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _proc_cpu(pid: int) -> float | None:
    """utime + stime of a live process from /proc/<pid>/stat, in seconds."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_paths(task: str, memory_dir: Path, seed: int) -> list[Path]:
    if task == "triage":
        from model_customization.demo_data import demo_memory_paths

        return demo_memory_paths()
    if task == "tool_calls":
        folder = memory_dir / "tool_calls"
        efficacy_tasks.write_tool_call_sessions(folder, seed=seed, n=TASKS[task]["sessions"])
        return [folder]
    if task == "json_intake":
        return [efficacy_tasks.write_json_intake_sessions(memory_dir / "json_intake", seed=seed, n=TASKS[task]["sessions"])]
    raise SystemExit(f"unknown task {task!r}; use {', '.join(TASKS)}")


def train(ws: Workspace, dataset_id: str, hyperparameters: dict[str, Any], threads: int) -> dict[str, Any]:
    """Run one local job to the end; its summary plus the worker's CPU seconds (rusage and /proc)."""
    before = _children_cpu()
    started = time.monotonic()
    saved = {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))  # read by the worker's torch only
    try:
        job = start_job(ws, dataset_id, base_model=EMBEDDED_MODEL, hyperparameters=hyperparameters)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    last_seen: dict[str, float] = {}

    def watch(summary: dict[str, Any]) -> None:
        pid = ws.store.jobs.get(summary["job_id"])["worker_pid"]
        if pid and (seconds := _proc_cpu(pid)) is not None:
            last_seen["cpu"] = seconds

    summary = wait_for_job(ws, job["job_id"], timeout=3600, poll=1.0, on_poll=watch)
    pid = ws.store.jobs.get(job["job_id"])["worker_pid"]
    if pid:
        try:
            os.waitpid(pid, 0)  # reaped already by check_job in the usual case
        except ChildProcessError:
            pass
    cpu = _children_cpu() - before
    if summary["status"] != "succeeded":
        raise SystemExit(f"job {job['job_id']} ended {summary['status']}: {summary['error']}")
    return {
        **summary,
        "worker_cpu_seconds": round(cpu, 1),
        "worker_cpu_seconds_proc_last_poll": round(last_seen.get("cpu", 0.0), 1),
        "job_wall_seconds": round(time.monotonic() - started, 1),
        "threads": threads,
    }


def paired(scores: dict[str, list[float]], baseline: str) -> dict[str, Any]:
    comparison = compare(scores, baseline=baseline)[0]
    return {
        "means": {m: mean_ci(v) for m, v in scores.items()},
        **{k: comparison[k] for k in ("mean_difference", "low", "high", "wins_a", "wins_b", "ties", "sign_test_p", "wilcoxon_p", "significant", "verdict") if k in comparison},
    }


def _cases(ws: Workspace, eval_id: str) -> list[dict[str, Any]]:
    path = ws.settings.evals_dir / eval_id / "cases.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def call_scores(text: str, reference: str) -> dict[str, float]:
    """Score the call inside <tool_call> tags against the reference's call (metrics.tool_call_scores reads JSON,
    not the tags our local rendering wraps it in)."""
    expected = json.loads(TOOL_CALL_TAG.search(reference).group(1))
    found = TOOL_CALL_TAG.search(text)
    return tool_call_scores(found.group(1).strip() if found else text, expected)


def intake_scores(text: str, reference: str) -> dict[str, float]:
    expected = json.loads(reference)
    try:
        value = parse_json_answer(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        return {"json_match": 0.0, "fields_correct": 0.0}
    right = sum(1 for field in INTAKE_FIELDS if field in value and value[field] == expected[field] and type(value[field]) is type(expected[field]))
    return {"json_match": float(value == expected and right == len(INTAKE_FIELDS)), "fields_correct": right / len(INTAKE_FIELDS)}


def write_intake_suite(ws: Workspace, dataset_id: str, path: Path) -> int:
    """A suite from the held-out split: each case's prompt, reference and the schema its answer must meet."""
    rows = []
    for example in read_split(ws, dataset_id, "test"):
        prompt, reference = prompt_and_reference(example)
        rows.append({"messages": prompt, "reference": reference, "json_schema": efficacy_tasks.INTAKE_SCHEMA})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return len(rows)


def run_task(ws: Workspace, task: str, memory_dir: Path, seed: int, threads: int) -> dict[str, Any]:
    spec = TASKS[task]
    print(f"== {task}", flush=True)
    built = build_dataset(ws, memory_paths(task, memory_dir, seed), name=f"efficacy: {task}", **spec["build"])
    print(f"   dataset {built.dataset_id}: {built.counts}", flush=True)
    trained = train(ws, built.dataset_id, spec["hyperparameters"], threads)
    tuned = trained["model_id"]
    print(f"   {tuned}: {trained['total_steps']} steps, worker CPU {trained['worker_cpu_seconds']} s, train loss {trained['train_loss']:.3f}", flush=True)
    options: dict[str, Any] = {"max_tokens": spec["max_tokens"], "primary_metric": spec["primary_metric"]}
    if task == "json_intake":
        suite = memory_dir / "json_intake_suite.jsonl"
        write_intake_suite(ws, built.dataset_id, suite)
        report = evaluate(ws, None, [EMBEDDED_MODEL, tuned], suite=suite, **options)
    else:
        report = evaluate(ws, built.dataset_id, [EMBEDDED_MODEL, tuned], **options)
    models = [EMBEDDED_MODEL, tuned]
    primary = spec["primary_metric"]
    comparison = report["comparisons"][0]
    result: dict[str, Any] = {
        "task": task,
        "dataset_id": built.dataset_id,
        "counts": built.counts,
        "training": {k: trained[k] for k in ("job_id", "model_id", "total_steps", "train_loss", "validation_loss", "hyperparameters", "worker_cpu_seconds", "worker_cpu_seconds_proc_last_poll", "job_wall_seconds", "threads")},
        "within_budget": trained["worker_cpu_seconds"] <= CPU_BUDGET_SECONDS,
        "eval_id": report["id"],
        "cases": report["cases"],
        "max_tokens": spec["max_tokens"],
        "primary_metric": primary,
        "primary": {
            "base": report["confidence_intervals"][EMBEDDED_MODEL][primary],
            "tuned": report["confidence_intervals"][tuned][primary],
            **{k: comparison.get(k) for k in ("mean_difference", "low", "high", "wins_a", "wins_b", "ties", "sign_test_p", "wilcoxon_p", "significant", "verdict")},
        },
        "summary": report["summary"],
        "secondary": {},
    }
    cases = _cases(ws, report["id"])
    extra = None
    if task == "tool_calls":
        extra = {m: [call_scores(c["outputs"][m]["text"], c["reference"]) for c in cases] for m in models}
    elif task == "json_intake":
        extra = {m: [intake_scores(c["outputs"][m]["text"], c["reference"]) for c in cases] for m in models}
    if extra:
        for metric in extra[EMBEDDED_MODEL][0]:
            result["secondary"][metric] = paired({m: [row[metric] for row in extra[m]] for m in models}, EMBEDDED_MODEL)
    for metric in ("token_f1", "exact_match"):
        if report["summary"][EMBEDDED_MODEL].get(metric) is not None and metric != primary:
            result["secondary"][metric] = paired({m: [c["outputs"][m][metric] for c in cases] for m in models}, EMBEDDED_MODEL)
    result["examples"] = [{"reference": c["reference"], "base": c["outputs"][EMBEDDED_MODEL]["text"], "tuned": c["outputs"][tuned]["text"]} for c in cases[:3]]
    return result


def _ci(entry: dict[str, Any]) -> str:
    return f"{entry['mean']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="where to write the JSON results")
    parser.add_argument("--home", type=Path, default=None, help="data home (default: a new folder next to OUT)")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--seed", type=int, default=11, help="seed of the generated transcripts")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training worker (1: no OpenMP spin-waiting on a shared machine)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    home = args.home or args.out.with_suffix(".home")
    ws = Workspace.open(home)
    ensure_base_model(ws.settings, EMBEDDED_MODEL)  # the one-off GGUF conversion, outside the training budget
    memory_dir = home / "memory"
    started = time.monotonic()
    results = [run_task(ws, task, memory_dir, args.seed, args.threads) for task in args.tasks.split(",")]
    output = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "cpu_budget_seconds": CPU_BUDGET_SECONDS,
        "seconds": round(time.monotonic() - started, 1),
        "tasks": results,
    }
    args.out.write_text(json.dumps(output, indent=2), encoding="utf-8")
    print()
    print(f"{'task':<12} {'train/test':>10} {'steps':>5} {'CPU s':>6}  {'metric':<20} {'base':<22} {'tuned':<22} {'difference':<24} {'sign p':>8}")
    for r in results:
        p = r["primary"]
        print(
            f"{r['task']:<12} {r['counts']['train']:>5}/{r['cases']:<4} {r['training']['total_steps']:>5} {r['training']['worker_cpu_seconds']:>6}  "
            f"{r['primary_metric']:<20} {_ci(p['base']):<22} {_ci(p['tuned']):<22} {p['mean_difference']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}]   {p['sign_test_p']:>8.2g}"
        )
        for metric, s in r["secondary"].items():
            base, tuned = s["means"].values()
            print(f"{'':<12} {'':>10} {'':>5} {'':>6}  {metric:<20} {_ci(base):<22} {_ci(tuned):<22} {s['mean_difference']:+.3f} [{s['low']:+.3f}, {s['high']:+.3f}]   {s['sign_test_p']:>8.2g}")
    print(f"\nresults in {args.out}; data home {home}")


if __name__ == "__main__":
    main()
