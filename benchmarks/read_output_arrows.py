"""Make a copy of a generated Claude Code corpus whose tool results look like real ones: line-numbered with an arrow.

Usage: python benchmarks/read_output_arrows.py SRC_DIR DST_DIR

Claude Code's Read tool returns a file as `cat -n` does, with U+2192 after each line number ("     1\u2192import os"),
and agents' texts hold check marks, dashes, accents and emoji. generate_claude_code.py writes ASCII only, which a
build's scans of ASCII texts suit best; this copy (70% of string tool results numbered that way, a fifth of the
assistant texts given a non-ASCII phrase, seeded) measures the texts real transcripts hold. Lines are written with
ensure_ascii=False, as Claude Code writes them.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

# Non-ASCII phrases of the kind agents and test runners print.
EXTRA = ["✓ passed", "✗ failed", "— note", "café", "naïve", "日本語のテキスト", "🚀 deployed", "…", "“quoted”", "→ next"]


def numbered(text: str, rng: random.Random) -> str:
    """The text as the Read tool shows a file: right-aligned line numbers, an arrow, the line; half get a phrase."""
    lines = [f"{number:>6}\u2192{line}" for number, line in enumerate(text.split("\n"), 1)]
    if rng.random() < 0.5:
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(EXTRA))
    return "\n".join(lines)


def blocks(record: dict, kind: str) -> list[dict]:
    message = record.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind] if isinstance(content, list) else []


def main() -> None:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    rng = random.Random(0)
    for path in sorted(source.rglob("*.jsonl")):
        out_path = target / path.relative_to(source)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with path.open(encoding="utf-8") as lines, out_path.open("w", encoding="utf-8") as out:
            for line in lines:
                record = json.loads(line)
                for block in blocks(record, "tool_result") if record.get("type") == "user" else []:
                    if isinstance(block.get("content"), str) and rng.random() < 0.7:
                        block["content"] = numbered(block["content"], rng)
                for block in blocks(record, "text") if record.get("type") == "assistant" else []:
                    if rng.random() < 0.2:
                        block["text"] += " " + rng.choice(EXTRA)
                out.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
