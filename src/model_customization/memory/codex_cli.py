"""Importer for Codex CLI rollouts: ``~/.codex/sessions/YYYY/MM/DD/rollout-<timestamp>-<uuid>.jsonl`` (and the same
files moved to ``~/.codex/archived_sessions/``), one session per file, in the three shapes Codex has written:

* current (codex-rs, from about 0.3x): every line is a ``RolloutLine`` ``{timestamp, type, payload}`` whose type is
  ``session_meta`` (id, timestamp, cwd, originator, cli_version, source, model_provider, base_instructions,
  instructions, git), ``response_item`` (a Responses API item: ``message``, ``reasoning``, ``function_call``,
  ``function_call_output``, ``custom_tool_call`` / ``custom_tool_call_output``, ``local_shell_call``,
  ``web_search_call``, ...), ``event_msg`` (UI events), ``turn_context`` (cwd, model, approval and sandbox policy per
  turn) or ``compacted``;
* older codex-rs (mid 2025): line 1 is the session meta itself (``{id, timestamp, instructions, git, ...}``, no
  envelope), then ``{"record_type": "state"}`` markers and bare response items;
* the TypeScript Codex CLI (spring 2025): ``rollout-<date>-<id>.json``, one document ``{session: {id, timestamp,
  instructions, model?}, items: [response items]}``.

What becomes the conversation:

* The ``response_item`` lines are what the model saw, in order; they make the messages. ``event_msg`` lines repeat
  the user's prompts (``user_message``) and the answers (``agent_message``) for the UI: at the end of the file each
  such event is matched against the response items of its role carrying the same text (wherever they are: some
  versions wrote events before items) and dropped; only an event without such an item (some rollouts, e.g.
  trimmed copies, keep only the events) becomes a message, where the event stands. Nothing is counted twice.
* Context Codex injects is not the user's request: developer-role messages (permissions and collaboration-mode
  instructions) and the user-role parts Codex writes itself (``<environment_context>``, ``<user_instructions>``,
  ``# AGENTS.md instructions for ...`` / ``<INSTRUCTIONS>``, ``<permissions instructions>``, ``<turn_aborted>``,
  ``<user_shell_command>`` and other wholly tag-wrapped blocks). They are KEPT as system context: the system
  message is the session's ``base_instructions`` (the system prompt, when the rollout records it), then the
  session meta ``instructions``, then every such context block that arrives before the user's first real
  message, duplicates dropped. Context injected later in the session (an updated environment after a ``cd``, a new
  permissions block) is dropped, counted in ``metadata["later_context_dropped"]``.
* Assistant ``message`` items become assistant messages; consecutive ones are joined. ``function_call`` (arguments
  kept as the JSON text the model wrote), ``custom_tool_call`` (free-form input, kept as ``{"input": ...}``) and
  ``local_shell_call`` (``{"action": ...}``, name ``local_shell``) become tool calls on the assistant message
  before them; calls issued together (no output in between) share one assistant message. Each
  ``function_call_output`` / ``custom_tool_call_output`` becomes a ``tool`` message paired by ``call_id``, with the
  output text exactly as the model saw it (a JSON-wrapped ``{"output", "metadata"}`` string stays as it is). An
  output whose call is not in the file is dropped (``metadata["orphan_tool_outputs"]``).
* ``web_search_call`` items have no call id and no recorded result: they are left out (counted in
  ``metadata["web_searches"]``). ``ghost_snapshot``, ``compaction`` and other internal items are left out.
* ``reasoning`` items are dropped unless ``include_thinking`` is given; then their summary texts (or, when there is
  no summary, the plain ``reasoning_text`` content some models return) go before the next assistant text as
  ``<thinking>...</thinking>``. Encrypted reasoning is never read.
* ``compacted`` lines (the history was summarised) do not replace anything: the transcript keeps every turn as it
  happened; ``metadata["compactions"]`` counts them.

Outcome: ``is_error`` when a tool output reports a non-zero exit code (``metadata.exit_code`` in a JSON-wrapped
output, an ``Exit code: N`` / ``Process exited with code N`` header, an ``exec_command_end`` event's
``exit_code``) or ``success: false``; ``user_rejected`` when Codex answered a call with its refusal text (``exec
command rejected by user``, ``patch rejected by user``); ``interrupted`` on a ``turn_aborted`` event (reason
``interrupted`` or ``replaced``), on the ``<turn_aborted>`` marker newer versions inject, and on a call answered
``aborted``.

Subagents and forks: a rollout Codex writes for a spawned subagent names its parent in the session meta
(``source.subagent.thread_spawn.parent_thread_id``): it becomes ``parent_session_id`` (and ``metadata["subagent"]``;
``forked_from`` for a fork). Such a file may begin with a copy of the parent's session meta and history, which the
child was started with: the first session meta names the file's session, later ones are ignored, and the copied
history is kept as the start of the child's conversation (it is what the child's model saw).

Metadata: ``cwd`` and ``model`` (session meta, else the first turn context; ``models`` when the session switched),
``agent_version`` (cli_version), ``originator``, ``source``, ``model_provider``, ``approval_policy``,
``sandbox_mode``, ``git_branch`` / ``git_commit`` / ``git_repository``. ``session_id`` is the session meta id (else
the uuid in the file name); ``started_at`` the session meta timestamp.

A file without at least one user and one assistant message yields nothing. Unreadable lines become
ImportProblems; the rest of the file is still read. The file is read line by line, never whole, except a
zstd-compressed ``rollout-*.jsonl.zst`` (newer Codex may compress rollouts), which is decompressed in memory first
when Python 3.14's ``compression.zstd`` or the ``zstandard`` package is there (else one ImportProblem says so).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_customization.paths import open_fenced

from .formats import MemoryFormat
from .reading import RecordError, json_type, read_json_document, read_json_lines
from .records import Conversation, ImportProblem, Message, Outcome, ToolCall

SOURCE_FORMAT = "codex_cli"

_LINE_TYPES = {
    "session_meta", "response_item", "event_msg", "turn_context", "compacted",
    "inter_agent_communication", "inter_agent_communication_metadata", "world_state",
}
_TOOL_OUTPUT_TYPES = {"function_call_output", "custom_tool_call_output"}
_META_KEYS = ("instructions", "git", "cwd", "originator", "cli_version", "base_instructions", "model_provider")
# User-role text Codex writes itself. Other blocks wholly wrapped in one snake_case tag are treated the same way.
_CONTEXT_PREFIXES = (
    "<environment_context", "<user_instructions", "# AGENTS.md instructions", "<INSTRUCTIONS>",
    "<permissions instructions", "<turn_aborted", "<user_shell_command", "<collaboration_mode", "<skill>",
)
_WRAPPED_BLOCK = re.compile(r"^<([a-z]+(?:_[a-z]+)+)>.*</\1>$", re.DOTALL)
_EXIT_CODE = re.compile(r"^(?:Exit code|Process exited with code):? (-?\d+)\s*$", re.MULTILINE)
_REJECTIONS = ("rejected by user",)
_CWD = re.compile(r"<cwd>([^<]+)</cwd>")
_UUID_TAIL = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")


# --- recognising -------------------------------------------------------------------------------------------------


def sniff_line(obj: Any) -> float:
    """Fit of one parsed line: the current envelope and the old header/state lines are Codex's own; a bare Responses
    API item (old rollouts) is only likely to be."""
    if not isinstance(obj, dict):
        return 0.0
    kind = obj.get("type")
    if kind in _LINE_TYPES and isinstance(obj.get("payload"), dict) and "timestamp" in obj:
        return 1.0 if kind == "session_meta" else 0.95
    if kind in _LINE_TYPES and isinstance(obj.get("payload"), dict):
        return 0.9
    if obj.get("record_type") == "state":
        return 0.95
    if kind is None and isinstance(obj.get("id"), str) and isinstance(obj.get("timestamp"), str):
        return 0.85 if any(k in obj for k in _META_KEYS) else 0.0
    return 0.6 if _is_response_item(obj) else 0.0


def _is_response_item(obj: dict[str, Any]) -> bool:
    kind = obj.get("type")
    if kind == "message":
        content = obj.get("content")
        return obj.get("role") in ("user", "assistant", "developer", "system") and isinstance(content, list) and all(
            isinstance(p, dict) and p.get("type") in ("input_text", "output_text", "input_image", "text") for p in content
        )
    if kind in ("function_call", "custom_tool_call"):
        return isinstance(obj.get("call_id"), str) and isinstance(obj.get("name"), str)
    if kind in _TOOL_OUTPUT_TYPES:
        return isinstance(obj.get("call_id"), str) and "output" in obj
    if kind == "reasoning":
        return isinstance(obj.get("summary"), list)
    if kind == "local_shell_call":
        return isinstance(obj.get("action"), dict)
    return False


def sniff_document(doc: Any) -> float:
    """The TypeScript CLI's ``rollout-*.json``: ``{session: {id, timestamp, ...}, items: [response items]}``."""
    if not isinstance(doc, dict) or not isinstance(doc.get("session"), dict) or not isinstance(doc.get("items"), list):
        return 0.0
    session = doc["session"]
    if not isinstance(session.get("id"), str) or "timestamp" not in session:
        return 0.0
    items = [i for i in doc["items"][:20] if isinstance(i, dict)]
    if items and not all(_is_response_item(i) or i.get("type") for i in items):
        return 0.0
    return 0.95


