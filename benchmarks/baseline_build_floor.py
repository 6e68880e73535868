"""The floor a dataset build is measured against: parse the same files and o200k-tokenise every text once.

Usage: python benchmarks/baseline_build_floor.py MEMORY_DIR

One process, nothing else: every `*.jsonl` file below MEMORY_DIR is read line by line with `json.loads`; the text of
each message (a string content, or each block's text, tool input as compact JSON, tool result content) is encoded
once with bpe-openai's o200k_base (`encode_ordinary`, in 200k-character pieces as the product counts long texts).
No redaction, no dedupe, no output. Prints one JSON line: input MB, wall seconds, CPU seconds (loading the encoding included,
as a build has to load it too; also given apart), MB/s, peak RSS, texts and tokens.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

PIECE = 200_000


def block_texts(content: object) -> list[str]:
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            texts.append(json.dumps(block.get("input"), separators=(",", ":"), ensure_ascii=False))
        elif kind == "tool_result":
            texts.extend(block_texts(block.get("content")))
    return texts


def main() -> None:
    root = Path(sys.argv[1])
    files = sorted(root.rglob("*.jsonl"))
    size = sum(p.stat().st_size for p in files)
    start = time.perf_counter()
    import bpe_openai

    encoding = bpe_openai.get_encoding("o200k_base")
    encode = encoding.encode_ordinary
    loaded = time.perf_counter() - start
    texts = tokens = 0
    for path in files:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                message = record.get("message")
                if not isinstance(message, dict):
                    continue
                for text in block_texts(message.get("content")):
                    texts += 1
                    for at in range(0, len(text), PIECE):
                        tokens += len(encode(text[at : at + PIECE]))
    wall = time.perf_counter() - start
    print(json.dumps({
        "input_mb": round(size / 1e6, 1),
        "files": len(files),
        "wall_s": round(wall, 2),
        "encoding_load_s": round(loaded, 2),
        "mb_per_s": round(size / 1e6 / wall, 2),
        "cpu_s": round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), 2),  # user + system, the start-up included
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "texts": texts,
        "tokens": tokens,
    }))


if __name__ == "__main__":
    main()
