"""Generate a synthetic Claude Code corpus (~/.claude/projects layout) of a given size, deterministically.

Usage: python benchmarks/generate_claude_code.py OUT_DIR SIZE_MB [--seed 0]

OUT_DIR gets projects/<project>/<session uuid>.jsonl files of a few hundred KB to a few MB each, in the Claude
Code 2.x line format: user prompts, assistant text, tool_use lines (one per block, sharing the message id),
tool_result lines with toolUseResult echoes, and some progress / file-history-snapshot lines. Texts are drawn
from a large pool of random paragraphs and code-like file bodies with per-use variations, so sessions differ;
about 2% of sessions are exact copies and 2% near copies of earlier ones, so both dedupe passes have work to do.
"""

from __future__ import annotations

import argparse
import json
import random
import uuid
from pathlib import Path

WORDS = (
    "the a to of and in is that for it on with as this be are by or from at an not you we can will if but all "
    "service request error handler config value cache user data file test build deploy queue worker timeout retry "
    "index schema table query commit branch merge release version module function class method return import "
    "latency memory thread lock token session client server proxy route header payload batch stream buffer parse "
    "render component state store hook effect props event listener callback promise async await fetch json yaml "
    "docker kubernetes pod node cluster metric alert log trace span exporter sampler budget quota limit policy"
).split()
IDENT = "get set load save make read write check parse build run fix update delete create find merge split".split()
NOUNS = "user order item cache config queue record event token job file path node span metric batch".split()


def _sentence(rng: random.Random) -> str:
    n = rng.randint(6, 22)
    words = [rng.choice(WORDS) for _ in range(n)]
    if rng.random() < 0.3:
        words.insert(rng.randrange(n), f"`{rng.choice(IDENT)}_{rng.choice(NOUNS)}()`")
    if rng.random() < 0.2:
        words.append(str(rng.randint(0, 99999)))
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(2, 8)))


def _code(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(15, 120)):
        indent = "    " * rng.randint(0, 3)
        kind = rng.random()
        a, b = f"{rng.choice(IDENT)}_{rng.choice(NOUNS)}", rng.choice(NOUNS)
        if kind < 0.2:
            lines.append(f"{indent}def {a}({b}, {rng.choice(NOUNS)}=None):")
        elif kind < 0.5:
            lines.append(f"{indent}{b} = {a}({rng.choice(NOUNS)}, {rng.randint(0, 999)})")
        elif kind < 0.65:
            lines.append(f"{indent}if {b} is None or {b}.{rng.choice(NOUNS)} > {rng.randint(0, 99)}:")
        elif kind < 0.8:
            lines.append(f"{indent}return {a}({b})")
        else:
            lines.append(f"{indent}# {_sentence(rng)}")
    return "\n".join(f"{i:>6}\t{line}" for i, line in enumerate(lines, 1))


