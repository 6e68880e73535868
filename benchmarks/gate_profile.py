"""Where the gate's CPU time goes, stage by stage, on one file (CPU seconds, so that other work on the machine
inflates the numbers less than it does wall time).

Usage: python benchmarks/gate_profile.py FILE.jsonl [--encoding o200k_base]

One process, each stage over every line or row of the file: reading the lines; parsing as the gate does it
(validate.parse_line: orjson, json where it could differ) and with json alone, as before; the format checks
(row_findings); the duplicate digest as the gate does it (row_digest) and as before (json sorted, SHA-256); token
counting as the gate does it (count_chat_tokens, with its caches, emptied first); the rows measured as a worker
measures them (format checks and count, plain chat rows without the checks); the tokenizer alone on the same
message texts (no cache); the merge in file order (RowValidator.record); and what the cookbook's counting costs on
the same rows (an encode of every value of every message, then of the assistant contents).

Then the pool as inspect_dataset runs it (two workers when there are two cores): the parent's scan for line ends
alone, and the whole measure_chat_rows with the parent's CPU (scan, submitting ranges, receiving results, merging)
and the workers' (reading their ranges, parsing, checking, digesting, counting) apart.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import baseline_cookbook  # noqa: E402  (benchmarks/ is on sys.path when this script runs)

from model_customization.datasets import tokens
from model_customization.datasets.validate import RowValidator, parse_line, row_digest, row_findings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--encoding", default="o200k_base")
    args = parser.parse_args()
    count = tokens._counter(args.encoding)
    cl100k = baseline_cookbook._encoding()
    stages: dict[str, float] = {}

    def stage(name, work):
        tokens._cache.clear()
        tokens._cache_chars = 0
        getattr(tokens, "_long_cache", {}).clear()
        start = time.process_time()
        result = work()
        stages[name] = round(time.process_time() - start, 3)
        return result

    lines = stage("read lines", lambda: open(args.file, "rb").readlines())
    parsed = stage("parse (gate: orjson, json where it could differ)", lambda: [parse_line("train", i, raw, 1 << 40)[0] for i, raw in enumerate(lines, 1)])
    stage("parse (json alone, before)", lambda: [json.loads(raw.decode()) if raw.strip() else None for raw in lines])
    rows = [r for r in parsed if isinstance(r, dict)]
    findings = stage("format checks", lambda: [row_findings("train", 1, r) for r in rows])
    digests = stage("duplicate digest (gate)", lambda: [row_digest(r) for r in rows])
    stage("duplicate digest (before: json sorted, SHA-256)", lambda: [hashlib.sha256(json.dumps(r, sort_keys=True).encode()).digest() for r in rows])
    chats = [r for r in rows if isinstance(r.get("messages"), list) and not any(f.severity == "error" for f in row_findings("train", 1, r))]
    stage("token counts (gate, cached)", lambda: [tokens.count_chat_tokens(tokens.chat_messages(r), args.encoding, r.get("tools")) for r in chats])
    if hasattr(tokens, "_plain_chat_tokens"):
        stage("rows measured as a worker does (plain rows without the checks; checks + count otherwise)", lambda: [tokens._measure_row("train", 1, r, args.encoding, None, b"") for r in rows])
    texts = [tokens._message_text(m) for r in chats for m in r["messages"]]
    stage("tokenizer alone (count, no cache)", lambda: [count(t[i : i + tokens._CHUNK_CHARS]) for t in texts for i in range(0, len(t), tokens._CHUNK_CHARS)])

    def merge():
        validator = RowValidator()
        for line, (found, digest) in enumerate(zip(findings, digests, strict=True), 1):
            validator.record("train", line, found, digest)

    stage("merge in file order (RowValidator.record)", merge)
    stage("cookbook counting (cl100k encode x2)", lambda: [(baseline_cookbook.num_tokens_from_messages(cl100k, r["messages"]), baseline_cookbook.num_assistant_tokens_from_messages(cl100k, r["messages"])) for r in chats])
    n_rows, text_mchars = len(rows), round(sum(map(len, texts)) / 1e6, 1)

    # The pool, as inspect_dataset runs it.
    from model_customization.datasets.inspect import FileRows

    def scan():
        with open(args.file, "rb") as handle:
            return sum(1 for _ in tokens._line_ranges("train", handle.fileno(), 1 << 40, tokens.BATCH_BYTES))

    stage("pool: parent's scan for line ends alone", scan)
    os.environ.setdefault("MODEL_CUSTOMIZATION_ALLOWED_ROOTS", str(Path(args.file).resolve().parent))
    rows_of_file = FileRows([("train", Path(args.file))], stored=True)
    tokens._cache.clear()
    getattr(tokens, "_long_cache", {}).clear()
    before, start = os.times(), time.perf_counter()
    tokens.measure_chat_rows(rows_of_file, args.encoding)
    wall, after = time.perf_counter() - start, os.times()
    pool = {
        "workers": tokens._worker_count() if os.path.getsize(args.file) >= tokens.PARALLEL_MIN_BYTES else 0,
        "wall_s": round(wall, 3),
        "parent_cpu_s": round(after.user - before.user + after.system - before.system, 3),
        "workers_cpu_s": round(after.children_user - before.children_user + after.children_system - before.children_system, 3),
    }
    print(json.dumps({"file": args.file, "rows": n_rows, "message_text_mchars": text_mchars, "cpu_s": stages, "pool": pool}))


if __name__ == "__main__":
    main()
