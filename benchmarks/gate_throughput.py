"""The gate's throughput against two references, side by side in one run on the same file.

Usage: python benchmarks/gate_throughput.py FILE.jsonl [--model gpt-4.1-mini] [--repeat 1] [--before-src DIR]

* cookbook: benchmarks/baseline_cookbook.py (OpenAI's data-preparation notebook recipe, cl100k_base), one process;
* floor: parse every line and count the tokens of every message's text once (the same text the gate counts, with
  the gate's encoding and the tokenizer's count call), one process, nothing else;
* ours: inspect_dataset(path=FILE, provider="openai", model=MODEL): validation, duplicates, token counting and the
  quote (a pool of worker processes on a file of 8 MB or more when there are several cores);
* ours_before (with --before-src DIR, e.g. the src folder of `git archive` of an earlier commit): the same call
  with that source tree first on the import path, to compare a change side by side.

Each variant runs in a fresh process of its own, one after the other (repeated --repeat times, interleaved), with
its encoding loaded before the clock starts (and, for ours, the modules the gate imports on first use, by a run on
the file's first 20 lines, as in a running server); it reports wall seconds, CPU seconds (its own and its children's) and
peak RSS (its own, and the largest of its children's). Prints one JSON line: the best wall time of each, MB/s, the
ratios (cookbook/ours and floor/ours wall time), the medians and what each counted.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

VARIANTS = ("cookbook", "floor", "ours")


def _floor(path: str, encoding_name: str) -> int:
    from model_customization.datasets.tokens import _counter, _message_text

    count = _counter(encoding_name)
    total = 0
    with open(path, "rb") as handle:
        for raw in handle:
            row = json.loads(raw)
            for message in row.get("messages") or []:
                total += count(_message_text(message))
    return total


def run_one(variant: str, path: str, model: str) -> dict:
    """In a fresh process: one variant, timed after its encoding is loaded."""
    from model_customization.datasets import tokens
    from model_customization.datasets.quote import openai_terms
    from model_customization.datasets.tokens import encoding_name_for

    encoding_name = encoding_name_for(openai_terms(model).snapshot)
    if variant == "cookbook":
        import baseline_cookbook  # noqa: E402  (benchmarks/ is on sys.path when this script runs)

        cl100k = baseline_cookbook._encoding()
        work = lambda: baseline_cookbook.analyse(path, out=io.StringIO(), encoding=cl100k)["tokens"]  # noqa: E731
    elif variant == "floor":
        tokens._counter(encoding_name)
        work = lambda: _floor(path, encoding_name)  # noqa: E731
    else:
        from model_customization.datasets.inspect import inspect_dataset
        from model_customization.workspace import Workspace

        getattr(tokens, "_counter", tokens._encoding)(encoding_name)  # (_encoding in an earlier source tree)
        home = tempfile.mkdtemp()
        os.environ["MODEL_CUSTOMIZATION_ALLOWED_ROOTS"] = os.pathsep.join([os.path.dirname(os.path.abspath(path)), home])
        ws = Workspace.open(home)
        # Warm, as in a running server: the modules inspect_dataset imports on first use, loaded on a short file.
        warm = os.path.join(home, "warm.jsonl")
        with open(path, "rb") as source, open(warm, "wb") as head:
            head.writelines(itertools.islice(source, 20))
        inspect_dataset(ws, path=warm, provider="openai", model=model)

        def work():
            report = inspect_dataset(ws, path=path, provider="openai", model=model)
            return {"train_tokens": report["token_stats"].get("train", {}).get("total"), "valid": report["valid"], "finding_counts": report["finding_counts"]}

    before = os.times()
    start = time.perf_counter()
    result = work()
    wall = time.perf_counter() - start
    after = os.times()
    return {
        "wall_s": wall,
        "cpu_s": (after.user - before.user) + (after.system - before.system),
        "children_cpu_s": (after.children_user - before.children_user) + (after.children_system - before.children_system),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "result": result,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--model", default="gpt-4.1-mini")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--before-src")
    parser.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.file, args.model)))
        return
    size_mb = os.path.getsize(args.file) / 1e6
    variants = [*VARIANTS, "ours_before"] if args.before_src else list(VARIANTS)
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    load = os.getloadavg()[0]
    for _ in range(args.repeat):
        for variant in variants:
            env = dict(os.environ)
            if variant == "ours_before":
                env["PYTHONPATH"] = os.pathsep.join([os.path.abspath(args.before_src), env.get("PYTHONPATH", "")])
            command = [sys.executable, __file__, args.file, "--model", args.model, "--one", variant.removesuffix("_before")]
            out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
            runs[variant].append(json.loads(out.strip().splitlines()[-1]))
    best = {v: min(runs[v], key=lambda r: r["wall_s"]) for v in variants}
    print(json.dumps({
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average before/after {load:.1f}/{os.getloadavg()[0]:.1f}",
        "file_mb": round(size_mb, 1),
        "repeat": args.repeat,
        "wall_s": {v: round(best[v]["wall_s"], 2) for v in variants},
        "median_wall_s": {v: round(statistics.median(r["wall_s"] for r in runs[v]), 2) for v in variants},
        "mb_per_s": {v: round(size_mb / best[v]["wall_s"], 1) for v in variants},
        "cpu_s": {v: round(best[v]["cpu_s"] + best[v]["children_cpu_s"], 2) for v in variants},
        "peak_rss_mb": {v: round(best[v]["peak_rss_mb"]) for v in variants},
        "workers_peak_rss_mb": round(best["ours"]["children_peak_rss_mb"]),
        "ours_vs_cookbook_speed": round(best["cookbook"]["wall_s"] / best["ours"]["wall_s"], 2),
        "ours_vs_floor_speed": round(best["floor"]["wall_s"] / best["ours"]["wall_s"], 2),
        "ours_cpu_vs_cookbook_cpu": round((best["cookbook"]["cpu_s"] + best["cookbook"]["children_cpu_s"]) / (best["ours"]["cpu_s"] + best["ours"]["children_cpu_s"]), 2),
        "results": {v: best[v]["result"] for v in variants},
    }))


if __name__ == "__main__":
    main()
