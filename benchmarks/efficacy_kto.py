"""Efficacy of KTO: does a KTO run on labelled sessions beat the base model on held-out cases?

The task is the help-desk intake of benchmarks/efficacy_tasks.py (a customer's e-mail in, one JSON object in the
house format out), but the memory is what an agent's log holds rather than curated demonstrations: sessions judged
afterwards, some good and some not. Each session is labelled in LLaMA-Factory's KTO format (`messages` + `label`,
read by the sharegpt importer as a rating). Desirable sessions answer with the house JSON; undesirable ones (one in
three) do what intake agents get wrong: a polite prose reply, the JSON wrapped in chatter and a code fence, or the
JSON with the priority or category misjudged. The dataset is built with build_dataset(method="kto"), a LoRA adapter
is trained on the embedded SmolLM2-135M-Instruct on CPU with start_job(method="kto") within a stated budget of CPU
time, and base and tuned are evaluated (greedy) with `evaluation.runner.evaluate` on a suite made from the held-out
split's desirable sessions (each case's JSON Schema and reference): its paired comparison gives the bootstrap CI,
sign test and verdict. Primary metric schema_valid; also json_match and fields_correct (benchmarks/efficacy.py).

Training CPU time is the worker's own user + system time (getrusage of the children, as efficacy.py measures it).

Usage: python benchmarks/efficacy_kto.py OUT.json [--home DIR] [--sessions 120] [--seed 11]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import efficacy  # noqa: E402
import efficacy_tasks  # noqa: E402

from model_customization.datasets.build import build_dataset, read_split  # noqa: E402
from model_customization.datasets.examples import prompt_and_reference  # noqa: E402
from model_customization.evaluation.runner import evaluate  # noqa: E402
from model_customization.jobs.orchestrator import start_job, wait_for_job  # noqa: E402
from model_customization.providers.local.models import EMBEDDED_MODEL, ensure_base_model  # noqa: E402
from model_customization.workspace import Workspace  # noqa: E402

CPU_BUDGET_SECONDS = 600.0  # "10 CPU-minutes of KTO training": the reference pass and the KL estimate cost extra
BUILD = {"seed": 0, "validation_fraction": 0.05, "test_fraction": 0.25}
# Two desirable sessions to one undesirable: undesirable_weight 1.5 puts the weighted ratio at 4/3, inside the
# 1 to 4/3 the KTO paper advises.
HYPERPARAMETERS = {
    "epochs": 1, "batch_size": 4, "learning_rate": 2e-3, "lora_rank": 16, "max_seq_length": 384,
    "kto_beta": 0.1, "desirable_weight": 1.0, "undesirable_weight": 1.5,
}  # fmt: skip
MAX_TOKENS = 64
PROSE = [
    "Thank you for contacting Acme support! We have received your message about {product} and a member of our team will get back to you shortly.",
    "Hi! Sorry to hear about the trouble with {product}. Could you tell us a bit more so we can help?",
    "Thanks for reaching out. I've forwarded your request regarding {product} to the right team.",
]


def _undesirable(rng: random.Random, messages: list[dict[str, Any]]) -> str:
    """A wrong answer to this e-mail, of one of the kinds an intake agent gets wrong."""
    answer = json.loads(messages[-1]["content"])
    kind = rng.randrange(3)
    if kind == 0:
        return rng.choice(PROSE).format(product=answer["product"])
    if kind == 1:
        return f"Sure! Here is the ticket:\n```json\n{json.dumps(answer, indent=2)}\n```\nLet me know if you need anything else."
    wrong = dict(answer)
    field = rng.choice(["priority", "category"])
    choices = efficacy_tasks.PRIORITIES if field == "priority" else efficacy_tasks.CATEGORIES
    wrong[field] = rng.choice([c for c in choices if c != answer[field]])
    return json.dumps(wrong)


def write_labelled_sessions(out_dir: Path, seed: int, n: int) -> Path:
    """n sessions (no e-mail twice) in LLaMA-Factory's KTO JSONL: one in three undesirable."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    seen: set[str] = set()
    rows = []
    while len(rows) < n:
        messages = efficacy_tasks.intake_conversation(rng)["messages"]
        if messages[1]["content"] in seen:
            continue
        seen.add(messages[1]["content"])
        desirable = len(rows) % 3 != 2
        if not desirable:
            messages = [*messages[:-1], {"role": "assistant", "content": _undesirable(rng, messages)}]
        rows.append({"messages": messages, "label": desirable})
    path = out_dir / "labelled_intake_sessions.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def train(ws: Workspace, dataset_id: str, threads: int) -> dict[str, Any]:
    before = efficacy._children_cpu()
    started = time.monotonic()
    os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))  # read by the worker's torch only
    job = start_job(ws, dataset_id, base_model=EMBEDDED_MODEL, method="kto", hyperparameters=HYPERPARAMETERS)
    summary = wait_for_job(ws, job["job_id"], timeout=7200, poll=1.0)
    pid = ws.store.jobs.get(job["job_id"])["worker_pid"]
    if pid:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    if summary["status"] != "succeeded":
        raise SystemExit(f"job {job['job_id']} ended {summary['status']}: {summary['error']}")
    return {**summary, "worker_cpu_seconds": round(efficacy._children_cpu() - before, 1), "job_wall_seconds": round(time.monotonic() - started, 1), "threads": threads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--sessions", type=int, default=120)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    home = args.home or args.out.with_suffix(".home")
    ws = Workspace.open(home)
    ensure_base_model(ws.settings, EMBEDDED_MODEL)  # the one-off GGUF conversion, outside the budget
    started = time.monotonic()
    memory = write_labelled_sessions(home / "memory", args.seed, args.sessions)
    built = build_dataset(ws, [memory], name="efficacy: kto intake", method="kto", **BUILD)
    card = ws.store.datasets.get(built.dataset_id)["card"]
    print(f"dataset {built.dataset_id}: {built.counts}, desirable {card['kto']['desirable']}, undesirable {card['kto']['undesirable']}", flush=True)
    trained = train(ws, built.dataset_id, args.threads)
    tuned = trained["model_id"]
    print(f"{tuned}: {trained['total_steps']} steps, worker CPU {trained['worker_cpu_seconds']} s, train loss {trained['train_loss']:.3f}", flush=True)

    held_out = read_split(ws, built.dataset_id, "test")
    suite = home / "kto_intake_suite.jsonl"
    cases = [prompt_and_reference(row) for row in held_out if row["label"]]
    suite.write_text("".join(json.dumps({"messages": p, "reference": r, "json_schema": efficacy_tasks.INTAKE_SCHEMA}) + "\n" for p, r in cases), encoding="utf-8")
    report = evaluate(ws, None, [EMBEDDED_MODEL, tuned], suite=suite, max_tokens=MAX_TOKENS, primary_metric="schema_valid")
    models = [EMBEDDED_MODEL, tuned]
    comparison = report["comparisons"][0]
    outputs = efficacy._cases(ws, report["id"])
    extra = {m: [efficacy.intake_scores(c["outputs"][m]["text"], c["reference"]) for c in outputs] for m in models}
    secondary = {metric: efficacy.paired({m: [row[metric] for row in extra[m]] for m in models}, EMBEDDED_MODEL) for metric in extra[EMBEDDED_MODEL][0]}
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "cpu_budget_seconds": CPU_BUDGET_SECONDS,
        "dataset_id": built.dataset_id,
        "counts": built.counts,
        "labels": card["kto"],
        "held_out_undesirable_left_out": sum(1 for row in held_out if not row["label"]),
        "training": {k: trained[k] for k in ("job_id", "model_id", "total_steps", "train_loss", "validation_loss", "hyperparameters", "worker_cpu_seconds", "job_wall_seconds", "threads")},
        "within_budget": trained["worker_cpu_seconds"] <= CPU_BUDGET_SECONDS,
        "eval_id": report["id"],
        "cases": report["cases"],
        "primary": {
            "base": report["confidence_intervals"][EMBEDDED_MODEL]["schema_valid"],
            "tuned": report["confidence_intervals"][tuned]["schema_valid"],
            **{k: comparison.get(k) for k in ("mean_difference", "low", "high", "wins_a", "wins_b", "ties", "sign_test_p", "wilcoxon_p", "significant", "verdict")},
        },
        "secondary": secondary,
        "examples": [{"reference": c["reference"], "base": c["outputs"][EMBEDDED_MODEL]["text"], "tuned": c["outputs"][tuned]["text"]} for c in outputs[:3]],
        "seconds": round(time.monotonic() - started, 1),
    }
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    p = result["primary"]
    print(f"schema_valid base {p['base']['mean']:.3f} tuned {p['tuned']['mean']:.3f} difference {p['mean_difference']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}] sign p {p['sign_test_p']:.2g} ({p['verdict']})")
    for metric, s in secondary.items():
        base, tuned_ci = s["means"].values()
        print(f"{metric}: base {base['mean']:.3f} tuned {tuned_ci['mean']:.3f} difference {s['mean_difference']:+.3f} sign p {s['sign_test_p']:.2g}")
    print(f"results in {args.out}; data home {home}")


if __name__ == "__main__":
    main()