# --- reading -----------------------------------------------------------------------------------------------------


@dataclass
class _EventText:
    """A prompt or answer known only from an event so far: see _Session._resolve_events."""

    role: str
    text: str


@dataclass
class _Assistant:
    message: Message
    parts: list[str] = field(default_factory=list)


@dataclass
class _Session:
    path: Path
    include_thinking: bool
    session_id: str | None = None
    parent_session_id: str | None = None
    started_at: str | None = None
    first_line: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    system_parts: list[str] = field(default_factory=list)
    messages: list[Message | _EventText] = field(default_factory=list)
    outcome: Outcome = field(default_factory=Outcome)
    seen_user: bool = False
    open_assistant: _Assistant | None = None
    assistants: list[_Assistant] = field(default_factory=list)
    pending_thinking: list[str] = field(default_factory=list)
    calls: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)
    # What the response items said, per role: an event saying the same is its UI twin (see the module docstring).
    item_keys: dict[str, list[str]] = field(default_factory=lambda: {"user": [], "assistant": []})

    # -- lines --

    def take_line(self, obj: dict[str, Any], line_no: int) -> None:
        kind = obj.get("type")
        payload = obj.get("payload")
        if kind in _LINE_TYPES:
            if not isinstance(payload, dict):
                raise RecordError(f"'{kind}' line: 'payload' must be an object, got {json_type(payload)}")
            self._mark(line_no)
            if kind == "session_meta":
                self.take_meta(payload, obj.get("timestamp"))
            elif kind == "response_item":
                self.take_item(payload)
            elif kind == "event_msg":
                self.take_event(payload)
            elif kind == "turn_context":
                self.take_turn_context(payload)
            elif kind == "compacted":
                self.metadata["compactions"] = self.metadata.get("compactions", 0) + 1
            return
        if obj.get("record_type") is not None:
            return  # old "state" markers
        if kind is None and isinstance(obj.get("id"), str) and isinstance(obj.get("timestamp"), str):
            self._mark(line_no)
            self.take_meta(obj, obj.get("timestamp"))  # the old header line
            return
        if isinstance(kind, str) and "payload" in obj:
            return  # an envelope type newer than this reader: not part of the conversation as far as we know
        if isinstance(kind, str):
            self._mark(line_no)
            self.take_item(obj)  # an old bare response item
            return
        raise RecordError(f"not a Codex rollout line: 'type' is {kind!r}")

    def _mark(self, line_no: int) -> None:
        if self.first_line is None:
            self.first_line = line_no

    def take_meta(self, meta: dict[str, Any], line_timestamp: Any) -> None:
        session_id = meta.get("id") if isinstance(meta.get("id"), str) else meta.get("session_id")
        if self.session_id is None and isinstance(session_id, str) and session_id:
            self.session_id = session_id
        elif self.session_id is not None:
            return  # a fork or resume copies its parent's meta line: the first one names this file's session
        stamp = meta.get("timestamp") if isinstance(meta.get("timestamp"), str) else line_timestamp
        if isinstance(stamp, str) and self.started_at is None:
            self.started_at = stamp
        for key, meta_key in (
            ("cwd", "cwd"), ("cli_version", "agent_version"), ("originator", "originator"), ("source", "source"),
            ("model_provider", "model_provider"), ("model", "model"), ("forked_from_id", "forked_from"),
        ):
            if isinstance(meta.get(key), str) and meta[key]:
                self.metadata.setdefault(meta_key, meta[key])
        source = meta.get("source")
        spawn = source.get("subagent", source.get("sub_agent")) if isinstance(source, dict) else None
        spawn = spawn.get("thread_spawn") if isinstance(spawn, dict) else None
        parent = spawn.get("parent_thread_id") if isinstance(spawn, dict) else meta.get("parent_thread_id")
        if isinstance(parent, str) and parent:
            self.parent_session_id = parent
            self.metadata["subagent"] = True
        git = meta.get("git")
        if isinstance(git, dict):
            for key, meta_key in (("branch", "git_branch"), ("commit_hash", "git_commit"), ("repository_url", "git_repository")):
                if isinstance(git.get(key), str) and git[key]:
                    self.metadata[meta_key] = git[key]
        base = meta.get("base_instructions")
        base_text = base.get("text") if isinstance(base, dict) else base
        for text in (base_text, meta.get("instructions")):
            if isinstance(text, str) and text.strip():
                self.system_parts.append(text.strip())

    def take_turn_context(self, ctx: dict[str, Any]) -> None:
        model = ctx.get("model")
        if isinstance(model, str) and model and model not in self.models:
            self.models.append(model)
        if isinstance(ctx.get("cwd"), str) and ctx["cwd"]:
            self.metadata.setdefault("cwd", ctx["cwd"])
        if isinstance(ctx.get("approval_policy"), str):
            self.metadata.setdefault("approval_policy", ctx["approval_policy"])
        sandbox = ctx.get("sandbox_policy")
        mode = sandbox.get("type") or sandbox.get("mode") if isinstance(sandbox, dict) else sandbox
        if isinstance(mode, str):
            self.metadata.setdefault("sandbox_mode", mode)

    # -- response items --

    def take_item(self, item: dict[str, Any]) -> None:
        kind = item.get("type")
        if kind == "message":
            self.take_message(item)
        elif kind in ("function_call", "custom_tool_call", "local_shell_call"):
            self.take_call(item)
        elif kind in _TOOL_OUTPUT_TYPES:
            self.take_output(item)
        elif kind == "reasoning":
            if self.include_thinking:
                text = _reasoning_text(item)
                if text:
                    self.pending_thinking.append(f"<thinking>{text}</thinking>")
        elif kind == "web_search_call":
            self.metadata["web_searches"] = self.metadata.get("web_searches", 0) + 1
        # ghost_snapshot, compaction and unknown items: not part of the conversation

    def take_message(self, item: dict[str, Any]) -> None:
        role = item.get("role")
        content = item.get("content")
        if not isinstance(content, list):
            raise RecordError(f"message: 'content' must be a list of parts, got {json_type(content)}")
        texts = [_part_text(p) for p in content]
        texts = [t for t in texts if t is not None]
        if role in ("developer", "system"):
            self._context("\n\n".join(t for t in texts if t.strip()))
            return
        if role == "assistant":
            text = "\n\n".join(t for t in texts if t.strip())
            if text:
                self.item_keys["assistant"].append(_key(text))
                self._assistant_text(text)
            return
        if role != "user":
            raise RecordError(f"message: unknown role {role!r}")
        spoken: list[str] = []
        for text in texts:
            if _is_context(text):
                if text.lstrip().startswith("<turn_aborted"):
                    self.outcome.interrupted = True
                else:
                    self._context(text)
            elif text.strip():
                spoken.append(text)
        text = "\n\n".join(spoken)
        if text:
            self.item_keys["user"].append(_key(text))
            self._user(text)

    def take_call(self, item: dict[str, Any]) -> None:
        kind = item["type"]
        call_id = item.get("call_id") or item.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise RecordError(f"{kind} without a 'call_id'")
        if kind == "function_call":
            name = item.get("name")
            arguments = item.get("arguments")
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
        elif kind == "custom_tool_call":
            name = item.get("name")
            arguments = json.dumps({"input": item.get("input", "")}, ensure_ascii=False)
        else:
            name = "local_shell"
            arguments = json.dumps({"action": item.get("action")}, ensure_ascii=False)
        if not isinstance(name, str) or not name:
            raise RecordError(f"{kind} without a 'name'")
        if call_id in self.calls:
            return
        self.calls.add(call_id)
        target = self.open_assistant or self._new_assistant()
        target.parts.extend(self.pending_thinking)
        self.pending_thinking = []
        target.message.tool_calls.append(ToolCall(id=call_id, name=name, arguments=arguments))

    def take_output(self, item: dict[str, Any]) -> None:
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise RecordError(f"{item['type']} without a 'call_id'")
        text, exit_code, failed = _output(item.get("output"))
        self._judge_output(text, exit_code, failed)
        if call_id not in self.calls:
            self.metadata["orphan_tool_outputs"] = self.metadata.get("orphan_tool_outputs", 0) + 1
            return
        if call_id in self.answered:
            return
        self.answered.add(call_id)
        self.messages.append(Message(role="tool", content=text, tool_call_id=call_id))
        self.open_assistant = None

    def _judge_output(self, text: str, exit_code: int | None, failed: bool) -> None:
        head = text[:300]
        if any(r in head for r in _REJECTIONS):
            self.outcome.user_rejected = True
        elif text.strip() == "aborted" or head.startswith("aborted by user"):
            self.outcome.interrupted = True
        elif failed or (exit_code is not None and exit_code != 0):
            self.outcome.is_error = True

    # -- events --

    def take_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "user_message" and isinstance(event.get("message"), str):
            text = event["message"]
            if _is_context(text):
                return  # older versions echoed injected context as events too; the response item has it
            if text.strip():
                # Placed where it happened; kept at the end only if no response item says the same.
                self._user(text, from_event=True)
        elif kind == "agent_message" and isinstance(event.get("message"), str):
            text = event["message"]
            if text.strip():
                self.messages.append(_EventText("assistant", text))
        elif kind == "turn_aborted":
            if event.get("reason") in ("interrupted", "replaced", None):
                self.outcome.interrupted = True
        elif kind == "exec_command_end":
            output = " ".join(str(event.get(k) or "") for k in ("aggregated_output", "stderr"))
            if any(r in output for r in _REJECTIONS):
                self.outcome.user_rejected = True
            elif isinstance(event.get("exit_code"), int) and event["exit_code"] != 0:
                self.outcome.is_error = True

    # -- building --

    def _context(self, text: str) -> None:
        if not text.strip():
            return
        if "cwd" not in self.metadata:
            found = _CWD.search(text)  # old rollouts name the working directory only in <environment_context>
            if found:
                self.metadata["cwd"] = found.group(1).strip()
        if self.seen_user:
            self.metadata["later_context_dropped"] = self.metadata.get("later_context_dropped", 0) + 1
        else:
            self.system_parts.append(text.strip())

    def _user(self, text: str, *, from_event: bool = False) -> None:
        self.seen_user = True
        self.pending_thinking = []  # reasoning of an answer that never came
        self.open_assistant = None
        self.messages.append(_EventText("user", text) if from_event else Message(role="user", content=text))

    def _new_assistant(self) -> _Assistant:
        assistant = _Assistant(Message(role="assistant", content=""))
        self.messages.append(assistant.message)
        self.assistants.append(assistant)
        self.open_assistant = assistant
        return assistant

    def _assistant_text(self, text: str) -> None:
        target = self.open_assistant
        if target is None or target.message.tool_calls:
            target = self._new_assistant()
        target.parts.extend(self.pending_thinking)
        self.pending_thinking = []
        target.parts.append(text)

    def _resolve_events(self) -> list[Message]:
        """Drop each event whose text a response item of the same role carries; the others become messages."""
        unmatched = {role: list(keys) for role, keys in self.item_keys.items()}
        messages: list[Message] = []
        for m in self.messages:
            if isinstance(m, _EventText):
                key = _key(m.text)
                twins = unmatched[m.role]
                # The event may lack what the item adds (image placeholders, attached context): near-equal is a twin.
                twin = next((i for i, k in enumerate(twins) if k == key or (k and key and (key in k or k in key))), None)
                if twin is not None:
                    del twins[twin]
                    continue
                m = Message(role=m.role, content=m.text)
            messages.append(m)
        return messages

    def conversation(self) -> Conversation | None:
        for assistant in self.assistants:
            assistant.message.content = "\n\n".join(p for p in assistant.parts if p.strip())
        kept = [m for m in self._resolve_events() if m.role != "assistant" or m.content or m.tool_calls]
        roles = {m.role for m in kept}
        if "user" not in roles or "assistant" not in roles:
            return None
        system: list[str] = []
        for part in self.system_parts:
            if part not in system and not any(part in other for other in self.system_parts if other != part):
                system.append(part)
        if system:
            kept.insert(0, Message(role="system", content="\n\n".join(system)))
        metadata = dict(self.metadata)
        if self.models:
            metadata.setdefault("model", self.models[0])
            if len(self.models) > 1:
                metadata["models"] = list(self.models)
        return Conversation(
            session_id=self.session_id or _id_from_name(self.path),
            messages=kept,
            source_file=str(self.path),
            source_line=self.first_line or 1,
            source_format=SOURCE_FORMAT,
            started_at=self.started_at,
            outcome=self.outcome,
            parent_session_id=self.parent_session_id,
            metadata=metadata,
        )


