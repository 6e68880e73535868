"""The gate before any job: validate a stored dataset or a file for a provider and model, count tokens, quote.

Nothing is started and nothing is written. Findings carry split and line (line numbers of the split's JSONL file
for a stored dataset, of the file itself otherwise).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from model_customization.datasets.build import SPLITS, get_dataset
from model_customization.datasets.quote import openai_terms, quote_local, quote_openai
from model_customization.datasets.render import is_preference, render_bedrock_claude
from model_customization.datasets.tokens import count_chat_tokens, encoding_name_for
from model_customization.datasets.validate import Finding, RowValidator, validate_rows
from model_customization.errors import NotFoundError, UserError
from model_customization.paths import check_readable, iter_limited_lines, memory_limits, overlong_line_message
from model_customization.workspace import Workspace

PROVIDERS = ("openai", "bedrock", "local")
DEFAULT_MODELS = {"openai": "gpt-4.1-mini", "bedrock": "anthropic.claude (discovered at job time)", "local": "SmolLM2-135M-Instruct"}
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
        if not file.is_file():
            raise NotFoundError(f"File not found: {path}. Give a JSONL file of training examples, or a dataset_id.")
        files = [("train", file)]
        source = str(file.resolve())

    max_line_bytes = memory_limits().max_line_bytes

    def generate() -> Iterator[tuple[str, int, Any]]:
        for split, file in files:
            with file.open("rb") as handle:
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


def _chat_messages(row: dict[str, Any]) -> list[dict[str, Any]]:
    if is_preference(row):
        return list(row["input"]["messages"]) + list(row["preferred_output"]) + list(row["non_preferred_output"])
    return list(row["messages"])


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
    if provider not in PROVIDERS:
        raise UserError(f"Unknown provider {provider!r}; use one of {', '.join(PROVIDERS)}.")
    if epochs is not None and not 1 <= epochs <= 100:
        raise UserError(f"epochs must be between 1 and 100 (got {epochs}).")
    model = model or DEFAULT_MODELS[provider]
    if provider == "openai":
        terms = openai_terms(model)  # refuse an unknown model before reading anything
        encoding = encoding_name_for(terms.snapshot)
    source, rows, parse_problems = _rows(ws, dataset_id, path)

    tokens: dict[str, list[int]] = {split: [] for split in SPLITS}
    extra: dict[str, Any] = {}
    if provider in ("openai", "bedrock"):
        # One pass: each row is validated and, when it has no error, counted at once; no row is kept.
        validator = RowValidator()
        measured: list[Finding] = []  # after the validation findings, as when the passes were separate
        # Claude's tokenizer is not available offline: Bedrock counts use o200k and are marked approximate.
        encoding_used = encoding if provider == "openai" else "o200k_base"
        for split, line, row in rows:
            if not validator.add(split, line, row):
                continue
            n = count_chat_tokens(_chat_messages(row), encoding_used, (row.get("input") or row).get("tools"))
            tokens[split].append(n)
            if provider == "openai" and n > terms.example_token_limit:
                measured.append(Finding(split, line, "error", "example_too_long", f"{n} tokens; {terms.snapshot} takes at most {terms.example_token_limit} per example"))
            if provider == "bedrock":
                rendered = render_bedrock_claude(row)
                if len(rendered["messages"]) < 2:
                    measured.append(Finding(split, line, "error", "bedrock_unrenderable", "no user turn followed by an assistant turn after folding into Claude's alternating format"))
        findings, counts = validator.finish()
        findings = parse_problems + findings + measured
        extra["tokenizer"] = encoding_used + ("" if provider == "openai" else " (approximate for Claude)")
    else:
        kept: list[tuple[str, int, Any]] = list(rows)
        findings, counts = validate_rows(kept)
        findings = parse_problems + findings
        bad = {(f.split, f.line) for f in findings if f.severity == "error"}
        usable = [(split, line, row) for split, line, row in kept if (split, line) not in bad]
        from model_customization.datasets.examples import to_plain_chat
        from model_customization.providers.local.chat import tokenize_chat
        from model_customization.providers.local.models import ensure_base_model

        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(ensure_base_model(ws.settings, model))
        truncated = 0
        for split, line, row in usable:
            if is_preference(row):
                findings.append(Finding(split, line, "error", "unsupported_method", "preference examples need a DPO job; local jobs take supervised examples"))
                continue
            tokenized = tokenize_chat(tokenizer, to_plain_chat(row["messages"]), 10**9)
            tokens[split].append(len(tokenized.input_ids))
            if len(tokenized.input_ids) > max_seq_length:
                truncated += 1
                clipped = tokenize_chat(tokenizer, to_plain_chat(row["messages"]), max_seq_length)
                severity = "error" if clipped.trained_tokens == 0 else "warning"
                findings.append(Finding(split, line, severity, "truncated", f"{len(tokenized.input_ids)} tokens, cut to max_seq_length={max_seq_length}" + (" leaving no assistant token to learn" if severity == "error" else "")))
        extra.update(tokenizer=f"{model} (its own tokenizer and chat template)", truncated_examples=truncated, max_seq_length=max_seq_length)

    if provider == "openai":
        quote = quote_openai(model, tokens["train"], epochs)
    elif provider == "local":
        from model_customization.providers.local.models import check_base_model

        quote = quote_local(model, tokens["train"], max_seq_length, epochs or 3, ws.ledger.local_speed_history(check_base_model(model)))
    else:
        quote = {
            "provider": "bedrock",
            "model": model,
            "epochs": epochs or 2,
            "note": "Bedrock prices Claude customization per token trained plus provisioned throughput for inference; "
            "its prices are not in this product's table yet, so no dollar figure is given.",
            "trained_tokens": sum(tokens["train"]) * (epochs or 2),
        }

    errors = [f for f in findings if f.severity == "error"]
    return {
        "source": source,
        "provider": provider,
        "model": model,
        "valid": not errors,
        "errors": len(errors),
        "warnings": len(findings) - len(errors),
        "finding_counts": dict(Counter(f.code for f in findings)),
        "findings": [f.as_dict() for f in sorted(findings, key=lambda f: (f.severity != "error", SPLITS.index(f.split) if f.split in SPLITS else 9, f.line))[:MAX_FINDINGS]],
        "counts": counts,
        "token_stats": {split: _stats(values) for split, values in tokens.items() if values or counts.get(split)},
        "quote": quote,
        **extra,
    }
