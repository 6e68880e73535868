"""Importer for OpenTelemetry GenAI spans exported as OTLP JSON (``otel_genai``).

A file is one OTLP/JSON trace export ``{"resourceSpans": [{"resource", "scopeSpans": [{"scope", "spans": [...]}]}]}``
(as written by the OTLP/HTTP JSON encoding), or JSON Lines with one such export a line (the Collector's file
exporter). The legacy ``instrumentationLibrarySpans`` key is read like ``scopeSpans``.

Messages follow the GenAI semantic conventions v1.37.0 (the first release with ``gen_ai.input.messages``,
``gen_ai.output.messages`` and ``gen_ai.system_instructions``; parts added in v1.38 are understood too). The
attributes hold a JSON string, or the same structure as an OTLP ``arrayValue``; a list of messages ``{role, parts,
finish_reason?}`` whose parts are ``{type: "text", content}``, ``{type: "tool_call", id, name, arguments}``,
``{type: "tool_call_response", id, response}``, ``{type: "reasoning", content}`` (dropped: a Message has no place for
it) and media parts (``blob``/``file``/``uri``/anything else: a ``[type]`` placeholder keeps their place). A message
with several ``tool_call_response`` parts becomes one tool Message per response. ``gen_ai.system_instructions``
becomes a leading system message unless the input already starts with one.

Each span with ``gen_ai.input.messages`` or ``gen_ai.output.messages`` is one model call: its input messages then its
output messages. Within one trace, an agent loop records every call with the whole history so far, so a span whose
messages are a prefix of (or equal to) another span's messages of the same trace in the same file is folded into
that longer one: one Conversation per distinct chat, not one per call. ``metadata["spans"]`` counts the spans
folded in. session_id is ``<traceId>:<spanId>`` of the span kept; started_at is the earliest ``startTimeUnixNano``
among the folded spans; metadata also has ``model`` (``gen_ai.response.model``, else ``gen_ai.request.model``),
``operation`` (``gen_ai.operation.name``), ``span_name`` and the last output message's ``finish_reason``.

Spans without GenAI messages (tool execution, HTTP, agent wrapper spans) are ignored, not reported. A span whose
message attributes cannot be read (invalid JSON, wrong shape) becomes an ImportProblem naming the span; in a
whole-document file its line is the line where the span's id first appears.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from model_customization.timestamps import nanos_to_iso

from .formats import MemoryFormat
from .reading import RecordError, iter_json_lines, json_type, read_text
from .records import Conversation, ImportProblem, Message, ToolCall

SOURCE_FORMAT = "otel_genai"
INPUT = "gen_ai.input.messages"
OUTPUT = "gen_ai.output.messages"
SYSTEM = "gen_ai.system_instructions"
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}


def _sniff(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("resourceSpans"), list)


def iter_otel_genai(path: Path) -> Iterator[Conversation | ImportProblem]:
    path = Path(path)
    file = str(path)
    found: list[tuple[Conversation, str]] = []  # (conversation, trace id), in file order
    if path.suffix.lower() != ".jsonl":
        try:
            text = read_text(path)
            doc = json.loads(text)
        except UnicodeDecodeError as exc:
            yield ImportProblem(file, 0, f"invalid UTF-8 at byte {exc.start}")
            return
        except json.JSONDecodeError:
            doc = None  # JSON Lines under another name
        if doc is not None:
            if not _sniff(doc):
                yield ImportProblem(file, 1, "not an OTLP trace export: no 'resourceSpans' list")
                return
            for item in _spans_of_export(doc, path, lambda span_id: _line_of(text, span_id)):
                if isinstance(item, ImportProblem):
                    yield item
                else:
                    found.append(item)
            yield from _fold(found)
            return
    for line in iter_json_lines(path):
        if isinstance(line, ImportProblem):
            yield line
            continue
        line_no, obj = line
        if not _sniff(obj):
            yield ImportProblem(file, line_no, "not an OTLP trace export: no 'resourceSpans' list")
            continue
        for item in _spans_of_export(obj, path, lambda _id, n=line_no: n):
            if isinstance(item, ImportProblem):
                yield item
            else:
                found.append(item)
    yield from _fold(found)


def _line_of(text: str, span_id: Any) -> int:
    if isinstance(span_id, str) and span_id:
        at = text.find(f'"{span_id}"')
        if at >= 0:
            return 1 + text.count("\n", 0, at)
    return 1


def _spans_of_export(export: dict[str, Any], path: Path, line_of) -> Iterator[tuple[Conversation, str] | ImportProblem]:
    for rs in export["resourceSpans"]:
        if not isinstance(rs, dict):
            continue
        scopes = rs.get("scopeSpans", rs.get("instrumentationLibrarySpans")) or []
        if not isinstance(scopes, list):
            continue
        for ss in scopes:
            spans = ss.get("spans") if isinstance(ss, dict) else None
            if not isinstance(spans, list):
                continue
            for span in spans:
                if not isinstance(span, dict):
                    continue
                span_id = span.get("spanId")
                try:
                    attrs = _attributes(span.get("attributes"))
                except RecordError as exc:
                    yield ImportProblem(str(path), line_of(span_id), f"span {span_id}: {exc}")
                    continue
                if INPUT not in attrs and OUTPUT not in attrs:
                    continue
                line = line_of(span_id)
                try:
                    conv = _conversation(span, attrs, path, line)
                except RecordError as exc:
                    yield ImportProblem(str(path), line, f"span {span_id} ({span.get('name')}): {exc}")
                    continue
                yield conv, str(span.get("traceId") or "")


def _attributes(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise RecordError(f"'attributes' must be a list, got {json_type(raw)}")
    out: dict[str, Any] = {}
    for kv in raw:
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = _any_value(kv.get("value"))
    return out


def _any_value(v: Any) -> Any:
    """An OTLP/JSON AnyValue as a Python value (intValue is a string in OTLP/JSON: int64)."""
    if not isinstance(v, dict):
        return None
    if "stringValue" in v:
        return v["stringValue"]
    if "boolValue" in v:
        return v["boolValue"]
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            return v["intValue"]
    if "doubleValue" in v:
        try:
            return float(v["doubleValue"])
        except (TypeError, ValueError):
            return v["doubleValue"]
    if "arrayValue" in v:
        values = (v["arrayValue"] or {}).get("values") or []
        return [_any_value(x) for x in values]
    if "kvlistValue" in v:
        values = (v["kvlistValue"] or {}).get("values") or []
        return {kv["key"]: _any_value(kv.get("value")) for kv in values if isinstance(kv, dict) and "key" in kv}
    if "bytesValue" in v:
        try:
            return base64.b64decode(v["bytesValue"])
        except (TypeError, ValueError):
            return v["bytesValue"]
    return None


def _conversation(span: dict[str, Any], attrs: dict[str, Any], path: Path, line: int) -> Conversation:
    messages: list[Message] = []
    system = _structured(attrs, SYSTEM)
    inputs = _structured(attrs, INPUT)
    outputs = _structured(attrs, OUTPUT)
    if system is not None:
        if not isinstance(system, list):
            raise RecordError(f"{SYSTEM} must be a list of parts, got {json_type(system)}")
        text = "\n".join(_texts(system, SYSTEM))
        first = inputs[0] if isinstance(inputs, list) and inputs else None
        if text and not (isinstance(first, dict) and first.get("role") in ("system", "developer")):
            messages.append(Message(role="system", content=text))
    for key, value in ((INPUT, inputs), (OUTPUT, outputs)):
        if value is None:
            continue
        if not isinstance(value, list):
            raise RecordError(f"{key} must be a list of messages, got {json_type(value)}")
        for i, m in enumerate(value, start=1):
            messages.extend(_messages(m, f"{key} message {i}"))
    if not messages:
        raise RecordError("no messages in the GenAI attributes")
    trace_id, span_id = span.get("traceId") or "", span.get("spanId") or ""
    metadata: dict[str, Any] = {"spans": 1}
    model = attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")
    if model is not None:
        metadata["model"] = model
    if attrs.get("gen_ai.operation.name") is not None:
        metadata["operation"] = attrs["gen_ai.operation.name"]
    if span.get("name"):
        metadata["span_name"] = span["name"]
    if isinstance(outputs, list) and outputs and isinstance(outputs[-1], dict) and outputs[-1].get("finish_reason"):
        metadata["finish_reason"] = outputs[-1]["finish_reason"]
    return Conversation(
        session_id=f"{trace_id}:{span_id}",
        messages=messages,
        source_file=str(path),
        source_line=line,
        source_format=SOURCE_FORMAT,
        started_at=nanos_to_iso(span.get("startTimeUnixNano")),
        metadata=metadata,
    )


def _structured(attrs: dict[str, Any], key: str) -> Any:
    value = attrs.get(key)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise RecordError(f"{key} is not valid JSON: {exc.msg} (column {exc.colno})") from None
    return value


def _texts(parts: list[Any], what: str) -> list[str]:
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, dict) and part.get("type") == "text":
            out.append(_str(part.get("content"), what))
    return out


def _messages(m: Any, what: str) -> list[Message]:
    if not isinstance(m, dict):
        raise RecordError(f"{what}: expected an object, got {json_type(m)}")
    role = _ROLES.get(m.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise RecordError(f"{what}: unknown role {m.get('role')!r}")
    parts = m.get("parts")
    if parts is None:
        parts = []
    if not isinstance(parts, list):
        raise RecordError(f"{what}: 'parts' must be a list, got {json_type(parts)}")
    texts: list[str] = []
    calls: list[ToolCall] = []
    responses: list[tuple[str | None, str]] = []
    for k, part in enumerate(parts, start=1):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise RecordError(f"{what}: part {k} must be an object with a 'type'")
        kind = part["type"]
        if kind == "text":
            texts.append(_str(part.get("content"), f"{what} part {k}"))
        elif kind == "tool_call":
            name = part.get("name")
            if not isinstance(name, str) or not name:
                raise RecordError(f"{what}: tool_call part {k} has no name")
            call_id = part.get("id") if isinstance(part.get("id"), str) and part.get("id") else f"call_{name}_{k}"
            args = part.get("arguments")
            args = "" if args is None else args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
            calls.append(ToolCall(id=call_id, name=name, arguments=args))
        elif kind == "tool_call_response":
            resp = part.get("response")
            resp = "" if resp is None else resp if isinstance(resp, str) else json.dumps(resp, ensure_ascii=False)
            call_id = part.get("id") if isinstance(part.get("id"), str) else None
            responses.append((call_id, resp))
        elif kind == "reasoning":
            continue
        else:
            texts.append(f"[{kind}]")
    if responses:
        # One tool Message per answered call; text parts beside the responses go with the first.
        out = [Message(role="tool", content=resp, tool_call_id=cid) for cid, resp in responses]
        if texts:
            out[0].content = "\n".join([*texts, out[0].content]) if out[0].content else "\n".join(texts)
        return out
    calls = calls if role == "assistant" else []
    return [Message(role=role, content="\n".join(texts), tool_calls=calls)]  # type: ignore[arg-type]


def _str(value: Any, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise RecordError(f"{what}: text 'content' must be a string, got {json_type(value)}")


def _fold(found: list[tuple[Conversation, str]]) -> Iterator[Conversation]:
    """Drop each span whose messages are a prefix of a longer (or an earlier equal) span's in the same trace."""
    by_trace: dict[str, list[int]] = {}
    for i, (_, trace) in enumerate(found):
        if trace:
            by_trace.setdefault(trace, []).append(i)
    absorbed_by: dict[int, int] = {}
    for members in by_trace.values():
        for i in members:
            mi = found[i][0].messages
            best = None
            for j in members:
                if j == i:
                    continue
                mj = found[j][0].messages
                if len(mj) > len(mi) or (len(mj) == len(mi) and j < i):
                    if mj[: len(mi)] == mi and (best is None or len(mj) > len(found[best][0].messages)):
                        best = j
            if best is not None:
                absorbed_by[i] = best
    for i, (conv, _) in enumerate(found):
        if i in absorbed_by:
            continue
        folded = [k for k in absorbed_by if _root(k, absorbed_by) == i]
        if folded:
            conv.metadata["spans"] = 1 + len(folded)
            starts = [c.started_at for c in (found[k][0] for k in folded) if c.started_at]
            if conv.started_at:
                starts.append(conv.started_at)
            if starts:
                conv.started_at = min(starts)
        yield conv


def _root(i: int, absorbed_by: dict[int, int]) -> int:
    seen = set()
    while i in absorbed_by and i not in seen:
        seen.add(i)
        i = absorbed_by[i]
    return i


FORMAT = MemoryFormat(
    SOURCE_FORMAT,
    iter_otel_genai,
    sniff_line=_sniff,
    sniff_document=_sniff,
    title="OpenTelemetry GenAI spans",
    where="OTLP JSON exports (a trace document or one span per line) with gen_ai.input.messages / gen_ai.output.messages",
    kept="the spans of one chat folded into one conversation: system instructions, messages, tool calls with results, model",
    outcome_signals="span status ERROR",
)
