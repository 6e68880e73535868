"""Importer for a ChatGPT data export (``conversations.json``, with ``message_feedback.json`` beside it).

``conversations.json`` is a JSON array of conversation objects; a file holding one conversation object (as single
conversations are often shared) is read the same way. Each conversation is a tree: ``mapping`` maps node ids to
``{id, message, parent, children}`` and ``current_node`` is the node the user last saw. How it is read:

* The conversation is the path from ``current_node`` up the ``parent`` links to the root, reversed. Other branches
  (regenerated answers, edited prompts) are not part of it; they only matter for preference pairs (below).
* Roles: ``author.role`` system/user/assistant/tool. An assistant message whose ``recipient`` is not ``"all"`` is a
  tool call: ``ToolCall(name=recipient, id="call_<node id>")``; its ``arguments`` are the text itself when that
  text is a JSON object (``dalle.text2im`` sends one), otherwise ``{"input": <text>}`` (the browser/web/python
  tools get code such as ``search("...")``). A call is attached to the assistant message right before it when
  there is one (text + tool call in one turn, as the OpenAI format writes it).
* The ``tool`` messages that follow are the call's result and carry its ``tool_call_id``. Several results of one
  call (the browser's ``mclick`` returns one ``tether_quote`` per opened page) are merged into one tool message, so
  every call has exactly one answer. A tool message that answers no call is dropped: in real exports this is the
  o1 "Thought for N seconds" recap (``author.name`` like ``a8km123``), which is not a tool result. Reasoning
  content (``thoughts``, ``reasoning_recap``) is dropped as well, like thinking blocks elsewhere.
* Content: ``text`` parts are joined; ``code`` gives its ``text``; ``multimodal_text`` keeps text parts and writes
  ``[image]`` / ``[audio]`` / ``[<type>]`` for the others; ``tether_browsing_display`` gives ``result``;
  ``tether_quote`` gives title, url and quoted text; ``execution_output`` / ``system_error`` give their ``text``;
  anything else gives its ``text``/``result``/``parts`` when it has them, else ``[<content_type>]``. The
  invisible citation markup of newer answers (private-use characters U+E200..U+E204, e.g.
  U+E200 ``cite`` U+E202 ``turn0search3`` U+E201) is removed from assistant text; the visible ``【4†source】`` of
  older browsing answers is kept as written.
* Skipped: messages flagged ``is_visually_hidden_from_conversation`` (the empty system root, the memory snapshot),
  and empty user/assistant/system messages without tool calls (ChatGPT writes an empty assistant message before
  each tool call). Two exceptions: a hidden tool message that answers a call is kept (else the call would be left
  unanswered), and the user's custom instructions are kept as one ``system`` message, because the replies were
  written under them: ``user_editable_context`` gives ``user_profile`` + ``user_instructions`` as ChatGPT sent
  them; a system message with ``is_user_system_message`` gives its text, or when that is empty (as exported)
  ``user_context_message_data`` (``about_user_message``, ``about_model_message``). Custom instructions may hold
  personal facts: they are data for the redaction step.
* A thread without a user message and an assistant message is reported as an ImportProblem (nothing to learn from).

Outcome: ``message_feedback.json`` in the same folder is read when present. An entry names its message by
``message_id``, or, as real exports write it (no ``message_id`` field), by its ``id``; entries of other
conversations, or whose message is not in the mapping, are ignored (counted in ``metadata["feedback_unmatched"]``).
A rating on a message of the main thread sets ``outcome.rating`` (+1 thumbs_up, -1 thumbs_down; when both occur,
-1 wins: one bad answer makes the session not a clean example). A ``system_error`` tool result, or a python
result whose ``aggregate_result.status`` is a failure, sets ``outcome.is_error``; an answer with
``finish_details.type == "interrupted"`` sets ``outcome.interrupted``.

Preference pairs: when two assistant nodes share a parent (a regeneration) and one was rated thumbs_up and the
other thumbs_down, a PreferencePair is yielded after the conversation, on or off the main thread: the prompt is the
thread from the root to that parent (same rules as above), preferred is the thumbs_up answer.

Problems: a conversation that is not an object, has no ``mapping``, whose ``current_node`` or a parent is missing
from the mapping, or whose parent links form a cycle becomes an ImportProblem with ``line`` = index in the array + 1
and the message "conversation #N: ..."; the rest of the file is still imported. ``session_id`` is the conversation's
``id`` (or ``conversation_id``), else ``<file stem>:<N>``; ``source_line`` is N.

The export's other JSON files are registered as formats of their own that yield nothing, so that importing an
export folder does not report them as unknown: ``message_feedback.json`` (``chatgpt_feedback``; it also claims an
empty JSON array, which holds no records in any format and is how exports write a feedback file with no entries)
and ``shared_conversations.json`` (``chatgpt_shared_index``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from model_customization.timestamps import epoch_to_iso

from .formats import MemoryFormat
from .reading import RecordError, read_json_document, read_text
from .records import Conversation, ImportProblem, Message, Outcome, PreferencePair, ToolCall

SOURCE_FORMAT = "chatgpt_export"
FEEDBACK_FILE = "message_feedback.json"

_ROLES = {"system", "user", "assistant", "tool"}
_DROPPED_CONTENT = {"thoughts", "reasoning_recap"}
_FAILED_EXECUTION = {"failed_with_in_kernel_exception", "failed", "error"}
_RATINGS = {"thumbs_up": 1, "thumbs_down": -1}
_PEEK = 20
# Newer answers carry invisible citation markup in private-use characters: "\ue200cite\ue202turn0search3\ue201"
# marks a source, "\ue203" / "\ue204" bracket the cited span. Rendered by the ChatGPT UI only; removed here.
_CITATION = re.compile(" ?\ue200[^\ue200\ue201]*\ue201")
_CITATION_MARK = re.compile("[\ue203\ue204]")


# --------------------------------------------------------------------------------------------------- sniffing


def _is_conversation(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("mapping"), dict)
        and any(k in obj for k in ("current_node", "title", "create_time", "conversation_id"))
    )


def sniff_document(doc: Any) -> bool:
    if _is_conversation(doc):
        return True
    return isinstance(doc, list) and any(_is_conversation(x) for x in doc[:_PEEK])


def _is_feedback_entry(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("conversation_id"), str)
        and isinstance(obj.get("rating"), str)
        and "mapping" not in obj
    )


def sniff_feedback_document(doc: Any) -> bool:
    # An empty array holds no records whatever it was meant to be; claiming it keeps an export folder quiet.
    return isinstance(doc, list) and (not doc or all(_is_feedback_entry(x) for x in doc))


def sniff_shared_index_document(doc: Any) -> bool:
    return (
        isinstance(doc, list)
        and bool(doc)
        and all(
            isinstance(x, dict)
            and isinstance(x.get("conversation_id"), str)
            and "is_anonymous" in x
            and "mapping" not in x
            and "rating" not in x
            for x in doc
        )
    )


# --------------------------------------------------------------------------------------------------- reading


def iter_chatgpt_export(path: Path) -> Iterator[Conversation | PreferencePair | ImportProblem]:
    path = Path(path)
    file = str(path)
    doc, problem = read_json_document(path)
    if problem is not None:
        yield problem
        return
    if isinstance(doc, dict):
        items: list[Any] = [doc]
    elif isinstance(doc, list):
        items = doc
    else:
        yield ImportProblem(file, 0, "expected a conversation object or an array of them")
        return

    feedback, feedback_problems = _load_feedback(path.parent / FEEDBACK_FILE)
    yield from feedback_problems
    for index, item in enumerate(items):
        no = index + 1
        try:
            yield from _records(item, no, path, feedback)
        except RecordError as exc:
            yield ImportProblem(file, no, f"conversation #{no}: {exc}")


def _iter_nothing(path: Path) -> Iterator[Conversation | PreferencePair | ImportProblem]:
    """Export metadata (feedback, share index): read alongside conversations.json, no records of its own."""
    return iter(())


def _load_feedback(path: Path) -> tuple[dict[str, list[tuple[str, int]]], list[ImportProblem]]:
    """conversation id -> [(message id, +1/-1)] from message_feedback.json, when the file is there."""
    by_conv: dict[str, list[tuple[str, int]]] = {}
    if not path.is_file():
        return by_conv, []
    try:
        doc = json.loads(read_text(path))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return by_conv, [ImportProblem(str(path), 0, f"feedback file not read: {exc}")]
    if not isinstance(doc, list):
        return by_conv, [ImportProblem(str(path), 0, "feedback file not read: expected a JSON array")]
    problems = []
    for i, entry in enumerate(doc, start=1):
        if not isinstance(entry, dict):
            problems.append(ImportProblem(str(path), i, f"feedback #{i}: expected an object"))
            continue
        conv_id = entry.get("conversation_id")
        message_id = entry.get("message_id") if isinstance(entry.get("message_id"), str) else entry.get("id")
        rating = _RATINGS.get(entry.get("rating"))  # other ratings (none seen so far) carry no thumbs signal
        if not isinstance(conv_id, str) or not isinstance(message_id, str):
            problems.append(ImportProblem(str(path), i, f"feedback #{i}: no conversation_id / message id"))
            continue
        if rating is not None:
            by_conv.setdefault(conv_id, []).append((message_id, rating))
    return by_conv, problems


def _records(
    item: Any, no: int, path: Path, feedback: dict[str, list[tuple[str, int]]]
) -> Iterator[Conversation | PreferencePair]:
    if not isinstance(item, dict):
        raise RecordError(f"expected an object, got {type(item).__name__}")
    mapping = item.get("mapping")
    if not isinstance(mapping, dict) or not mapping:
        raise RecordError("no 'mapping'")
    for node_id, node in mapping.items():
        if not isinstance(node, dict):
            raise RecordError(f"node {node_id!r} is not an object")
    current = item.get("current_node")
    if not isinstance(current, str):
        raise RecordError("no 'current_node'")
    conv_id = item.get("id") if isinstance(item.get("id"), str) else item.get("conversation_id")
    session_id = conv_id if isinstance(conv_id, str) and conv_id else f"{path.stem}:{no}"

    chain = _chain(mapping, current)
    outcome = Outcome()
    messages = _messages(mapping, chain, outcome)
    roles = {m.role for m in messages}
    if "user" not in roles or "assistant" not in roles:
        raise RecordError("no user message and assistant reply on the current branch; skipped")

    # Ratings: message id (node id, or message.id when it differs) -> ratings given.
    ratings: dict[str, list[int]] = {}
    unmatched = 0
    node_of_message = _node_of_message(mapping)
    for message_id, rating in feedback.get(conv_id, []) if isinstance(conv_id, str) else []:
        node_id = node_of_message.get(message_id)
        if node_id is None:
            unmatched += 1
        else:
            ratings.setdefault(node_id, []).append(rating)
    on_thread = [r for node_id in chain for r in ratings.get(node_id, [])]
    if on_thread:
        outcome.rating = -1 if -1 in on_thread else 1

    metadata: dict[str, Any] = {}
    if isinstance(item.get("title"), str):
        metadata["title"] = item["title"]
    if isinstance(item.get("default_model_slug"), str):
        metadata["model"] = item["default_model_slug"]
    if unmatched:
        metadata["feedback_unmatched"] = unmatched
    yield Conversation(
        session_id=session_id,
        messages=messages,
        source_file=str(path),
        source_line=no,
        source_format=SOURCE_FORMAT,
        started_at=epoch_to_iso(item.get("create_time"), timespec="milliseconds", zulu=True),
        outcome=outcome,
        metadata=metadata,
    )
    yield from _preference_pairs(mapping, ratings, session_id, no, path)


def _chain(mapping: dict[str, Any], current: str) -> list[str]:
    """Node ids from the root to ``current``."""
    chain: list[str] = []
    seen: set[str] = set()
    node_id: Any = current
    while node_id is not None:
        if not isinstance(node_id, str) or node_id not in mapping:
            what = "current_node" if node_id == current and not chain else f"parent of node {chain[-1]!r}"
            raise RecordError(f"broken parent chain: {what} {node_id!r} is not in the mapping")
        if node_id in seen:
            raise RecordError(f"cycle in the parent links at node {node_id!r}")
        seen.add(node_id)
        chain.append(node_id)
        node_id = mapping[node_id].get("parent")
    chain.reverse()
    return chain


def _node_of_message(mapping: dict[str, Any]) -> dict[str, str]:
    index: dict[str, str] = {}
    for node_id, node in mapping.items():
        index[node_id] = node_id
        msg = node.get("message")
        if isinstance(msg, dict) and isinstance(msg.get("id"), str):
            index.setdefault(msg["id"], node_id)
    return index


def _messages(mapping: dict[str, Any], chain: list[str], outcome: Outcome | None = None) -> list[Message]:
    out: list[Message] = []
    pending: list[ToolCall] = []  # calls not answered yet, oldest first
    answered: ToolCall | None = None  # the call the last tool message answered (results of one call are merged)
    for node_id in chain:
        msg = mapping[node_id].get("message")
        if not isinstance(msg, dict):
            continue  # the root placeholder
        author = msg.get("author") if isinstance(msg.get("author"), dict) else {}
        role = author.get("role")
        if role not in _ROLES:
            raise RecordError(f"node {node_id!r}: unknown author role {role!r}")
        metadata = msg.get("metadata") if isinstance(msg.get("metadata"), dict) else {}
        content = msg.get("content") if isinstance(msg.get("content"), dict) else {}
        ctype = content.get("content_type")
        hidden = metadata.get("is_visually_hidden_from_conversation") is True
        if ctype in _DROPPED_CONTENT:
            continue

        custom = _custom_instructions(role, content, metadata)
        if custom is not None:
            if custom:
                out.append(Message(role="system", content=custom))
            continue

        text = _content_text(content)
        recipient = msg.get("recipient")

        if role == "tool":
            name = author.get("name")
            if (
                answered is not None
                and out
                and out[-1].role == "tool"
                and out[-1].tool_call_id == answered.id
                and (not pending or name == answered.name)
            ):
                # Another result of the call just answered (mclick opens several pages).
                if text:
                    out[-1].content = f"{out[-1].content}\n\n{text}" if out[-1].content else text
                _note_error(outcome, content, metadata)
                continue
            call = next((c for c in pending if c.name == name), pending[0] if pending else None)
            if call is None:
                continue  # answers no call: the o1 thinking recap, not a tool result
            pending.remove(call)
            answered = call
            out.append(Message(role="tool", content=text, tool_call_id=call.id))
            _note_error(outcome, content, metadata)
            continue

        answered = None
        if hidden:
            continue
        if role == "assistant" and isinstance(recipient, str) and recipient not in ("all", ""):
            call = ToolCall(id=f"call_{node_id}", name=recipient, arguments=_arguments(text))
            pending.append(call)
            if out and out[-1].role == "assistant":
                out[-1].tool_calls.append(call)
            else:
                out.append(Message(role="assistant", content="", tool_calls=[call]))
            continue
        if role == "assistant":
            text = _strip_citations(text)
        if not text.strip():
            continue
        if role == "assistant" and outcome is not None:
            details = metadata.get("finish_details")
            if isinstance(details, dict) and details.get("type") == "interrupted":
                outcome.interrupted = True
        out.append(Message(role=role, content=text))
    return out


def _custom_instructions(role: str, content: dict[str, Any], metadata: dict[str, Any]) -> str | None:
    """The custom-instructions text ('' when empty), or None when the message is not custom instructions."""
    if content.get("content_type") == "user_editable_context":
        parts = [content.get("user_profile"), content.get("user_instructions")]
    elif role == "system" and metadata.get("is_user_system_message") is True:
        text = _content_text(content)
        if text.strip():
            return text.strip()  # the instructions as the model got them
        data = metadata.get("user_context_message_data")
        data = data if isinstance(data, dict) else {}
        parts = [data.get("about_user_message"), data.get("about_model_message")]
    else:
        return None
    return "\n\n".join(p.strip() for p in parts if isinstance(p, str) and p.strip())


def _content_text(content: dict[str, Any]) -> str:
    ctype = content.get("content_type")
    if ctype in ("text", "multimodal_text") or (
        ctype is not None and isinstance(content.get("parts"), list) and "text" not in content
    ):
        return _parts(content.get("parts"))
    if ctype == "tether_browsing_display":
        return _str(content.get("result")) or _str(content.get("summary"))
    if ctype == "tether_quote":
        return "\n".join(
            s for s in (_str(content.get("title")), _str(content.get("url")), _str(content.get("text")).strip()) if s
        )
    if isinstance(content.get("text"), str):  # code, execution_output, system_error, sonic_webpage, ...
        return content["text"]
    if isinstance(content.get("result"), str):
        return content["result"]
    if ctype is None:
        return ""
    return f"[{ctype}]"


def _parts(parts: Any) -> str:
    if not isinstance(parts, list):
        return ""
    texts: list[str] = []
    for part in parts:
        if isinstance(part, str):
            if part:
                texts.append(part)
        elif isinstance(part, dict):
            kind = part.get("content_type")
            if kind == "image_asset_pointer":
                texts.append("[image]")
            elif kind == "audio_transcription" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind in ("audio_asset_pointer", "real_time_user_audio_video_asset_pointer"):
                texts.append("[audio]")
            elif isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                texts.append(f"[{kind or 'attachment'}]")
    return "\n".join(texts)


def _strip_citations(text: str) -> str:
    return _CITATION_MARK.sub("", _CITATION.sub("", text))


def _arguments(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            if isinstance(json.loads(stripped), dict):
                return stripped
        except json.JSONDecodeError:
            pass
    return json.dumps({"input": text}, ensure_ascii=False)


def _note_error(outcome: Outcome | None, content: dict[str, Any], metadata: dict[str, Any]) -> None:
    if outcome is None:
        return
    aggregate = metadata.get("aggregate_result")
    status = aggregate.get("status") if isinstance(aggregate, dict) else None
    if content.get("content_type") == "system_error" or status in _FAILED_EXECUTION:
        outcome.is_error = True


def _preference_pairs(
    mapping: dict[str, Any], ratings: dict[str, list[int]], session_id: str, no: int, path: Path
) -> Iterator[PreferencePair]:
    def verdict(node_id: str) -> int | None:
        given = ratings.get(node_id)
        return None if not given else (-1 if -1 in given else 1)

    def assistant(node_id: str) -> Message | None:
        msgs = _messages(mapping, [node_id])
        return msgs[0] if len(msgs) == 1 and msgs[0].role == "assistant" else None

    by_parent: dict[str, list[str]] = {}
    for node_id in ratings:
        parent = mapping[node_id].get("parent")
        if isinstance(parent, str) and parent in mapping:
            by_parent.setdefault(parent, []).append(node_id)
    for parent, rated in by_parent.items():
        ups = [n for n in rated if verdict(n) == 1]
        downs = [n for n in rated if verdict(n) == -1]
        if not ups or not downs:
            continue
        try:
            prompt = _messages(mapping, _chain(mapping, parent))
        except RecordError:
            continue
        for up in ups:
            for down in downs:
                preferred, non_preferred = assistant(up), assistant(down)
                if preferred is None or non_preferred is None:
                    continue
                yield PreferencePair(
                    session_id=session_id,
                    prompt=prompt,
                    preferred=preferred,
                    non_preferred=non_preferred,
                    source_file=str(path),
                    source_line=no,
                    source_format=SOURCE_FORMAT,
                )


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


FORMAT = MemoryFormat(
    SOURCE_FORMAT,
    iter_chatgpt_export,
    sniff_document=sniff_document,
    title="ChatGPT data export",
    agent="ChatGPT",
    where="conversations.json in the zip from ChatGPT's Settings > Data controls > Export",
    kept="the branch the user last saw (mapping walked from current_node), tool turns through recipient, model, creation times",
    outcome_signals="thumbs up/down in message_feedback.json become ratings; regenerations rated up vs down become DPO pairs",
)
FEEDBACK_FORMAT = MemoryFormat("chatgpt_feedback", _iter_nothing, sniff_document=sniff_feedback_document, side_file=True)
SHARED_INDEX_FORMAT = MemoryFormat("chatgpt_shared_index", _iter_nothing, sniff_document=sniff_shared_index_document, side_file=True)