def iter_codex_cli(path: Path, include_thinking: bool = False) -> Iterator[Conversation | ImportProblem]:
    path = Path(path)
    session = _Session(path, include_thinking)
    data = None
    if path.suffix.lower() == ".zst":
        data = _decompress(path)
        if isinstance(data, str):
            yield ImportProblem(str(path), 0, data)
            return
    if path.suffix.lower() == ".json":
        doc, problem = read_json_document(path)
        if problem is None and isinstance(doc, dict) and isinstance(doc.get("session"), dict):
            yield from _iter_document(path, doc, session)
            return
        # otherwise JSON Lines under a .json name: read it line by line below
    yield from read_json_lines(path, session.take_line, data=data)  # only problems: take_line returns nothing
    conv = session.conversation()
    if conv is not None:
        yield conv


def _iter_document(path: Path, doc: dict[str, Any], session: _Session) -> Iterator[Conversation | ImportProblem]:
    session.take_meta(doc["session"], None)
    if isinstance(doc["session"].get("model"), str) and doc["session"]["model"]:
        session.models.append(doc["session"]["model"])
    items = doc.get("items")
    if not isinstance(items, list):
        yield ImportProblem(str(path), 0, "rollout document: 'items' must be a list")
        return
    session.first_line = 1
    for index, item in enumerate(items, start=1):
        try:
            if not isinstance(item, dict):
                raise RecordError(f"expected an object, got {json_type(item)}")
            session.take_item(item)
        except RecordError as exc:
            yield ImportProblem(str(path), 0, f"item {index}: {exc}")
    conv = session.conversation()
    if conv is not None:
        yield conv