class Corpus:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        pool_rng = random.Random(seed + 1)
        self.paragraphs = [_paragraph(pool_rng) for _ in range(4000)]
        self.files = [_code(pool_rng) for _ in range(1500)]
        self.paths = [f"/home/dev/proj/src/{pool_rng.choice(NOUNS)}/{pool_rng.choice(IDENT)}_{pool_rng.choice(NOUNS)}.py" for _ in range(1500)]

    def text(self, lo: int, hi: int) -> str:
        rng = self.rng
        parts = [rng.choice(self.paragraphs) for _ in range(rng.randint(lo, hi))]
        parts.append(_sentence(rng))  # a fresh sentence keeps every message a little different
        return "\n\n".join(parts)

    def session(self, target_bytes: int, project: str) -> list[str]:
        rng = self.rng
        sid = str(uuid.UUID(int=rng.getrandbits(128)))
        cwd = f"/home/dev/{project}"
        lines: list[str] = []
        size = 0
        parent = None
        second = rng.randint(0, 10**6)

        def emit(obj: dict) -> None:
            nonlocal parent, size, second
            second += rng.randint(1, 30)
            base = {
                "parentUuid": parent, "isSidechain": False, "userType": "external", "cwd": cwd, "sessionId": sid,
                "version": "2.0.14", "gitBranch": "main", "uuid": str(uuid.UUID(int=rng.getrandbits(128))),
                "timestamp": f"2026-03-{1 + second // 86400 % 28:02d}T{second // 3600 % 24:02d}:{second // 60 % 60:02d}:{second % 60:02d}.000Z",
            }
            base.update(obj)
            text = json.dumps(base, ensure_ascii=False, separators=(",", ":"))
            lines.append(text)
            size += len(text) + 1
            parent = base["uuid"]

        while size < target_bytes:
            emit({"type": "user", "message": {"role": "user", "content": self.text(1, 3)}})
            for _ in range(rng.randint(1, 6)):
                mid = f"msg_{rng.getrandbits(64):016x}"
                if rng.random() < 0.7:
                    emit({"type": "assistant", "message": {"id": mid, "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [{"type": "text", "text": self.text(1, 2)}], "stop_reason": None, "usage": {"input_tokens": rng.randint(10, 9000), "output_tokens": rng.randint(10, 900)}}, "requestId": f"req_{rng.getrandbits(64):016x}"})
                k = rng.randrange(len(self.files))
                tool_id = f"toolu_{rng.getrandbits(64):016x}"
                if rng.random() < 0.6:
                    tool = {"name": "Read", "input": {"file_path": self.paths[k]}}
                    result = self.files[k]
                else:
                    tool = {"name": "Bash", "input": {"command": f"pytest -q tests/test_{rng.choice(NOUNS)}.py -k {rng.choice(IDENT)}", "description": "Run the tests"}}
                    result = self.text(1, 4)
                emit({"type": "assistant", "message": {"id": mid, "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [{"type": "tool_use", "id": tool_id, **tool}], "stop_reason": "tool_use", "usage": {"input_tokens": rng.randint(10, 9000), "output_tokens": rng.randint(10, 900)}}, "requestId": f"req_{rng.getrandbits(64):016x}"})
                if rng.random() < 0.1:
                    emit({"type": "progress", "data": {"type": "hook_progress", "hookName": "PreToolUse"}, "toolUseID": tool_id})
                emit({"type": "user", "message": {"role": "user", "content": [{"tool_use_id": tool_id, "type": "tool_result", "content": result, "is_error": rng.random() < 0.05}]}, "toolUseResult": {"stdout": result, "stderr": "", "interrupted": False, "isImage": False}})
            emit({"type": "assistant", "message": {"id": f"msg_{rng.getrandbits(64):016x}", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [{"type": "text", "text": self.text(1, 3)}], "stop_reason": "end_turn", "usage": {"input_tokens": 100, "output_tokens": 100}}})
        return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("size_mb", type=float)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    corpus = Corpus(args.seed)
    rng = corpus.rng
    root = Path(args.out) / "projects"
    total, target = 0, int(args.size_mb * 1_000_000)
    written: list[Path] = []
    while total < target:
        project = f"-home-dev-proj{rng.randint(0, 19)}"
        folder = root / project
        folder.mkdir(parents=True, exist_ok=True)
        roll = rng.random()
        if written and roll < 0.02:  # an exact copy of an earlier session (e.g. a copied ~/.claude folder)
            src = rng.choice(written)
            data = src.read_bytes()
            path = folder / f"{uuid.UUID(int=rng.getrandbits(128))}.jsonl"
            path.write_bytes(data)
        elif written and roll < 0.04:  # a near copy: the same session with its last lines cut off
            src = rng.choice(written)
            lines = src.read_bytes().splitlines(keepends=True)
            cut = max(2, len(lines) - max(2, len(lines) // 40))
            while cut > 2 and b'"stop_reason":"end_turn"' not in lines[cut - 1]:
                cut -= 1
            data = b"".join(lines[:cut])
            path = folder / f"{uuid.UUID(int=rng.getrandbits(128))}.jsonl"
            path.write_bytes(data)
        else:
            size = int(min(4_000_000, max(200_000, rng.lognormvariate(13.8, 0.7))))  # median ~1 MB
            lines = corpus.session(size, project)
            path = folder / f"{json.loads(lines[0])['sessionId']}.jsonl"
            data = ("\n".join(lines) + "\n").encode("utf-8")
            path.write_bytes(data)
        written.append(path)
        total += len(data)
    print(json.dumps({"files": len(written), "bytes": total, "out": str(root)}))


if __name__ == "__main__":
    main()
