"""Validation of training rows for a target, with the split and line number of every finding.

The OpenAI checks follow the data-preparation checks OpenAI publishes for chat fine-tuning files (data type,
missing messages, missing or unrecognised keys, unrecognised role, missing content, no assistant message), plus
what those checks leave out: weights other than 0/1, tool calls without results, tool results without calls, and
the per-example token limit of the chosen model. Rows are raw JSON values, so a user's own file is checked as is.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import orjson

from model_customization.datasets.outcomes import unpaired_findings
from model_customization.paths import overlong_line_message

MESSAGE_KEYS = {"role", "content", "name", "function_call", "weight", "tool_calls", "tool_call_id", "refusal"}
EXAMPLE_KEYS = {"messages", "tools", "parallel_tool_calls", "functions"}
PREFERENCE_KEYS = {"input", "preferred_output", "non_preferred_output"}
ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
MIN_TRAIN_EXAMPLES = 10
# A message with only these keys, one of these roles and a non-empty text content passes every message check
# (tokens._plain_chat_tokens counts rows of only such messages without running the checks).
PLAIN_MESSAGE_KEYS = frozenset({"role", "content", "name"})
PLAIN_MESSAGE_ROLES = frozenset(ROLES - {"tool"})  # (a tool result is checked against the calls before it)
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
        if type(message) is dict:
            role, content = message.get("role"), message.get("content")
            if type(role) is str and role in PLAIN_MESSAGE_ROLES and type(content) is str and content and message.keys() <= PLAIN_MESSAGE_KEYS:
                continue  # the common message, with nothing to report: none of the checks below applies
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


def _preference_findings(row: dict[str, Any]) -> list[tuple[str, str]]:
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


def _chat_findings(row: dict[str, Any]) -> list[tuple[str, str]]:
    problems = _message_findings(row.get("messages"), "example")
    extra = set(row) - EXAMPLE_KEYS
    if extra:
        problems.append(("unrecognized_key", f"unrecognised keys {sorted(extra)}"))
    return problems


# The example formats, tried in order: (is this the format?, its checks). The first that claims a row checks it;
# the chat format takes the rest. A new format adds its pair here (before the formats it must win over).
FORMAT_CHECKS: list[tuple[Callable[[dict[str, Any]], bool], Callable[[dict[str, Any]], list[tuple[str, str]]]]] = [
    # KTO: a chat example labelled desirable or undesirable
    (lambda row: "label" in row and "messages" in row, lambda row: unpaired_findings(row, _message_findings, EXAMPLE_KEYS)),
    (lambda row: bool(PREFERENCE_KEYS & row.keys()), _preference_findings),
]


def example_findings(row: Any) -> list[tuple[str, str]]:
    """(code, message) pairs for one row of any known format."""
    if not isinstance(row, dict):
        return [("data_type", f"the line is {type(row).__name__}, not an object")]
    for claims, check in FORMAT_CHECKS:
        if claims(row):
            return check(row)
    return _chat_findings(row)


def row_findings(split: str, line: int, row: Any) -> list[Finding]:
    return [Finding(split, line, "warning" if code in WARNINGS else "error", code, message) for code, message in example_findings(row)]


# orjson reads an integer outside [-2**63, 2**64) as a float, where json keeps the exact int; any float outside this
# range (and NaN, which orjson never yields but json does) sends a row to json: read again, and digested as before.
_ORJSON_FLOATS = (-9.2e18, 1.8e19)


def _plain_floats(value: Any) -> bool:
    """True when every float in value lies inside _ORJSON_FLOATS (NaN and infinities do not); False also for a value
    nested too deep to walk (json then reads and digests it, as it did before orjson)."""
    try:
        return _floats_inside(value)
    except RecursionError:
        return False


def _floats_inside(value: Any) -> bool:
    kind = type(value)
    if kind is str:
        return True
    if kind is dict:
        return all(map(_floats_inside, value.values()))
    if kind is list:
        return all(map(_floats_inside, value))
    if kind is float:
        return _ORJSON_FLOATS[0] < value < _ORJSON_FLOATS[1]
    return True


def _json_digest(row: Any) -> bytes:
    return hashlib.sha256(b"j" + json.dumps(row, sort_keys=True).encode()).digest()


def row_digest(row: Any) -> bytes:
    """Equal for the same JSON value whatever its key order or spacing in the file.

    orjson's sorted compact text where it is exact (no NaN or infinity, which it writes as null; no integer over 64
    bits or lone surrogate, which it refuses): like json.dumps(sort_keys=True) it is one text per value, and it is
    cheaper by about four times. Which of the two texts a row gets depends on its value alone, so equal rows always
    get the same digest; the json text is marked so the two kinds never meet."""
    if _plain_floats(row):
        try:
            return hashlib.sha256(orjson.dumps(row, option=orjson.OPT_SORT_KEYS)).digest()
        except TypeError:  # (orjson.JSONEncodeError) an integer over 64 bits, a lone surrogate, nesting over 255
            pass
    return _json_digest(row)


def load_json_line(raw: bytes) -> tuple[Any, bytes]:
    """(json.loads(raw.decode("utf-8")), row_digest of it), raising what json.loads raises.

    orjson reads the line when it gives the very same value (2-3x faster than json), and its sorted text of the row
    gives the digest. Anything it refuses (NaN, lone surrogates, a BOM, bad UTF-8, deep nesting ...) goes through
    json, and so does a row with a float outside _ORJSON_FLOATS, which may have been an integer over 64 bits in the
    line: orjson writes every such float with an exponent ("e+"), so only the rows whose text has one are walked."""
    try:
        row = orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    else:
        try:
            text = orjson.dumps(row, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # nesting over 255
            if _plain_floats(row):
                return row, _json_digest(row)  # as row_digest gives it
        else:
            if b"e+" not in text or _plain_floats(row):
                return row, hashlib.sha256(text).digest()
    row = json.loads(raw.decode("utf-8"))
    return row, row_digest(row)


# A JSON escape of a surrogate (U+D800-U+DFFF): a pair of them is one character; one alone is not Unicode text.
_SURROGATE_ESCAPE_RE = re.compile(rb"\\u[dD][89a-fA-F]")


def _first_lone_surrogate(value: Any) -> str | None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return None
        except UnicodeEncodeError as error:
            return f"\\u{ord(value[error.start]):04x}"
    if isinstance(value, dict):
        return next((found for item in value.items() for found in map(_first_lone_surrogate, item) if found), None)
    if isinstance(value, list):
        return next((found for found in map(_first_lone_surrogate, value) if found), None)
    return None


def lone_surrogate_finding(split: str, line: int, raw: bytes, row: Any) -> Finding | None:
    """An error for a row whose JSON holds a lone surrogate escape (valid JSON, often an emoji cut in half): no
    tokenizer reads it (a local model's crashed the gate) and no UTF-8 file can hold it. Only lines with such an
    escape are walked."""
    if _SURROGATE_ESCAPE_RE.search(raw) is None:
        return None
    found = _first_lone_surrogate(row)
    if found is None:
        return None
    return Finding(split, line, "error", "not_unicode", f"a string holds a lone surrogate ({found}: half of a character, which is not Unicode text); fix or remove that escape")


def parse_line(split: str, line: int, raw: bytes | int, max_line_bytes: int) -> tuple[Any, Finding | None]:
    """(row, None) for a line of JSON; (None, finding) for a line too long to read (raw is then its length), not
    JSON, or holding a lone surrogate; (None, None) for a blank line."""
    if isinstance(raw, int):
        return None, Finding(split, line, "error", "line_too_long", overlong_line_message(raw, max_line_bytes))
    if not raw.strip():
        return None, None
    try:
        row = json_loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, Finding(split, line, "error", "invalid_json", f"not valid JSON in UTF-8 ({error})")
    problem = lone_surrogate_finding(split, line, raw, row)
    return (None, problem) if problem else (row, None)


def parse_line_digest(split: str, line: int, raw: bytes | int, max_line_bytes: int) -> tuple[Any, bytes | None, Finding | None]:
    """parse_line, with the row's row_digest in the middle (None when there is no row)."""
    if isinstance(raw, int) or not raw.strip():
        row, problem = parse_line(split, line, raw, max_line_bytes)
        return row, None, problem
    try:
        row, digest = load_json_line(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, None, Finding(split, line, "error", "invalid_json", f"not valid JSON in UTF-8 ({error})")
    problem = lone_surrogate_finding(split, line, raw, row)
    return (None, None, problem) if problem else (row, digest, None)


def json_loads(raw: bytes) -> Any:
    """json.loads(raw.decode("utf-8")): the same value or the same error; orjson reads it where that is exact."""
    try:
        row = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw.decode("utf-8"))
    return row if _plain_floats(row) else json.loads(raw.decode("utf-8"))


class RowValidator:
    """validate_rows one row at a time, so a file can be checked in one pass without holding its rows."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.counts: dict[str, int] = {}
        self._first_seen: dict[bytes, tuple[str, int]] = {}

    def add(self, split: str, line: int, row: Any) -> bool:
        """Check one row; its findings are appended to self.findings. True when it has no error."""
        findings = row_findings(split, line, row)
        self.record(split, line, findings, row_digest(row))
        return all(f.severity != "error" for f in findings)

    def record(self, split: str, line: int, findings: list[Finding], digest: bytes) -> None:
        """A row checked elsewhere (row_findings, row_digest): its findings, then whether it repeats an earlier row.
        Rows must come in file order, so the first of two equal rows is the one kept."""
        self.counts[split] = self.counts.get(split, 0) + 1
        self.findings.extend(findings)
        where = self._first_seen.get(digest)
        if where is not None:
            self.findings.append(Finding(split, line, "warning", "duplicate_example", f"the same example as {where[0]} line {where[1]}: it weighs twice in training"))
        else:
            self._first_seen[digest] = (split, line)

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
