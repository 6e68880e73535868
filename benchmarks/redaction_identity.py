"""Redaction before vs after a change: byte-identical output and the CPU seconds of each, in one run.

Usage: python benchmarks/redaction_identity.py [--ref main] [--inputs captured.pkl] DIR ...

Loads the redaction module as it is at git ref --ref (default main) beside the current one, redacts every
conversation found in each DIR (Claude Code transcripts, the shared memory samples, ...) with both, and compares:
the redacted conversations (every field, as JSON) and the Counter of kinds, conversation by conversation, and
every message text and tool-argument string on its own through redact_text. --inputs adds the texts and
conversations recorded from a test run by redaction_inputs_plugin.py. Prints one JSON line: a sha256 over all outputs
and counts for each side, the number of mismatches (the first few shown), and the process CPU seconds each side took
over the conversations of the first DIR (each side with empty clean-text caches; the reference first, then the
current code, --rounds times, so that a change in the machine's load between the two shows up in the list).
Exit status 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import json
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from model_customization.datasets import redaction as current
from model_customization.memory.detect import iter_memory
from model_customization.memory.records import Conversation

ROOT = Path(__file__).resolve().parents[1]


def load_reference(ref: str):  # type: ignore[no-untyped-def]
    source = subprocess.run(
        ["git", "show", f"{ref}:src/model_customization/datasets/redaction.py"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "redaction_reference.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("redaction_reference", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["redaction_reference"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def serialise(conv: Conversation, counts) -> bytes:  # type: ignore[no-untyped-def]
    body = {"conversation": dataclasses.asdict(conv), "counts": dict(sorted(counts.items()))}
    return json.dumps(body, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8", "surrogatepass")  # a lone surrogate (a test input) is compared too


def texts_of(conv: Conversation) -> list[str]:
    out = []
    for m in conv.messages:
        if isinstance(m.content, str):
            out.append(m.content)
        out.extend(c.arguments for c in m.tool_calls if c.arguments)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dirs", nargs="+")
    parser.add_argument("--ref", default="main")
    parser.add_argument("--inputs", action="append", default=[])
    parser.add_argument("--rounds", type=int, default=1, help="timed passes of each side, alternating")
    args = parser.parse_args()
    reference = load_reference(args.ref)

    groups: list[list[Conversation]] = []
    for folder in args.dirs:
        groups.append([c for c in iter_memory([Path(folder)]) if isinstance(c, Conversation)])
    extra_texts: list[str] = []
    for captured in args.inputs:
        with open(captured, "rb") as handle:
            data = pickle.load(handle)
        groups.append(data["conversations"])
        extra_texts.extend(data["texts"])

    seconds: dict[str, list[float]] = {"reference": [], "current": []}
    for _round in range(args.rounds):
        for name, module in (("reference", reference), ("current", current)):
            module._clean_texts.clear()
            getattr(module, "_ds_line_cache", {}).clear()
            getattr(module, "_clean_short_texts", set()).clear()
            start = time.process_time()
            for conv in groups[0]:
                module.redact_conversation(conv)
            seconds[name].append(round(time.process_time() - start, 3))

    digests = {"reference": hashlib.sha256(), "current": hashlib.sha256()}
    mismatches: list[str] = []
    compared = {"conversations": 0, "texts": 0}

    def compare(label: str, before: bytes, after: bytes) -> None:
        digests["reference"].update(before + b"\n")
        digests["current"].update(after + b"\n")
        if before != after:
            mismatches.append(label)

    for group_index, group in enumerate(groups):
        for conv in group:
            compared["conversations"] += 1
            before = serialise(*reference.redact_conversation(conv))
            after = serialise(*current.redact_conversation(conv))
            compare(f"group {group_index} conversation {conv.session_id}", before, after)
            for index, text in enumerate(texts_of(conv)):
                compared["texts"] += 1
                before_text, before_counts = reference.redact_text(text)
                after_text, after_counts = current.redact_text(text)
                compare(
                    f"group {group_index} conversation {conv.session_id} text {index}: {text[:80]!r}",
                    json.dumps([before_text, sorted(before_counts.items())]).encode(),
                    json.dumps([after_text, sorted(after_counts.items())]).encode(),
                )
    for index, text in enumerate(extra_texts):
        compared["texts"] += 1
        before_text, before_counts = reference.redact_text(text)
        after_text, after_counts = current.redact_text(text)
        compare(
            f"captured text {index}: {text[:80]!r}",
            json.dumps([before_text, sorted(before_counts.items())]).encode(),
            json.dumps([after_text, sorted(after_counts.items())]).encode(),
        )
    print(
        json.dumps(
            {
                "ref": args.ref,
                "compared": compared,
                "sha256": {name: digest.hexdigest() for name, digest in digests.items()},
                "mismatches": len(mismatches),
                "first_mismatches": mismatches[:5],
                "redaction_cpu_seconds_first_dir": seconds,
                "ratio_of_minimums": round(min(seconds["reference"]) / max(min(seconds["current"]), 1e-9), 2),
            }
        )
    )
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
