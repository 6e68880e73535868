"""The gate before any job: validate a stored dataset or a file for a provider and model, count tokens, quote.

The provider's own rules apply (Provider.measure_dataset and quote_tokens: its format, tokenizer and limits); this
module reads the rows and writes the report the same way for all of them.

Nothing is started and nothing is written. Findings carry split and line (line numbers of the split's JSONL file
for a stored dataset, of the file itself otherwise).
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from model_customization.datasets.build import SPLITS, get_dataset
from model_customization.datasets.redaction import redact_record
from model_customization.datasets.validate import Finding
from model_customization.errors import NotFoundError, UserError
from model_customization.paths import check_readable, iter_limited_lines, memory_limits, overlong_line_message
from model_customization.providers.registry import get_provider
from model_customization.reading_limits import open_regular_file
from model_customization.workspace import Workspace

MAX_FINDINGS = 50


def _rows(ws: Workspace, dataset_id: str | None, path: str | None) -> tuple[str, Iterator[tuple[str, int, Any]], list[Finding]]:
    if (dataset_id is None) == (path is None):
        raise UserError("Give exactly one of dataset_id (a stored dataset) or path (a JSONL file to check).")
    parse_problems: list[Finding] = []
    if dataset_id is not None:
        folder = Path(get_dataset(ws, dataset_id)["path"])
        files = [(split, folder / f"{split}.jsonl") for split in SPLITS]
        source = f"datasets://{dataset_id}"
    else:
        file = check_readable(path, what="File")  # inside the allowed roots (paths.py), links followed
        try:
            # Refused now, with its kind or size, rather than when the rows are first read.
            open_regular_file(file, what="File").close()
        except FileNotFoundError:
            raise NotFoundError(f"File not found: {path}. Give a JSONL file of training examples, or a dataset_id.") from None
        files = [("train", file)]
        source = str(file.resolve())

    max_line_bytes = memory_limits().max_line_bytes

    def generate() -> Iterator[tuple[str, int, Any]]:
        for split, file in files:
            # A stored split is the server's own file and may be larger than the memory limit (it is streamed); a
            # caller's file is checked again on the descriptor that is read (it could have been swapped since).
            with open_regular_file(file, what="File", max_bytes=sys.maxsize if dataset_id is not None else None, fenced=dataset_id is None) as handle:
                for line_no, raw in iter_limited_lines(handle, max_line_bytes):
                    if isinstance(raw, int):  # never read whole, only reported
                        parse_problems.append(Finding(split, line_no, "error", "line_too_long", overlong_line_message(raw, max_line_bytes)))
                        continue
                    if not raw.strip():
                        continue
                    try:
                        yield split, line_no, json.loads(raw.decode("utf-8"))
                    except (UnicodeDecodeError, json.JSONDecodeError) as error:
                        parse_problems.append(Finding(split, line_no, "error", "invalid_json", f"not valid JSON in UTF-8 ({error})"))

    return source, generate(), parse_problems


def _stats(counts: list[int]) -> dict[str, Any]:
    if not counts:
        return {"examples": 0, "total": 0, "mean": 0, "max": 0, "p95": 0}
    ordered = sorted(counts)
    return {
        "examples": len(counts),
        "total": sum(counts),
        "mean": round(sum(counts) / len(counts), 1),
        "max": ordered[-1],
        "p95": ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)],
    }


def inspect_dataset(
    ws: Workspace,
    *,
    dataset_id: str | None = None,
    path: str | None = None,
    provider: str = "openai",
    model: str | None = None,
    epochs: int | None = None,
    max_seq_length: int = 512,
) -> dict[str, Any]:
    """Validate and measure by the provider's own rules (its format, tokenizer and limits) and quote a job."""
    trainer = get_provider(provider, "train")
    if epochs is not None and not 1 <= epochs <= 100:
        raise UserError(f"epochs must be between 1 and 100 (got {epochs}).")
    model = model or trainer.default_inspect_model or ""
    trainer.check_inspect_model(model)  # refuse an unknown model before reading anything
    source, rows, parse_problems = _rows(ws, dataset_id, path)
    measure = trainer.measure_dataset(ws, rows, model=model, max_seq_length=max_seq_length)
    tokens: dict[str, list[int]] = {split: list(measure.tokens.get(split, [])) for split in SPLITS}
    findings = parse_problems + measure.findings
    counts = measure.counts
    quote = trainer.quote_tokens(ws, model, tokens["train"], epochs=epochs, max_seq_length=max_seq_length)

    errors = [f for f in findings if f.severity == "error"]
    # Findings quote what they found (a role, a key, a value): the report is redacted as a whole, as a stored
    # dataset would be, so checking a raw file never shows a secret the build would have replaced.
    report, _ = redact_record({
        "source": source,
        "provider": trainer.name,
        "model": model,
        "valid": not errors,
        "errors": len(errors),
        "warnings": len(findings) - len(errors),
        "finding_counts": dict(Counter(f.code for f in findings)),
        "findings": [f.as_dict() for f in sorted(findings, key=lambda f: (f.severity != "error", SPLITS.index(f.split) if f.split in SPLITS else 9, f.line))[:MAX_FINDINGS]],
        "counts": counts,
        "token_stats": {split: _stats(values) for split, values in tokens.items() if values or counts.get(split)},
        "quote": quote,
        **measure.extra,
    })
    return report
