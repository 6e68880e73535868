"""Where the gate's CPU time goes, stage by stage, on one file (one process, CPU seconds, so that other work on
the machine inflates the numbers less than it does wall time).

Usage: python benchmarks/gate_profile.py FILE.jsonl [--encoding o200k_base]

Stages, each over every line or row of the file: reading the lines; parsing (validate.parse_line); the format
checks (row_findings); the duplicate digest (row_digest); token counting as the gate does it (count_chat_tokens,
with its cache, emptied first); the tokenizer alone on the same message texts (no cache); and what the cookbook's
counting costs on the same rows (an encode of every value of every message, then of the assistant contents).
"""

from __future__ import annotations

import argparse
import json
import time

import baseline_cookbook  # noqa: E402  (benchmarks/ is on sys.path when this script runs)

from model_customization.datasets import tokens
from model_customization.datasets.validate import parse_line, row_digest, row_findings


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
        start = time.process_time()
        result = work()
        stages[name] = round(time.process_time() - start, 3)
        return result

    lines = stage("read lines", lambda: open(args.file, "rb").readlines())
    parsed = stage("parse", lambda: [parse_line("train", i, raw, 1 << 40)[0] for i, raw in enumerate(lines, 1)])
    rows = [r for r in parsed if isinstance(r, dict)]
    stage("format checks", lambda: [row_findings("train", 1, r) for r in rows])
    stage("duplicate digest", lambda: [row_digest(r) for r in rows])
    chats = [r for r in rows if isinstance(r.get("messages"), list) and not any(f.severity == "error" for f in row_findings("train", 1, r))]
    stage("token counts (gate, cached)", lambda: [tokens.count_chat_tokens(tokens.chat_messages(r), args.encoding, r.get("tools")) for r in chats])
    texts = [tokens._message_text(m) for r in chats for m in r["messages"]]
    stage("tokenizer alone (count, no cache)", lambda: [count(t[i : i + tokens._CHUNK_CHARS]) for t in texts for i in range(0, len(t), tokens._CHUNK_CHARS)])
    stage("cookbook counting (cl100k encode x2)", lambda: [(baseline_cookbook.num_tokens_from_messages(cl100k, r["messages"]), baseline_cookbook.num_assistant_tokens_from_messages(cl100k, r["messages"])) for r in chats])
    print(json.dumps({"file": args.file, "rows": len(rows), "message_text_mchars": round(sum(map(len, texts)) / 1e6, 1), "cpu_s": stages}))


if __name__ == "__main__":
    main()