# --- helpers -----------------------------------------------------------------------------------------------------


def _part_text(part: Any) -> str | None:
    if not isinstance(part, dict):
        return None
    if part.get("type") in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
        return part["text"]
    if part.get("type") == "input_image":
        return "[image]"
    return None


def _key(text: str) -> str:
    return " ".join(text.replace("[image]", " ").split())


def _is_context(text: str) -> bool:
    stripped = text.strip()
    return stripped.startswith(_CONTEXT_PREFIXES) or bool(_WRAPPED_BLOCK.match(stripped))


def _reasoning_text(item: dict[str, Any]) -> str:
    texts = [s["text"] for s in item.get("summary") or [] if isinstance(s, dict) and isinstance(s.get("text"), str)]
    if not texts and isinstance(item.get("content"), list):
        texts = [c["text"] for c in item["content"] if isinstance(c, dict) and isinstance(c.get("text"), str)]
    return "\n\n".join(t.strip() for t in texts if t.strip())


def _output(output: Any) -> tuple[str, int | None, bool]:
    """(the text the model saw, the exit code it reports if any, whether it says it failed)."""
    failed = False
    if isinstance(output, dict):  # {content, success}: the shape sent to the API on failure in some versions
        failed = output.get("success") is False
        output = output.get("content", "")
    if isinstance(output, list):
        parts = [_part_text(p) for p in output]
        text = "\n".join(p for p in parts if p is not None)
    elif isinstance(output, str):
        text = output
    elif output is None:
        text = ""
    else:
        text = json.dumps(output, ensure_ascii=False)
    exit_code = None
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            wrapped = json.loads(stripped)
        except (json.JSONDecodeError, RecursionError):
            wrapped = None
        if isinstance(wrapped, dict) and isinstance(wrapped.get("metadata"), dict):
            meta = wrapped["metadata"]
            code = meta.get("exit_code", meta.get("exitCode"))
            exit_code = code if isinstance(code, int) and not isinstance(code, bool) else None
    if exit_code is None:
        found = _EXIT_CODE.search(text[:500])
        exit_code = int(found.group(1)) if found else None
    return text, exit_code, failed


