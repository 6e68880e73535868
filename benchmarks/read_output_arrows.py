"""Make a copy of a generated Claude Code corpus whose tool results look like real ones: line-numbered with an arrow.

Usage: python benchmarks/read_output_arrows.py SRC_DIR DST_DIR

Claude Code's Read tool returns a file as `cat -n` does, with U+2192 after each line number ("     1\u2192import os"),
and agents' texts hold check marks, dashes, accents and emoji. generate_claude_code.py writes ASCII only, which a
build's scans of ASCII texts suit best; this copy (70% of string tool results numbered that way, a fifth of the
assistant texts given a non-ASCII phrase, seeded) measures the texts real transcripts hold. Lines are written with
ensure_ascii=False, as Claude Code writes them.
"""

import json, sys, os, random
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
rng = random.Random(0)
EXTRA = ["✓ passed", "✗ failed", "— note", "café", "naïve", "日本語のテキスト", "🚀 deployed", "…", "“quoted”", "→ next"]
def arrows(text):
    lines = text.split("\n")
    out = [f"{i:>6}\u2192{l}" for i, l in enumerate(lines, 1)]
    if rng.random() < 0.5:
        out.insert(rng.randrange(len(out)+1), rng.choice(EXTRA))
    return "\n".join(out)
for f in src.rglob("*.jsonl"):
    t = dst / f.relative_to(src); t.parent.mkdir(parents=True, exist_ok=True)
    with f.open() as a, t.open("w") as b:
        for line in a:
            o = json.loads(line)
            m = o.get("message")
            if o.get("type") == "user" and isinstance(m, dict) and isinstance(m.get("content"), list):
                for blk in m["content"]:
                    if isinstance(blk, dict) and blk.get("type") == "tool_result" and isinstance(blk.get("content"), str) and rng.random() < 0.7:
                        blk["content"] = arrows(blk["content"])
            if o.get("type") == "assistant" and isinstance(m, dict) and isinstance(m.get("content"), list):
                for blk in m["content"]:
                    if isinstance(blk, dict) and blk.get("type") == "text" and rng.random() < 0.2:
                        blk["text"] += " " + rng.choice(EXTRA)
            b.write(json.dumps(o, ensure_ascii=False) + "\n")
