"""Importer for OpenHands sessions: the V0 event stream (trajectories, evaluation output, the GUI's session folders)
and V1 conversations (the software agent SDK, the V1 app and CLI).

V0 (format ``openhands``)
    An event is ``{id, timestamp, source: user|agent|environment, message, action | observation, args | content +
    extras, cause, tool_call_metadata}``. Three containers hold them:

    * a trajectory: the JSON list of events written by ``save_trajectory_path`` or downloaded from the UI;
    * an evaluation ``output.jsonl``: one instance a line, ``{instance_id, instruction, history: [events], metadata,
      test_result, ...}`` (very old runs stored ``history`` as ``[action, observation]`` pairs; both are read);
    * a session folder of the app (``~/.openhands/sessions/<id>/`` with ``events/<n>.json``, one event a file, and
      ``metadata.json``).

    Each trajectory, line or folder is one conversation. A ``system`` action is the system prompt (its tools become
    the conversation's tools, its ``openhands_version`` ``metadata["agent_version"]``); ``message``
    actions are user or assistant turns; actions with ``tool_call_metadata`` are the model's tool calls, rebuilt
    from the model response stored with them (its text and every call it made: actions sharing one response are one
    assistant message) and paired with the observations that carry the same ``tool_call_id``. ``finish`` is a tool
    call like the others; its final answer (``final_thought``, else ``thought``) becomes the text of that assistant
    message when the model wrote none, so the conversation ends with the answer. Bookkeeping events (agent state
    changes, ``null`` observations, recalls of microagent knowledge, condensations) are not messages.

V1 (format ``openhands_v1``)
    A conversation folder ``<persistence dir>/<conversation id>/`` with ``base_state.json`` (agent, LLM, workspace,
    execution status) and ``events/event-<index>-<event id>.json``, one event a file, each with a ``kind``:
    ``SystemPromptEvent`` (system prompt), ``MessageEvent`` (user and assistant messages), ``ActionEvent`` (a tool
    call with the model's thought; events sharing ``llm_response_id`` are one assistant message),
    ``ObservationEvent`` / ``UserRejectObservation`` / ``AgentErrorEvent`` (tool results, paired by
    ``tool_call_id``). A JSON Lines file of such events (as the SDK's event API and tests hand them out) is read as
    one conversation too. Other kinds (state updates, pauses, condensations, token logs) are not messages.

Reasoning (``reasoning_content``, thinking blocks, V0 ``thought`` outside the model's text) is kept as
``<thinking>...</thinking>`` only with ``include_thinking``. Model: the model named by the stored responses (V0) or
``base_state.json`` (V1); ``cwd`` from the workspace (V1). ``started_at`` is the first event's timestamp, as written.

Outcome: error observations, ``AgentErrorEvent``, an observation flagged ``is_error`` and an agent state or execution
status of ``error`` set ``is_error``; a user's rejection (``user_rejected`` observation, ``UserRejectObservation``
from the user, agent state ``rejected``/``user_rejected``) sets ``user_rejected``; a pause or stop by the user sets
``interrupted``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .formats import MemoryFormat
from .reading import RecordError, json_type, read_json_document, read_json_lines
from .records import Conversation, ImportProblem, Message, Outcome, ToolCall

V0, V1 = "openhands", "openhands_v1"
_SOURCES = {"user", "agent", "environment"}
_V0_EVENT_FILE = re.compile(r"^\d+\.json$")
_V1_EVENT_FILE = re.compile(r"^event-(\d{5,})-[0-9a-fA-F\-]{8,}\.json$")
_V1_KINDS = {
    "MessageEvent", "ActionEvent", "ObservationEvent", "SystemPromptEvent", "AgentErrorEvent", "UserRejectObservation",
    "PauseEvent", "ConversationStateUpdateEvent", "Condensation", "CondensationRequest", "CondensationSummaryEvent",
    "ConversationErrorEvent", "InterruptEvent", "LLMCompletionLogEvent", "TokenEvent", "HookExecutionEvent",
}
_DEFAULT_FINISH_MESSAGE = "All done! What's next on the agenda?"  # what V0 shows when the model gave no final words


# ---------------------------------------------------------------------------------------------------------------
# recognising


def _is_v0_event(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("source") in _SOURCES and ("action" in obj or "observation" in obj) and "id" in obj


def _is_v1_event(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("kind") in _V1_KINDS and "id" in obj and ("source" in obj or "timestamp" in obj)


def sniff_v0_document(doc: Any) -> float:
    if isinstance(doc, list) and doc and all(_is_v0_event(e) for e in doc[:20]):
        return 0.95
    if isinstance(doc, dict) and _history_events(doc.get("history")):
        return 0.9  # one evaluation instance saved as a document
    return 0.0


def sniff_v0_line(obj: Any) -> float:
    if isinstance(obj, dict) and "instance_id" in obj and _history_events(obj.get("history")):
        return 0.95
    return 0.0


def _history_events(history: Any) -> bool:
    if not isinstance(history, list) or not history:
        return False
    first = history[0]
    if isinstance(first, list):  # the old [action, observation] pairs
        return any(_is_v0_event(e) for e in first)
    return _is_v0_event(first)


def sniff_v0_folder(folder: Path) -> float:
    events = folder / "events"
    if (folder / "base_state.json").exists() or not events.is_dir():
        return 0.0
    if any(_V0_EVENT_FILE.match(p.name) for p in events.iterdir()):
        return 0.9 if (folder / "metadata.json").is_file() else 0.7
    return 0.0


def sniff_v1_folder(folder: Path) -> float:
    events = folder / "events"
    has_events = events.is_dir() and any(_V1_EVENT_FILE.match(p.name) for p in events.iterdir())
    if (folder / "base_state.json").is_file():
        return 1.0 if has_events else 0.9
    return 0.8 if has_events else 0.0


def sniff_v1_line(obj: Any) -> float:
    return 0.9 if _is_v1_event(obj) else 0.0


def sniff_side_document(doc: Any) -> float:
    """One event file (V0 ``events/<n>.json``, V1 ``events/event-*.json``) or a V1 ``base_state.json`` met alone: part
    of a session folder, imported with it; alone it is not a conversation."""
    if _is_v0_event(doc) or _is_v1_event(doc):
        return 0.9
    if isinstance(doc, dict) and isinstance(doc.get("agent"), dict) and "execution_status" in doc and "workspace" in doc:
        return 0.9
    return 0.0


def _iter_nothing(path: Path, **_: Any) -> Iterator[Conversation | ImportProblem]:
    return iter(())


# ---------------------------------------------------------------------------------------------------------------
# V0


def iter_openhands(path: Path, include_thinking: bool = False) -> Iterator[Conversation | ImportProblem]:
    """A V0 trajectory (JSON list of events), an evaluation output.jsonl, or a session folder."""
    path = Path(path)
    if path.is_dir():
        yield from _v0_folder(path, include_thinking)
        return
    if path.suffix.lower() == ".jsonl":
        yield from read_json_lines(path, lambda obj, line: _v0_instance(obj, path, line, include_thinking), prefix=lambda n: f"instance on line {n}: ")
        return
    doc, problem = read_json_document(path)
    if problem is not None:
        yield problem
        return
    if isinstance(doc, dict) and "history" in doc:
        conv = _v0_instance(doc, path, 1, include_thinking)
        if conv is not None:
            yield conv
        return
    if not isinstance(doc, list):
        yield ImportProblem(str(path), 1, f"expected a list of events, got {json_type(doc)}")
        return
    builder = _V0Builder(str(path), include_thinking)
    yield from builder.add_all(doc)
    conv = builder.conversation(path.stem, 1)
    if conv is not None:
        yield conv


def _v0_instance(obj: dict[str, Any], path: Path, line: int, include_thinking: bool) -> Conversation | None:
    history = obj.get("history")
    if not isinstance(history, list):
        raise RecordError(f"'history' must be a list of events, got {json_type(history)}")
    events = [e for item in history for e in (item if isinstance(item, list) else [item])]
    builder = _V0Builder(str(path), include_thinking)
    for problem in builder.add_all(events):
        raise RecordError(problem.message)
    instance = obj.get("instance_id")
    session_id = f"{path.stem}:{instance}" if instance is not None else f"{path.stem}:{line}"
    conv = builder.conversation(session_id, line)
    if conv is None:
        return None
    if instance is not None:
        conv.task_id = str(instance)
    metadata = obj.get("metadata")
    llm = metadata.get("llm_config") if isinstance(metadata, dict) else None
    if isinstance(llm, dict) and isinstance(llm.get("model"), str) and "model" not in conv.metadata:
        conv.metadata["model"] = llm["model"]
    if obj.get("error"):
        conv.outcome.is_error = True
        conv.metadata["error"] = str(obj["error"])[:500]
    return conv


def _v0_folder(folder: Path, include_thinking: bool) -> Iterator[Conversation | ImportProblem]:
    files = sorted((p for p in (folder / "events").iterdir() if _V0_EVENT_FILE.match(p.name)), key=lambda p: int(p.stem))
    events: list[Any] = []
    for file in files:
        doc, problem = read_json_document(file)
        if problem is not None:
            yield problem
        elif not isinstance(doc, dict):
            yield ImportProblem(str(file), 1, f"expected an event object, got {json_type(doc)}")
        else:
            events.append(doc)
    builder = _V0Builder(str(folder), include_thinking)
    yield from builder.add_all(events)
    conv = builder.conversation(folder.name, 1)
    if conv is None:
        return
    meta, problem = read_json_document(folder / "metadata.json") if (folder / "metadata.json").is_file() else (None, None)
    if problem is not None:
        yield problem
    if isinstance(meta, dict):
        for key in ("title", "selected_repository"):
            if isinstance(meta.get(key), str) and meta[key]:
                conv.metadata[key] = meta[key]
        if isinstance(meta.get("llm_model"), str) and "model" not in conv.metadata:
            conv.metadata["model"] = meta["llm_model"]
    yield conv


class _V0Builder:
    def __init__(self, file: str, include_thinking: bool) -> None:
        self.file = file
        self.include_thinking = include_thinking
        self.messages: list[Message] = []
        self.outcome = Outcome()
        self.tools: list[dict] | None = None
        self.model: str | None = None
        self.started_at: str | None = None
        self.open_response: str | None = None  # the model response the last assistant message came from
        self.answered: set[str] = set()
        self.version: str | None = None

    def add_all(self, events: list[Any]) -> Iterator[ImportProblem]:
        for index, event in enumerate(events, start=1):
            if not _is_v0_event(event):
                yield ImportProblem(self.file, 1, f"event {index}: not an OpenHands event ({json_type(event)} without source and action/observation); skipped")
                continue
            if self.started_at is None and isinstance(event.get("timestamp"), str):
                self.started_at = event["timestamp"]
            if "action" in event:
                self._action(event)
            else:
                self._observation(event)

    def _action(self, event: dict[str, Any]) -> None:
        action = event["action"]
        args = event.get("args") if isinstance(event.get("args"), dict) else {}
        metadata = event.get("tool_call_metadata")
        if action == "system":
            content = args.get("content") or event.get("message")
            if isinstance(content, str) and content.strip():
                self.messages.append(Message(role="system", content=content))
            if isinstance(args.get("tools"), list):
                self.tools = [t for t in args["tools"] if isinstance(t, dict)]
            if isinstance(args.get("openhands_version"), str):
                self.version = args["openhands_version"]
            return
        if isinstance(metadata, dict) and event.get("source") == "agent":
            self._tool_call(event, action, args, metadata)
            return
        if action == "message":
            text = args.get("content") if isinstance(args.get("content"), str) else event.get("message")
            text = text if isinstance(text, str) else ""
            images = args.get("image_urls")
            if isinstance(images, list) and images:
                text = "\n".join([text, *["[image]"] * len(images)]).strip()
            role = "user" if event.get("source") == "user" else "assistant"
            if role == "assistant" and self.include_thinking and isinstance(args.get("thought"), str) and args["thought"].strip():
                text = f"<thinking>{args['thought']}</thinking>\n\n{text}"
            if text.strip():
                self.messages.append(Message(role=role, content=text))
                self.open_response = None
            return
        if action == "finish" and event.get("source") == "agent":
            answer = _finish_answer(args, event)
            if answer:
                self.messages.append(Message(role="assistant", content=answer))
                self.open_response = None
        # change_agent_state, recall, condensation, pause/resume...: bookkeeping, not conversation

    def _tool_call(self, event: dict[str, Any], action: str, args: dict[str, Any], metadata: dict[str, Any]) -> None:
        call_id = metadata.get("tool_call_id") if isinstance(metadata.get("tool_call_id"), str) else f"call_{event.get('id')}"
        response = metadata.get("model_response") if isinstance(metadata.get("model_response"), dict) else {}
        if self.model is None and isinstance(response.get("model"), str):
            self.model = response["model"]
        response_id = response.get("id") if isinstance(response.get("id"), str) else None
        message = _response_message(response)
        name, arguments = metadata.get("function_name"), None
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict) and call.get("id") == call_id and isinstance(call.get("function"), dict):
                name = call["function"].get("name") or name
                arguments = call["function"].get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps({k: v for k, v in args.items() if k != "thought"}, ensure_ascii=False)
        tool_call = ToolCall(id=call_id, name=str(name or action), arguments=arguments)
        last = self.messages[-1] if self.messages else None
        if response_id is not None and response_id == self.open_response and last is not None and last.role in ("assistant", "tool"):
            # another call of the same model response: it belongs to the assistant message that opened it
            target = next(m for m in reversed(self.messages) if m.role == "assistant")
            target.tool_calls.append(tool_call)
            return
        text = _content_text(message.get("content"))
        if self.include_thinking:
            reasoning = message.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning.strip():
                text = f"<thinking>{reasoning}</thinking>\n\n{text}".strip()
        if action == "finish" and not text.strip():
            text = _finish_answer(args, event)
        self.messages.append(Message(role="assistant", content=text, tool_calls=[tool_call]))
        self.open_response = response_id

    def _observation(self, event: dict[str, Any]) -> None:
        kind = event["observation"]
        extras = event.get("extras") if isinstance(event.get("extras"), dict) else {}
        if kind == "agent_state_changed":
            state = extras.get("agent_state")
            if state == "error":
                self.outcome.is_error = True
            elif state in ("rejected", "user_rejected"):
                self.outcome.user_rejected = True
            elif state in ("paused", "stopped"):
                self.outcome.interrupted = True
            return
        if kind == "error":
            self.outcome.is_error = True
        if kind == "user_rejected":
            self.outcome.user_rejected = True
        metadata = event.get("tool_call_metadata")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("tool_call_id"), str):
            return  # null observations, recalls, and errors not tied to a call: no message
        call_id = metadata["tool_call_id"]
        if call_id in self.answered or not _was_called(self.messages, call_id):
            return  # a second result, or one whose call is not in the stream: nothing to pair it with
        self.answered.add(call_id)
        content = event.get("content")
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False) if content is not None else ""
        self.messages.append(Message(role="tool", content=text, tool_call_id=call_id))

    def conversation(self, session_id: str, line: int) -> Conversation | None:
        if not any(m.role == "assistant" for m in self.messages):
            return None
        metadata: dict[str, Any] = {}
        if self.model:
            metadata["model"] = self.model
        if self.version:
            metadata["agent_version"] = self.version
        return Conversation(
            session_id=session_id,
            messages=self.messages,
            source_file=self.file,
            source_line=line,
            source_format=V0,
            tools=self.tools or None,
            started_at=self.started_at,
            outcome=self.outcome,
            metadata=metadata,
        )


def _response_message(response: dict[str, Any]) -> dict[str, Any]:
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict) and isinstance(choices[0].get("message"), dict):
        return choices[0]["message"]
    return {}


def _finish_answer(args: dict[str, Any], event: dict[str, Any]) -> str:
    for key in ("final_thought", "thought"):
        if isinstance(args.get(key), str) and args[key].strip():
            return args[key]
    message = event.get("message")
    return message if isinstance(message, str) and message != _DEFAULT_FINISH_MESSAGE else ""


def _content_text(content: Any) -> str:
    """Text of a message content: a string, or a list of content parts ({type: text, text} / image parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, dict) and (part.get("type") in ("image", "image_url") or "image_urls" in part):
                parts.append("[image]")
        return "\n".join(p for p in parts if p)
    return ""


