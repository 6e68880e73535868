"""Generate an OpenAI chat fine-tuning JSONL of many short examples, deterministically.

Usage: python benchmarks/generate_chat_jsonl.py OUT.jsonl SIZE_MB [--seed 0]

Each line is {"messages": [system, user, assistant, ...]}: one of 20 system prompts, one to three user/assistant
turns of random sentences (a few hundred bytes each), and in one example of ten a tool call with its result. The
shape of a typical support or assistant fine-tuning file (the issue's "15 MB chat JSONL").
"""

from __future__ import annotations

import argparse
import json
import random

from generate_claude_code import _sentence  # noqa: E402  (benchmarks/ is on sys.path when this script runs)


def _text(rng: random.Random, low: int, high: int) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(low, high)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("size_mb", type=float)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    systems = [f"You are assistant {i} of the support team. " + _text(rng, 2, 6) for i in range(20)]
    target, written, n = int(args.size_mb * 1e6), 0, 0
    with open(args.out, "w", encoding="utf-8") as handle:
        while written < target:
            messages = [{"role": "system", "content": rng.choice(systems)}]
            for _ in range(rng.randint(1, 3)):
                messages.append({"role": "user", "content": _text(rng, 1, 4)})
                if rng.random() < 0.1:
                    call_id = f"call_{n}_{len(messages)}"
                    messages.append({"role": "assistant", "tool_calls": [{"id": call_id, "type": "function", "function": {"name": "lookup", "arguments": json.dumps({"query": _sentence(rng)})}}]})
                    messages.append({"role": "tool", "tool_call_id": call_id, "content": _text(rng, 1, 3)})
                messages.append({"role": "assistant", "content": _text(rng, 1, 5)})
            line = json.dumps({"messages": messages}) + "\n"
            handle.write(line)
            written += len(line.encode())
            n += 1
    print(json.dumps({"out": args.out, "examples": n, "bytes": written}))


if __name__ == "__main__":
    main()
