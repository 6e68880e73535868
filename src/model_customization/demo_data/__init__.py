"""Demo memory shipped with the package: an ops agent that triages application log lines.

See README.md in this folder and ``generate.py`` for the behaviour and how the files are made.
"""

from __future__ import annotations

import re
from pathlib import Path

DEMO_DATA_DIR = Path(__file__).parent

_LEVELS = {
    "ERROR": ("high", "page"),
    "FATAL": ("high", "page"),
    "WARN": ("medium", "ticket"),
    "INFO": ("low", "ignore"),
    "DEBUG": ("low", "ignore"),
}

# One log line: timestamp, [component], level, message.
LOG_LINE_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{3})?Z \[(?P<component>[^\]\s]+)\] "
    r"(?P<level>ERROR|FATAL|WARN|INFO|DEBUG) [^\n]*"
)
_COMPONENT_LEVEL_RE = re.compile(r"\[(?P<component>[^\]\s]+)\]\s+(?P<level>ERROR|FATAL|WARN|INFO|DEBUG)\b")


def demo_memory_paths() -> list[Path]:
    """The demo memory folders: Claude Code transcripts and OpenAI chat-format sessions."""
    return [DEMO_DATA_DIR / "claude_code", DEMO_DATA_DIR / "openai"]


def extract_log_line(text: str) -> str:
    """The first log line found in text (a user message or a tool result); ValueError if there is none."""
    match = LOG_LINE_RE.search(text)
    if match is None:
        raise ValueError(f"no log line in {text!r}")
    return match.group(0)


def triage_answer(log_line: str) -> str:
    """The expected answer for a log line.

    ERROR/FATAL -> severity=high action=page; WARN -> severity=medium action=ticket;
    INFO/DEBUG -> severity=low action=ignore. The component is the bracketed name, copied verbatim.
    """
    match = _COMPONENT_LEVEL_RE.search(log_line)
    if match is None:
        raise ValueError(f"not a log line with [component] LEVEL: {log_line!r}")
    severity, action = _LEVELS[match.group("level")]
    return f"TRIAGE severity={severity} component={match.group('component')} action={action}"


__all__ = ["DEMO_DATA_DIR", "LOG_LINE_RE", "demo_memory_paths", "extract_log_line", "triage_answer"]