# ---------------------------------------------------------------------------------------------------------------
# V1


def iter_openhands_v1(path: Path, include_thinking: bool = False) -> Iterator[Conversation | ImportProblem]:
    """A V1 conversation folder (base_state.json + events/), or a JSON Lines file of V1 events."""
    path = Path(path)
    builder = _V1Builder(str(path), include_thinking)
    state: dict[str, Any] = {}
    if path.is_dir():
        if (path / "base_state.json").is_file():
            doc, problem = read_json_document(path / "base_state.json")
            if problem is not None:
                yield problem
            elif isinstance(doc, dict):
                state = doc
            else:
                yield ImportProblem(str(path / "base_state.json"), 1, f"expected an object, got {json_type(doc)}; not used")
        events_dir = path / "events"
        files = [p for p in events_dir.iterdir() if _V1_EVENT_FILE.match(p.name)] if events_dir.is_dir() else []
        files.sort(key=lambda p: int(_V1_EVENT_FILE.match(p.name).group(1)))  # type: ignore[union-attr]
        for file in files:
            doc, problem = read_json_document(file)
            if problem is not None:
                yield problem
            elif not isinstance(doc, dict) or not isinstance(doc.get("kind"), str):
                yield ImportProblem(str(file), 1, "expected an event object with a 'kind'; skipped")
            else:
                builder.add(doc)
        session_id = state.get("id") if isinstance(state.get("id"), str) else path.name
    else:
        for item in read_json_lines(path, lambda obj, line: obj if isinstance(obj.get("kind"), str) else _missing_kind()):
            if isinstance(item, ImportProblem):
                yield item
            else:
                builder.add(item)
        session_id = path.stem
    conv = builder.conversation(session_id)
    if conv is None:
        return
    agent = state.get("agent") if isinstance(state.get("agent"), dict) else {}
    llm = agent.get("llm") if isinstance(agent.get("llm"), dict) else {}
    if isinstance(llm.get("model"), str) and llm["model"]:
        conv.metadata["model"] = llm["model"]
    workspace = state.get("workspace") if isinstance(state.get("workspace"), dict) else {}
    if isinstance(workspace.get("working_dir"), str) and workspace["working_dir"]:
        conv.metadata["cwd"] = workspace["working_dir"]
    status = state.get("execution_status")
    if isinstance(status, str):
        conv.metadata["execution_status"] = status
        if status in ("error", "stuck"):
            conv.outcome.is_error = True
    yield conv


