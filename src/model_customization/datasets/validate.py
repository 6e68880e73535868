"""Validation of training rows for a target, with the split and line number of every finding.

The OpenAI checks follow the data-preparation checks OpenAI publishes for chat fine-tuning files (data type,
missing messages, missing or unrecognised keys, unrecognised role, missing content, no assistant message), plus
what those checks leave out: weights other than 0/1, tool calls without results, tool results without calls, and
the per-example token limit of the chosen model. Rows are raw JSON values, so a user's own file is checked as is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from model_customization.datasets.outcomes import unpaired_findings

MESSAGE_KEYS = {"role", "content", "name", "function_call", "weight", "tool_calls", "tool_call_id", "refusal"}
EXAMPLE_KEYS = {"messages", "tools", "parallel_tool_calls", "functions"}
PREFERENCE_KEYS = {"input", "preferred_output", "non_preferred_output"}
ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
MIN_TRAIN_EXAMPLES = 10
WARNINGS = {"unrecognized_key", "example_missing_user_message", "duplicate_example"}


@dataclass
class Finding:
    split: str
    line: int
    severity: Literal["error", "warning"]
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _message_findings(messages: Any, where: str) -> list[tuple[str, str]]:
    """(code, message) pairs for a list of chat messages."""
    if not isinstance(messages, list) or not messages:
        return [("missing_messages_list", f"{where} has no list of messages")]
    problems: list[tuple[str, str]] = []
    calls: dict[str, int] = {}
    answered: set[str] = set()
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            problems.append(("data_type", f"{where} message {index} is {type(message).__name__}, not an object"))
            continue
        if "role" not in message:
            problems.append(("message_missing_key", f"{where} message {index} has no role"))
        elif message["role"] not in ROLES:
            problems.append(("unrecognized_role", f"{where} message {index} has role {message['role']!r}"))
        extra = set(message) - MESSAGE_KEYS
        if extra:
            problems.append(("message_unrecognized_key", f"{where} message {index} has unrecognised keys {sorted(extra)}"))
        has_calls = bool(message.get("tool_calls") or message.get("function_call"))
        content = message.get("content")
        if not has_calls and not (isinstance(content, str) and content) and not isinstance(content, list):
            problems.append(("missing_content", f"{where} message {index} ({message.get('role')}) has no content"))
        if "weight" in message and message["weight"] not in (0, 1):
            problems.append(("invalid_weight", f"{where} message {index} has weight {message['weight']!r}; only 0 or 1 are allowed"))
        for call in message.get("tool_calls") or []:
            if not isinstance(call, dict) or not call.get("id") or not isinstance(call.get("function"), dict):
                problems.append(("invalid_tool_call", f"{where} message {index} has a tool call without id or function"))
                continue
            calls[call["id"]] = index
        if message.get("role") == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in calls:
                problems.append(("tool_result_without_call", f"{where} message {index} answers tool call {call_id!r}, which no earlier message made"))
            answered.add(call_id)
    last = len(messages) - 1
    for call_id, index in calls.items():
        if call_id not in answered and index != last:
            problems.append(("unanswered_tool_call", f"{where} tool call {call_id!r} in message {index} has no tool result"))
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        problems.append(("example_missing_assistant_message", f"{where} has no assistant message"))
    if not any(isinstance(m, dict) and m.get("role") == "user" for m in messages):
        problems.append(("example_missing_user_message", f"{where} has no user message: the model learns to answer nothing"))
    return problems


def example_findings(row: Any) -> list[tuple[str, str]]:
    if not isinstance(row, dict):
        return [("data_type", f"the line is {type(row).__name__}, not an object")]
    if "label" in row and "messages" in row:  # KTO: a chat example labelled desirable or undesirable
        return unpaired_findings(row, _message_findings, EXAMPLE_KEYS)
    if PREFERENCE_KEYS & set(row):
        problems = []
        missing = PREFERENCE_KEYS - set(row)
        if missing:
            problems.append(("missing_preference_key", f"preference example lacks {sorted(missing)}"))
        input_ = row.get("input")
        problems += _message_findings(input_.get("messages") if isinstance(input_, dict) else None, "input")
        problems = [p for p in problems if p[0] != "example_missing_assistant_message"]  # inputs end with a user turn
        for key in ("preferred_output", "non_preferred_output"):
            output = row.get(key)
            if not (isinstance(output, list) and len(output) == 1 and isinstance(output[0], dict) and output[0].get("role") == "assistant"):
                problems.append(("invalid_preference_output", f"{key} must be a list with exactly one assistant message"))
        return problems
    problems = _message_findings(row.get("messages"), "example")
    extra = set(row) - EXAMPLE_KEYS
    if extra:
        problems.append(("unrecognized_key", f"unrecognised keys {sorted(extra)}"))
    return problems


class RowValidator:
    """validate_rows one row at a time, so a file can be checked in one pass without holding its rows."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.counts: dict[str, int] = {}
        self._first_seen: dict[bytes, tuple[str, int]] = {}

    def add(self, split: str, line: int, row: Any) -> bool:
        """Check one row; its findings are appended to self.findings. True when it has no error."""
        self.counts[split] = self.counts.get(split, 0) + 1
        ok = True
        for code, message in example_findings(row):
            severity = "warning" if code in WARNINGS else "error"
            ok = ok and severity == "warning"
            self.findings.append(Finding(split, line, severity, code, message))
        digest = hashlib.sha256(json.dumps(row, sort_keys=True).encode()).digest()
        where = self._first_seen.get(digest)
        if where is not None:
            self.findings.append(Finding(split, line, "warning", "duplicate_example", f"the same example as {where[0]} line {where[1]}: it weighs twice in training"))
        else:
            self._first_seen[digest] = (split, line)
        return ok

    def finish(self) -> tuple[list[Finding], dict[str, int]]:
        if self.counts.get("train", 0) < MIN_TRAIN_EXAMPLES:
            self.findings.append(
                Finding("train", 0, "error", "too_few_examples", f"{self.counts.get('train', 0)} training examples; at least {MIN_TRAIN_EXAMPLES} are needed")
            )
        return self.findings, self.counts


def validate_rows(rows: Iterable[tuple[str, int, Any]]) -> tuple[list[Finding], dict[str, int]]:
    """Format findings for (split, line, row) triples, and the number of rows per split."""
    validator = RowValidator()
    for split, line, row in rows:
        validator.add(split, line, row)
    return validator.finish()
