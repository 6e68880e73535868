"""The common record every importer yields: one agent session as an ordered list of messages.

Importers stream these; a line they cannot read becomes an ImportProblem (file and line) instead of an exception,
so one bad line never costs the rest of a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the OpenAI format carries it


@dataclass
class Message:
    role: Role
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None  # for role == "tool": which call this answers
    weight: int | None = None  # OpenAI per-message weight (0 = do not learn this assistant turn)


@dataclass
class Outcome:
    """Signals of how the session went, as far as the source records them."""

    is_error: bool = False  # a tool result flagged as an error
    user_rejected: bool = False  # the user refused a proposed tool call
    interrupted: bool = False  # the user interrupted the assistant
    reward: float | None = None
    rating: int | None = None  # +1 thumbs up, -1 thumbs down

    @property
    def successful(self) -> bool:
        return not (self.is_error or self.user_rejected or self.interrupted) and (self.reward is None or self.reward > 0)


@dataclass
class Conversation:
    session_id: str
    messages: list[Message]
    source_file: str
    source_line: int  # 1-based line where the session starts (first line for whole-file formats)
    source_format: str
    tools: list[dict] | None = None  # OpenAI-style tool definitions when the source has them
    started_at: str | None = None  # ISO 8601 timestamp when known
    outcome: Outcome = field(default_factory=Outcome)
    task_id: str | None = None  # the task this session attempted (tau-bench, ToolBench): groups attempts for DPO
    parent_session_id: str | None = None  # a subagent/sidechain's parent session
    metadata: dict[str, Any] = field(default_factory=dict)  # format-specific extras worth keeping (small)


@dataclass
class PreferencePair:
    """One prompt with a better and a worse answer (DPO), as a source states it or as ratings imply."""

    session_id: str
    prompt: list[Message]  # the conversation before the answer
    preferred: Message  # an assistant message
    non_preferred: Message  # an assistant message
    source_file: str
    source_line: int
    source_format: str
    tools: list[dict] | None = None


@dataclass
class ImportProblem:
    """A piece of input that could not be read; reported to the caller, never silently dropped."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class SkippedFile:
    """A file or folder a folder walk passed over on purpose (not memory), reported by name with the reason."""

    file: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"


Record = Conversation | PreferencePair | ImportProblem