def _missing_kind() -> None:
    raise RecordError("not an OpenHands event: no 'kind'")


class _V1Builder:
    def __init__(self, file: str, include_thinking: bool) -> None:
        self.file = file
        self.include_thinking = include_thinking
        self.messages: list[Message] = []
        self.outcome = Outcome()
        self.started_at: str | None = None
        self.open_response: str | None = None
        self.answered: set[str] = set()
        self.last_status: str | None = None
        self.model: str | None = None

    def add(self, event: dict[str, Any]) -> None:
        kind = event["kind"]
        if self.started_at is None and isinstance(event.get("timestamp"), str):
            self.started_at = event["timestamp"]
        if kind == "SystemPromptEvent":
            texts = [_text_of(event.get("system_prompt")), _text_of(event.get("dynamic_context"))]
            text = "\n\n".join(t for t in texts if t)
            if text:
                self.messages.append(Message(role="system", content=text))
        elif kind == "MessageEvent":
            self._message(event)
        elif kind == "ActionEvent":
            self._action(event)
        elif kind in ("ObservationEvent", "UserRejectObservation", "AgentErrorEvent"):
            self._observation(kind, event)
        elif kind in ("PauseEvent", "InterruptEvent"):
            self.outcome.interrupted = True
        elif kind == "ConversationErrorEvent":
            self.outcome.is_error = True
        elif kind == "ConversationStateUpdateEvent" and event.get("key") == "execution_status":
            self.last_status = event.get("value") if isinstance(event.get("value"), str) else None
        elif kind == "ConversationStateUpdateEvent" and event.get("key") == "stats":
            self.model = self.model or _model_from_stats(event.get("value"))

    def _message(self, event: dict[str, Any]) -> None:
        llm_message = event.get("llm_message") if isinstance(event.get("llm_message"), dict) else {}
        role = llm_message.get("role") or ("user" if event.get("source") == "user" else "assistant")
        text = _content_text(llm_message.get("content"))
        if role == "assistant" and self.include_thinking:
            text = _with_thinking(text, llm_message.get("reasoning_content"), llm_message.get("thinking_blocks"))
        if role not in ("user", "assistant", "system") or not text.strip():
            return
        self.messages.append(Message(role=role, content=text))
        self.open_response = None

    def _action(self, event: dict[str, Any]) -> None:
        call = event.get("tool_call") if isinstance(event.get("tool_call"), dict) else {}
        call_id = event.get("tool_call_id") or call.get("id") or f"call_{event.get('id')}"
        arguments = call.get("arguments")
        if not isinstance(arguments, str):
            action = event.get("action") if isinstance(event.get("action"), dict) else {}
            arguments = json.dumps({k: v for k, v in action.items() if k != "kind"}, ensure_ascii=False)
        tool_call = ToolCall(id=str(call_id), name=str(event.get("tool_name") or call.get("name") or ""), arguments=arguments)
        response_id = event.get("llm_response_id") if isinstance(event.get("llm_response_id"), str) else None
        if response_id is not None and response_id == self.open_response:
            next(m for m in reversed(self.messages) if m.role == "assistant").tool_calls.append(tool_call)
            return
        text = _content_text(event.get("thought"))
        if self.include_thinking:
            text = _with_thinking(text, event.get("reasoning_content"), event.get("thinking_blocks"))
        action = event.get("action") if isinstance(event.get("action"), dict) else {}
        if action.get("kind") == "FinishAction" and not text.strip() and isinstance(action.get("message"), str):
            text = action["message"]  # the final answer, so the conversation ends with it
        self.messages.append(Message(role="assistant", content=text, tool_calls=[tool_call]))
        self.open_response = response_id

    def _observation(self, kind: str, event: dict[str, Any]) -> None:
        if kind == "AgentErrorEvent":
            self.outcome.is_error = True
            text = str(event.get("error") or "")
        elif kind == "UserRejectObservation":
            if event.get("rejection_source", "user") == "user":
                self.outcome.user_rejected = True
            text = f"Action rejected: {event.get('rejection_reason') or 'User rejected the action'}"
        else:
            observation = event.get("observation") if isinstance(event.get("observation"), dict) else {}
            if observation.get("is_error") is True:
                self.outcome.is_error = True
            text = _content_text(observation.get("content"))
        call_id = event.get("tool_call_id")
        if not isinstance(call_id, str) or call_id in self.answered or not _was_called(self.messages, call_id):
            return  # a second result, or one whose call is not in the stream (a trimmed log): nothing to pair it with
        self.answered.add(call_id)
        self.messages.append(Message(role="tool", content=text, tool_call_id=call_id))

    def conversation(self, session_id: str) -> Conversation | None:
        if not any(m.role == "assistant" for m in self.messages):
            return None
        if self.last_status in ("error", "stuck"):
            self.outcome.is_error = True
        metadata: dict[str, Any] = {}
        if self.model:
            metadata["model"] = self.model
        return Conversation(
            session_id=session_id,
            messages=self.messages,
            source_file=self.file,
            source_line=1,
            source_format=V1,
            started_at=self.started_at,
            outcome=self.outcome,
            metadata=metadata,
        )


