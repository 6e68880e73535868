"""Which conversations go into a dataset: outcome, length, date, tool use and source filters.

`ConversationFilter(...).reason(conv)` returns the first reason a conversation is left out, as a short key for the
dataset card, or None to keep it. Checks run in this order: outcome, too_few_turns, too_many_turns, before_since,
after_until, has_tool_calls / no_tool_calls, source.

Definitions:
- A *turn* is a user request answered by the assistant: a user message (or a run of consecutive user messages) that
  is followed by at least one assistant message before the next user message. Tool calls, tool results and further
  assistant messages before the next user message belong to the same turn; system messages are ignored; a trailing
  user message with no answer is not a turn.
- Outcome: "successful" keeps `conv.outcome.successful` (a verdict on the whole session when one was given, as
  cass-memory's outcome records give; otherwise no error, rejection or interruption, and no non-positive reward);
  "failed" keeps the rest; "any" keeps all.
- Dates: `since` and `until` are both inclusive. A naive datetime (on either side) is taken as UTC. A conversation
  without `started_at`, or with one that does not parse as ISO 8601, is kept by the date filters (it cannot be
  placed, and dropping it silently would lose data the user did not ask to drop).
- Sources: shell-style glob patterns (fnmatch, case-sensitive) matched against the source file path, its file name,
  and the source format name ("claude_code", "openai_chat", ...); a conversation is kept when any pattern matches any.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from pathlib import PurePath
from typing import Literal

from model_customization.memory.records import Conversation

REASONS = (
    "outcome",
    "too_few_turns",
    "too_many_turns",
    "before_since",
    "after_until",
    "has_tool_calls",
    "no_tool_calls",
    "source",
)


def count_turns(conv: Conversation) -> int:
    """Number of user requests answered by the assistant (see the module docstring)."""
    turns = 0
    waiting = False
    for message in conv.messages:
        if message.role == "user":
            waiting = True
        elif message.role == "assistant" and waiting:
            turns += 1
            waiting = False
    return turns


def has_tool_calls(conv: Conversation) -> bool:
    return any(m.tool_calls for m in conv.messages)


def parse_timestamp(value: str | None) -> datetime | None:
    """An aware datetime (UTC when the text has no offset), or None when missing or unparseable."""
    if not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return _aware(parsed)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


@dataclass
class ConversationFilter:
    outcome: Literal["successful", "any", "failed"] = "any"
    min_turns: int | None = None
    max_turns: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    tool_calls: Literal["any", "with", "without"] = "any"
    sources: list[str] | None = None

    def __post_init__(self) -> None:
        if self.outcome not in ("successful", "any", "failed"):
            raise ValueError(f"outcome must be 'successful', 'any' or 'failed', not {self.outcome!r}")
        if self.tool_calls not in ("any", "with", "without"):
            raise ValueError(f"tool_calls must be 'any', 'with' or 'without', not {self.tool_calls!r}")
        for name in ("min_turns", "max_turns"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be 0 or more, not {value}")
        if self.min_turns is not None and self.max_turns is not None and self.min_turns > self.max_turns:
            raise ValueError(f"min_turns ({self.min_turns}) is greater than max_turns ({self.max_turns})")
        if self.since is not None and self.until is not None and _aware(self.since) > _aware(self.until):
            raise ValueError(f"since ({self.since.isoformat()}) is after until ({self.until.isoformat()})")

    def reason(self, conv: Conversation) -> str | None:
        """Why `conv` is left out (a key of REASONS), or None to keep it."""
        if self.outcome != "any" and conv.outcome.successful != (self.outcome == "successful"):
            return "outcome"
        if self.min_turns is not None or self.max_turns is not None:
            turns = count_turns(conv)
            if self.min_turns is not None and turns < self.min_turns:
                return "too_few_turns"
            if self.max_turns is not None and turns > self.max_turns:
                return "too_many_turns"
        if self.since is not None or self.until is not None:
            started = parse_timestamp(conv.started_at)
            if started is not None:
                if self.since is not None and started < _aware(self.since):
                    return "before_since"
                if self.until is not None and started > _aware(self.until):
                    return "after_until"
        if self.tool_calls != "any":
            uses_tools = has_tool_calls(conv)
            if self.tool_calls == "without" and uses_tools:
                return "has_tool_calls"
            if self.tool_calls == "with" and not uses_tools:
                return "no_tool_calls"
        if self.sources is not None:
            names = (conv.source_file, PurePath(conv.source_file).name, conv.source_format)
            if not any(fnmatchcase(name, pattern) for pattern in self.sources for name in names):
                return "source"
        return None

    def keep(self, conv: Conversation) -> bool:
        return self.reason(conv) is None


__all__ = ["REASONS", "ConversationFilter", "count_turns", "has_tool_calls", "parse_timestamp"]
