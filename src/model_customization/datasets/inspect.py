"""The gate before any job: validate a stored dataset or a file for a provider and model, count tokens, quote.

The provider's own rules apply (Provider.measure_dataset and quote_tokens: its format, tokenizer and limits); this
module reads the rows and writes the report the same way for all of them.

Nothing is started and nothing is written. Findings carry split and line (line numbers of the split's JSONL file
for a stored dataset, of the file itself otherwise).
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from model_customization.datasets.build import SPLITS, get_dataset
from model_customization.datasets.redaction import redact_record
from model_customization.datasets.validate import Finding, parse_line
from model_customization.errors import NotFoundError, UserError
from model_customization.paths import check_readable, iter_limited_lines, memory_limits
from model_customization.providers.registry import get_provider
from model_customization.reading_limits import open_regular_file
from model_customization.workspace import Workspace

MAX_FINDINGS = 50


class FileRows:
    """The (split, line, row) triples of JSONL files, in order; the lines that are not rows (too long, not JSON) are
    collected in `problems` as they are met. measure_chat_rows may instead open the files (open) and have worker
    processes read and parse ranges of their lines, appending to `problems` in the same line order."""

    def __init__(self, files: list[tuple[str, Path]], *, stored: bool) -> None:
        self.files = files
        self.stored = stored
        self.problems: list[Finding] = []
        self.max_line_bytes = memory_limits().max_line_bytes

    def total_bytes(self) -> int:
        total = 0
        for _, file in self.files:
            try:
                total += file.stat().st_size
            except OSError:  # reported as the files are opened
                pass
        return total

    def open(self, file: Path) -> BinaryIO:
        # A stored split is the server's own file and may be larger than the memory limit (it is streamed); a
        # caller's file is checked again on the descriptor that is read (it could have been swapped since).
        return open_regular_file(file, what="File", max_bytes=sys.maxsize if self.stored else None, fenced=not self.stored)

    def _lines(self) -> Iterator[tuple[str, int, bytes | int]]:
        for split, file in self.files:
            with self.open(file) as handle:
                for line_no, raw in iter_limited_lines(handle, self.max_line_bytes):
                    yield split, line_no, raw

    def __iter__(self) -> Iterator[tuple[str, int, Any]]:
        for split, line_no, raw in self._lines():
            row, problem = parse_line(split, line_no, raw, self.max_line_bytes)
            if problem is not None:
                self.problems.append(problem)
            elif row is not None:
                yield split, line_no, row


def _rows(ws: Workspace, dataset_id: str | None, path: str | None) -> tuple[str, FileRows]:
    if (dataset_id is None) == (path is None):
        raise UserError("Give exactly one of dataset_id (a stored dataset) or path (a JSONL file to check).")
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
    return source, FileRows(files, stored=dataset_id is not None)


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
    source, rows = _rows(ws, dataset_id, path)
    measure = trainer.measure_dataset(ws, rows, model=model, max_seq_length=max_seq_length)
    tokens: dict[str, list[int]] = {split: list(measure.tokens.get(split, [])) for split in SPLITS}
    findings = rows.problems + measure.findings
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