def _was_called(messages: list[Message], call_id: str) -> bool:
    return any(c.id == call_id for m in reversed(messages) if m.role == "assistant" for c in m.tool_calls)


def _text_of(block: Any) -> str:
    if isinstance(block, dict) and isinstance(block.get("text"), str):
        return block["text"]
    return block if isinstance(block, str) else ""


def _with_thinking(text: str, reasoning: Any, blocks: Any) -> str:
    thoughts = [reasoning] if isinstance(reasoning, str) and reasoning.strip() else []
    if not thoughts and isinstance(blocks, list):
        thoughts = [b["thinking"] for b in blocks if isinstance(b, dict) and isinstance(b.get("thinking"), str) and b["thinking"].strip()]
    return "\n\n".join([*(f"<thinking>{t}</thinking>" for t in thoughts), text]).strip()


def _model_from_stats(value: Any) -> str | None:
    usage = value.get("usage_to_metrics") if isinstance(value, dict) else None
    default = usage.get("default") if isinstance(usage, dict) else None
    model = default.get("model_name") if isinstance(default, dict) else None
    return model if isinstance(model, str) and model else None


# ---------------------------------------------------------------------------------------------------------------
# the formats


def _count_v0_sessions(path: Path) -> int:
    """An evaluation output.jsonl holds one instance a line; a trajectory or a session folder holds one."""
    if path.is_file() and path.suffix.lower() == ".jsonl":
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    return 1

