"""Evaluation generation: one case at a time vs batches of 8, side by side on the same cases and models.

Usage: python benchmarks/eval_batching.py HOME [--cases 24] [--max-tokens 32]
HOME is a data home where `model-customization demo` has run (it has the demo dataset and a tuned model).
Prints wall time per mode, the speed-up, and how many answers agree exactly between the two modes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from model_customization.datasets.build import read_split
from model_customization.datasets.examples import prompt_and_reference
from model_customization.providers.local.inference import generate, generate_greedy_batch
from model_customization.providers.local.models import EMBEDDED_MODEL
from model_customization.workspace import Workspace


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("home")
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()

    ws = Workspace.open(args.home)
    tuned = next(m["id"] for m in ws.store.models.all() if m["kind"] == "tuned")
    dataset_id = ws.store.models.get(tuned)["dataset_id"]
    prompts = [prompt_and_reference(e)[0] for e in read_split(ws, dataset_id, "test")[: args.cases]]

    results = {}
    for model in (EMBEDDED_MODEL, tuned):
        generate(ws, model, prompts[0], max_tokens=1)  # load the model outside the timings
        started = time.perf_counter()
        one_by_one = [generate(ws, model, p, max_tokens=args.max_tokens)["text"] for p in prompts]
        sequential = time.perf_counter() - started
        started = time.perf_counter()
        batched = [a["text"] for a in generate_greedy_batch(ws, model, prompts, max_tokens=args.max_tokens, batch_size=8)]
        batch_time = time.perf_counter() - started
        results[model] = {
            "cases": len(prompts),
            "one_at_a_time_s": round(sequential, 2),
            "batches_of_8_s": round(batch_time, 2),
            "speedup": round(sequential / batch_time, 2),
            "identical_answers": sum(a == b for a, b in zip(one_by_one, batched)),
        }
    print(json.dumps({"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "max_tokens": args.max_tokens, "results": results}, indent=2))


if __name__ == "__main__":
    main()
