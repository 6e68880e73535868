"""Where a build's time goes, stage by stage, in one process (no profiler overhead: each stage is timed whole).

Usage: python benchmarks/build_stages.py MEMORY_DIR [--hash]

Runs the stages of build._prepare one after the other over every conversation of MEMORY_DIR (imported first, all
held in memory: this is a measuring tool, not a build) and prints one JSON line with the CPU seconds of each stage (process time, so that other work on the machine
skews it less than wall time):
import (parse the files into conversations), redaction, example (conversation_to_example), exact key, MinHash,
canonical JSON, token count, and the o200k load. --hash adds the sha256 of every redacted conversation's example
lines joined in reading order and of the redaction counts (the same before and after a change to redaction means
its output on this corpus did not change).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections import Counter
from pathlib import Path

from model_customization.datasets import build
from model_customization.datasets.dedupe import example_text, exact_key, minhash_of
from model_customization.datasets.examples import conversation_to_example
from model_customization.datasets.redaction import redact_conversation
from model_customization.datasets.tokens import _counter
from model_customization.memory.detect import iter_memory
from model_customization.memory.records import Conversation


def main() -> None:
    root = Path(sys.argv[1])
    times: dict[str, float] = {}

    def timed(name: str, fn, items):
        start = time.process_time()
        out = [fn(item) for item in items]
        times[name] = round(time.process_time() - start, 2)
        return out

    start = time.process_time()
    conversations = [item for item in iter_memory([root]) if isinstance(item, Conversation)]
    times["import"] = round(time.process_time() - start, 2)
    redacted = timed("redaction", redact_conversation, conversations)
    examples = timed("example", lambda pair: conversation_to_example(pair[0]), redacted)
    timed("exact_key", exact_key, examples)
    timed("minhash", lambda example: minhash_of(example_text(example)), examples)
    lines = timed("canonical_json", lambda example: build._canonical(example).encode("utf-8"), examples)
    start = time.process_time()
    _counter("o200k_base")
    times["o200k_load"] = round(time.process_time() - start, 2)
    timed("tokens", build._example_tokens, examples)
    out: dict = {"conversations": len(conversations), "seconds": times, "total": round(sum(times.values()), 2)}
    if "--hash" in sys.argv:
        digest = hashlib.sha256()
        counts: Counter[str] = Counter()
        for line, (_, found) in zip(lines, redacted, strict=True):
            digest.update(line + b"\n")
            counts.update(found)
        out["redacted_sha256"] = digest.hexdigest()
        out["redactions"] = dict(sorted(counts.items()))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