FORMAT = MemoryFormat(
    V0,
    iter_openhands,
    sniff_document=sniff_v0_document,
    sniff_line=sniff_v0_line,
    sniff_folder=sniff_v0_folder,
    options=frozenset({"include_thinking"}),
    title="OpenHands V0 trajectories and sessions",
    agent="OpenHands",
    where="a trajectory JSON (save_trajectory_path or the UI's download), evaluation output.jsonl, ~/.openhands/sessions/<id>/events/<n>.json",
    kept="system prompt, user and assistant messages, tool calls rebuilt from the stored model responses with their observations, the finish answer, model, timestamps; reasoning on request",
    outcome_signals="error observations and agent errors, actions the user rejected, sessions paused or stopped by the user",
    # The app's file store: ~/.openhands since 0.44, ~/.openhands-state before.
    locations=("~/.openhands/sessions", "~/.openhands-state/sessions"),
    count_sessions=_count_v0_sessions,
)
V1_FORMAT = MemoryFormat(
    V1,
    iter_openhands_v1,
    sniff_line=sniff_v1_line,
    sniff_folder=sniff_v1_folder,
    options=frozenset({"include_thinking"}),
    title="OpenHands V1 conversations (software agent SDK, CLI, app)",
    agent="OpenHands",
    where="~/.openhands/conversations/<conversation id>/ (base_state.json + events/event-<n>-<id>.json)",
    kept="system prompt, user and assistant messages, tool calls with their observations, the finish answer, working directory, model, timestamps; reasoning on request",
    outcome_signals="tool errors and agent errors, actions the user rejected, pauses and interruptions, an error execution status",
    locations=("~/.openhands/conversations",),
)
SIDE_FILE_FORMAT = MemoryFormat(
    "openhands_side_file",
    _iter_nothing,
    sniff_document=sniff_side_document,
    side_file=True,
    title="OpenHands event files and V1 base_state.json met outside their session folder",
    where="inside ~/.openhands/sessions/<id>/ and ~/.openhands/conversations/<id>/; read with the folder, nothing imported alone",
)
FORMATS = (FORMAT, V1_FORMAT, SIDE_FILE_FORMAT)
