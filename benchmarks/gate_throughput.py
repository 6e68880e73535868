"""The gate's throughput against two references, side by side in one process on the same file.

Usage: python benchmarks/gate_throughput.py FILE.jsonl [--model gpt-4.1-mini] [--repeat 1]

* cookbook: benchmarks/baseline_cookbook.py (OpenAI's data-preparation notebook recipe, cl100k_base);
* floor: parse every line and encode the text of every message once (the same text the gate counts, with the
  gate's encoding), nothing else;
* ours: inspect_dataset(path=FILE, provider="openai", model=MODEL): validation, token counting and the quote.

Encodings are loaded before the clock starts, and the gate's token-count cache is emptied before each of its runs,
so every run starts cold. Prints one JSON line with seconds, MB/s and the ratios (ours/cookbook speed, ours/floor).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tempfile
import time

from model_customization.datasets import tokens as tokens_module
from model_customization.datasets.inspect import inspect_dataset
from model_customization.datasets.quote import openai_terms
from model_customization.datasets.tokens import _encoding, _message_text, encoding_name_for
from model_customization.workspace import Workspace

import baseline_cookbook  # noqa: E402  (benchmarks/ is on sys.path when this script runs)


def floor(path: str, encoding) -> int:
    total = 0
    with open(path, "rb") as handle:
        for raw in handle:
            row = json.loads(raw)
            for message in row.get("messages") or []:
                total += len(encoding.encode_ordinary(_message_text(message)))
    return total


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--model", default="gpt-4.1-mini")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    size_mb = os.path.getsize(args.file) / 1e6
    encoding_name = encoding_name_for(openai_terms(args.model).snapshot)
    ours_encoding, cl100k = _encoding(encoding_name), baseline_cookbook._encoding()
    times: dict[str, list[float]] = {"cookbook": [], "floor": [], "ours": []}
    with tempfile.TemporaryDirectory() as home:
        ws = Workspace.open(home)
        for _ in range(args.repeat):
            seconds, _ = timed(lambda: baseline_cookbook.analyse(args.file, out=io.StringIO(), encoding=cl100k))
            times["cookbook"].append(seconds)
            seconds, floor_tokens = timed(lambda: floor(args.file, ours_encoding))
            times["floor"].append(seconds)
            tokens_module._cache.clear()
            tokens_module._cache_chars = 0
            seconds, report = timed(lambda: inspect_dataset(ws, path=args.file, provider="openai", model=args.model))
            times["ours"].append(seconds)
    best = {k: min(v) for k, v in times.items()}
    print(json.dumps({
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "file_mb": round(size_mb, 1),
        "examples": sum(report["counts"].values()),
        "seconds": {k: round(v, 2) for k, v in best.items()},
        "mb_per_s": {k: round(size_mb / v, 1) for k, v in best.items()},
        "ours_vs_cookbook_speed": round(best["cookbook"] / best["ours"], 2),
        "ours_vs_floor_speed": round(best["floor"] / best["ours"], 2),
        "ours_tokens_train": report["token_stats"].get("train", {}).get("total"),
        "floor_message_tokens": floor_tokens,
        "ours_valid": report["valid"],
        "ours_finding_counts": report["finding_counts"],
    }))


if __name__ == "__main__":
    main()
