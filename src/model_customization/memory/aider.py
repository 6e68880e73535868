"""Importer for Aider's chat history (``.aider.chat.history.md`` in each project's git root; another name with
``--chat-history-file``).

Aider appends to one Markdown file per project for as long as the project is used (aider/io.py):

* every launch writes ``# aider chat started at YYYY-MM-DD HH:MM:SS`` (local time, no zone): one session each;
* what the user typed is written as ``#### <text>``, one ``####`` line per line of a multi-line input, after a blank
  line (``#### <blank>`` for an empty input);
* the model's reply is plain Markdown after a blank line, SEARCH/REPLACE edit blocks included;
* everything Aider itself prints (announcements, token and cost reports, "Applied edit to x", commits, questions
  with their answers, errors) is a ``> `` quoted line, written with no blank line before it.

How it is read, line by line (these files grow to many megabytes): one conversation per header, the user turns from
``####`` lines, the assistant turns from the plain text, verbatim (edit blocks are the assistant's work). Aider's
output lines are not something the user said, so they are dropped, except in one place: when a reply follows
Aider's output with no user input in between, Aider had sent that output (a failed edit, lint errors) back to the
model as a "reflected" message, which is not written as ``####``; that block is kept as the user turn the reply
answers (without Aider's token, cost and commit lines). Slash commands are Aider commands, not prompts, and are
dropped: the prompt of ``/ask``, ``/code`` or ``/architect`` is written again as its own ``####`` line, which is
kept. A plain line written straight after an output line (no blank line) is the continuation of a multi-line output
and is dropped with it. A user turn that got no reply (the request failed or was interrupted before any text; the
next turn is usually its retry) is dropped, its error or interrupt still counted in the outcome.

Reasoning that Aider streams into the reply between ``<thinking-content-...>`` tags (or a model's own ``<think>``
tags) is dropped, and kept as ``<thinking>...</thinking>`` with ``include_thinking=True``.

Metadata: the model that answered (the last one announced, "Model:", "Main model:" or older "Models:", before the
first reply; all of them under "models" when ``/model`` switched it), the edit format, Aider's
version ("Aider v0.47.2"), the files edits were applied to, and the project folder (the file's folder, where Aider
keeps the default history). Outcome: a ``^C`` interrupt sets ``interrupted``; an edit that failed to apply ("did not
conform to the edit format", "SearchReplaceNoExactMatch") sets ``is_error``; ``/undo`` or declining a proposed shell
command, new file or edit sets ``user_rejected``.

Text before the first header (a file whose start was cut) is read as a session without a start time. A session
without a user and an assistant turn (a launch that only ran commands) is skipped silently.

``.aider.input.history`` (the prompt history of Aider's input line) is not a conversation: it is recognised as a side
file so a folder import does not report it, and yields nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from model_customization.paths import (
    iter_limited_lines,
    memory_limits,
    open_fenced,
    overlong_line_message,
)

from .formats import MemoryFormat
from .records import Conversation, ImportProblem, Message, Outcome

SOURCE_FORMAT = "aider"
DEFAULT_HISTORY_NAME = ".aider.chat.history.md"
INPUT_HISTORY_NAME = ".aider.input.history"

_HEADER = re.compile(r"^# aider chat started at (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)")
_HEADER_BYTES = b"# aider chat started at "
_MODEL = re.compile(r"^(?:Main model|Models?): (\S+) (?:with|using) (\S+) edit format")
_VERSION = re.compile(r"^Aider v(\S+)")
_APPLIED = re.compile(r"^Applied edit to (.+)$")
_INTERRUPT = ("^C KeyboardInterrupt", "^C again to exit")
_FAILED_EDIT = ("did not conform to the edit format", "SearchReplaceNoExactMatch", "Failed to apply edit")
# Aider's confirmation questions about what the model proposed, answered no ("<question> n" in the history).
_DECLINED = re.compile(r"^(?:Run shell commands?\?|Create new file\?|Allow creation of new file|Allow edits to ).*\s(?:n|no)$", re.IGNORECASE)
# Aider's own status lines, left out of a reflected message (the model was sent the error, not these).
_STATUS_PREFIXES = ("Tokens:", "Cost:", "Applied edit to", "Commit ", "Committing ", "You can use /undo", "https://aider.chat/docs/")
_THINKING = re.compile(r"<(thinking-content-[0-9a-f]+|think)>(.*?)</\1>\s*", re.DOTALL)
_PEEK_BYTES = 64 * 1024


@dataclass
class _Block:
    role: str  # "user", "tool" (Aider's own output) or "assistant"
    lines: list[str] = field(default_factory=list)


@dataclass
class _Session:
    line: int  # where it starts (the header, or line 1 for text before the first header)
    started: str | None
    blocks: list[_Block] = field(default_factory=list)


def iter_aider(path: Path, include_thinking: bool = False) -> Iterator[Conversation | ImportProblem]:
    path = Path(path)
    seen_ids: dict[str, int] = {}
    session: _Session | None = None
    last_role: str | None = None  # the kind of the last non-blank line
    blank_since = True
    max_line = memory_limits().max_line_bytes
    with open_fenced(path) as handle:
        for line_no, raw in iter_limited_lines(handle, max_line):
            if isinstance(raw, int):
                yield ImportProblem(str(path), line_no, overlong_line_message(raw, max_line))
                continue
            encoding = "utf-8-sig" if line_no == 1 else "utf-8"
            try:
                text = raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError as exc:
                # Aider writes in the --encoding it was given; keep the line's readable text (the line decides which
                # turn the next lines belong to) and say where it was damaged.
                yield ImportProblem(str(path), line_no, f"invalid UTF-8 at byte {exc.start} of the line; undecodable bytes replaced")
                text = raw.decode(encoding, errors="replace").rstrip("\r\n")
            header = _HEADER.match(text)
            if header:
                if session is not None:
                    yield from _finish(path, session, seen_ids, include_thinking)
                session = _Session(line_no, f"{header.group(1)}T{header.group(2)}")
                last_role, blank_since = None, True
                continue
            if session is None:
                if not text.strip():
                    continue
                session = _Session(line_no, None)
            if not text.strip():
                blank_since = True
                if last_role == "assistant":
                    session.blocks[-1].lines.append("")
                continue
            if text.startswith("####") and (len(text) == 4 or text[4] == " "):
                role, content = "user", text[5:].rstrip()
                joins = last_role == "user" and not blank_since  # one input's lines are written without a blank line
            elif text.startswith(">") and (len(text) == 1 or text[1] == " "):
                role, content = "tool", text[2:].rstrip()
                joins = last_role == "tool"
            elif last_role in ("tool", "user") and not blank_since:
                role, content, joins = last_role, text.rstrip(), True  # continuation of a multi-line output
            else:
                role, content = "assistant", text
                joins = last_role == "assistant"
            if joins and session.blocks:
                session.blocks[-1].lines.append(content)
            else:
                session.blocks.append(_Block(role, [content]))
            last_role, blank_since = role, False
    if session is not None:
        yield from _finish(path, session, seen_ids, include_thinking)


def _finish(path: Path, session: _Session, seen_ids: dict[str, int], include_thinking: bool) -> Iterator[Conversation]:
    outcome = Outcome()
    metadata: dict = {}
    announced: list[str] = []  # models announced so far; the last one answers the next reply
    answered_by: list[str] = []
    edited: list[str] = []
    messages: list[Message] = []
    blocks = session.blocks
    for k, block in enumerate(blocks):
        if block.role == "tool":
            for line in block.lines:
                _read_output_line(line.strip(), outcome, metadata, announced, edited)
            following = blocks[k + 1].role if k + 1 < len(blocks) else None
            if following == "assistant" and messages and messages[-1].role == "assistant":
                # A reflected message: Aider sent this output back to the model, which answers it next.
                note = "\n".join(line for line in block.lines if not _is_status_line(line.strip())).strip()
                if note:
                    messages.append(Message(role="user", content=note))
            continue
        if block.role == "user":
            content = _user_text(block.lines, outcome)
            if content:
                if messages and messages[-1].role == "user":
                    messages.pop()  # it got no reply (the request failed or was cut off); this is usually its retry
                messages.append(Message(role="user", content=content))
            continue
        content = _assistant_text("\n".join(block.lines), include_thinking)
        if content:
            messages.append(Message(role="assistant", content=content))
            if announced and announced[-1] not in answered_by:
                answered_by.append(announced[-1])
    while messages and messages[-1].role == "user":
        messages.pop()  # a last prompt that got no reply
    roles = {m.role for m in messages}
    if "user" not in roles or "assistant" not in roles:
        return
    if answered_by:
        metadata["model"] = answered_by[0]
        if len(answered_by) > 1:
            metadata["models"] = answered_by
    if edited:
        metadata["edited_files"] = edited
    if path.name == DEFAULT_HISTORY_NAME:
        metadata["cwd"] = str(path.parent)  # Aider keeps its default history in the project's root
    base = f"{path.parent.name}/{path.name}@{session.started or f'line{session.line}'}"
    seen_ids[base] = seen_ids.get(base, 0) + 1
    session_id = base if seen_ids[base] == 1 else f"{base}#{seen_ids[base]}"  # two launches in the same second
    yield Conversation(
        session_id=session_id,
        messages=messages,
        source_file=str(path),
        source_line=session.line,
        source_format=SOURCE_FORMAT,
        started_at=session.started,
        outcome=outcome,
        metadata=metadata,
    )


def _read_output_line(line: str, outcome: Outcome, metadata: dict, announced: list[str], edited: list[str]) -> None:
    model = _MODEL.match(line)
    if model:
        announced.append(model.group(1))
        metadata.setdefault("edit_format", model.group(2))
        return
    version = _VERSION.match(line)
    if version:
        metadata.setdefault("version", version.group(1))
        return
    applied = _APPLIED.match(line)
    if applied:
        if applied.group(1) not in edited:
            edited.append(applied.group(1))
        return
    if any(marker in line for marker in _INTERRUPT):
        outcome.interrupted = True
    elif any(marker in line for marker in _FAILED_EDIT):
        outcome.is_error = True
    elif _DECLINED.match(line):
        outcome.user_rejected = True


def _is_status_line(line: str) -> bool:
    return line.startswith(_STATUS_PREFIXES) or "did not conform to the edit format" in line


def _user_text(lines: list[str], outcome: Outcome) -> str:
    text = "\n".join(lines).strip()
    if not text or text == "<blank>":
        return ""
    if not text.startswith("/"):
        return text
    # A command. The prompt of /ask, /code, /architect is written again as its own input line, so none is kept.
    if text.split()[0] == "/undo":
        outcome.user_rejected = True
    return ""


def _assistant_text(text: str, include_thinking: bool) -> str:
    def thinking(match: re.Match) -> str:
        inner = match.group(2).strip()
        return f"<thinking>{inner}</thinking>\n\n" if include_thinking and inner else ""

    return _THINKING.sub(thinking, text).strip()


# ----------------------------------------------------------------------------------------------------- sniffing


def _first_lines(path: Path, count: int = 40) -> list[str]:
    with Path(path).open("rb") as handle:
        head = handle.read(_PEEK_BYTES)
    return [line for line in head.decode("utf-8", errors="replace").splitlines() if line.strip()][:count]


def sniff_file(path: Path) -> float:
    """1 for Aider's default history name or a file that opens with a session header; 0.9 when a header comes a
    few lines in (a file whose start was cut or that carries an editor mode line)."""
    path = Path(path)
    if path.name == DEFAULT_HISTORY_NAME:
        return 1.0
    lines = _first_lines(path)
    if lines and _HEADER.match(lines[0]):
        return 1.0
    if any(_HEADER.match(line) for line in lines):
        return 0.9
    return 0.0


_INPUT_STAMP = re.compile(r"^# \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?$")


def sniff_input_history(path: Path) -> float:
    """Aider's prompt history (prompt_toolkit's FileHistory: "# <timestamp>" then "+<line>" lines)."""
    path = Path(path)
    if path.name == INPUT_HISTORY_NAME:
        return 1.0
    lines = _first_lines(path, 4)
    if len(lines) >= 2 and _INPUT_STAMP.match(lines[0]) and lines[1].startswith("+"):
        return 0.8
    return 0.0


def count_sessions(path: Path) -> int:
    """Session headers in the file, counted while streaming it."""
    count = 0
    with Path(path).open("rb") as handle:
        for _, raw in iter_limited_lines(handle, memory_limits().max_line_bytes):
            if not isinstance(raw, int) and raw.startswith(_HEADER_BYTES):
                count += 1
    return count


def _iter_nothing(path: Path) -> Iterator[Conversation | ImportProblem]:
    return iter(())


_LOCATIONS = ()  # Aider keeps its history in each project's own folder, not in one place under the home folder

FORMAT = MemoryFormat(
    SOURCE_FORMAT,
    iter_aider,
    sniff_file=sniff_file,
    options=frozenset({"include_thinking"}),
    suffixes=(".md",),
    title="Aider chat history",
    agent="Aider",
    where="<project>/.aider.chat.history.md",
    kept="user turns, assistant replies with their SEARCH/REPLACE edits, failed-edit and lint output Aider sent back "
    "to the model; model, edit format and version; reasoning on request",
    outcome_signals="^C interrupts, edits that failed to apply, /undo and declined shell commands or edits",
    locations=_LOCATIONS,
    count_sessions=count_sessions,
    project_files=(".aider.chat.history.md",),
)
INPUT_HISTORY_FORMAT = MemoryFormat(
    "aider_input_history",
    _iter_nothing,
    sniff_file=sniff_input_history,
    suffixes=(".history",),
    side_file=True,
    title="Aider prompt history (not a conversation)",
    agent="Aider",
    where="<project>/.aider.input.history",
)