def _id_from_name(path: Path) -> str:
    stem = path.name.split(".", 1)[0]
    found = _UUID_TAIL.search(stem)
    return found.group(1) if found else stem


def sniff_file(path: Path) -> float:
    """Newer Codex may keep a rollout zstd-compressed, ``rollout-*.jsonl.zst``: judged by its name."""
    name = Path(path).name
    return 0.9 if name.startswith("rollout-") and name.endswith(".jsonl.zst") else 0.0


def _zstd_decompressor() -> Any:
    """A zstd stream reader factory, from Python 3.14's compression.zstd or the zstandard package; None without."""
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+

        return zstd.ZstdFile
    except ImportError:
        pass
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        return None
    return lambda fh: zstandard.ZstdDecompressor().stream_reader(fh)


def _decompress(path: Path) -> bytes | str:
    """The decompressed bytes of a ``.jsonl.zst`` rollout, or a message saying why they cannot be read."""
    opener = _zstd_decompressor()
    if opener is None:
        return "a zstd-compressed Codex rollout: reading it needs Python 3.14+ or the 'zstandard' package"
    try:
        with open_fenced(path) as raw, opener(raw) as stream:
            return stream.read()
    except Exception as exc:  # noqa: BLE001 - any decoder failure means the same thing to the user
        return f"cannot decompress this zstd rollout: {exc}"


FORMAT = MemoryFormat(
    SOURCE_FORMAT,
    iter_codex_cli,
    sniff_line=sniff_line,
    sniff_document=sniff_document,
    sniff_file=sniff_file,
    options=frozenset({"include_thinking"}),
    suffixes=(".zst",),
    title="Codex CLI rollouts",
    agent="Codex CLI",
    where="~/.codex/sessions/YYYY/MM/DD/rollout-<time>-<uuid>.jsonl (and ~/.codex/archived_sessions)",
    kept=(
        "system prompt and injected context as one system message, user and assistant turns, tool calls "
        "(function, custom and local shell calls) with their outputs, reasoning summaries on request, cwd, model, "
        "CLI version, git branch, timestamps"
    ),
    outcome_signals="tool outputs with a non-zero exit code, commands or patches the user rejected, interrupted turns",
    locations=("~/.codex/sessions", "~/.codex/archived_sessions"),
)
