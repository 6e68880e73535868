"""Format detection and the single entry point that imports memory from files and directories."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .claude_code import iter_claude_code
from .openai_chat import iter_openai_chat
from .records import Conversation, ImportProblem

_IMPORTERS: dict[str, Callable[[Path], Iterator[Conversation | ImportProblem]]] = {
    "openai_chat": iter_openai_chat,
    "claude_code": iter_claude_code,
}
SUPPORTED_FORMATS: tuple[str, ...] = tuple(_IMPORTERS)

# Enough lines to step over a few broken ones at the top of a file, few enough to stay cheap on huge files.
_PEEK_LINES = 20
_CLAUDE_CODE_KEYS = ("sessionId", "uuid", "parentUuid", "leafUuid")
_CLAUDE_CODE_TYPES = {"user", "assistant", "summary", "system", "progress", "file-history-snapshot", "queue-operation"}


def detect_format(path: Path) -> str | None:
    """Name of the format of a JSONL file, judged by its first readable lines; None when none fits."""
    with Path(path).open("rb") as fh:
        seen = 0
        for raw in fh:
            if not raw.strip():
                continue
            seen += 1
            if seen > _PEEK_LINES:
                break
            try:
                obj = json.loads(raw.decode("utf-8-sig"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue  # a broken line says nothing; the importer will report it
            fmt = _format_of(obj)
            if fmt is not None:
                return fmt
    return None


def _format_of(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("messages"), list) or ("input" in obj and "preferred_output" in obj):
        # Preference lines belong to the OpenAI family: its importer reports them as not supported yet.
        return "openai_chat"
    kind = obj.get("type")
    if isinstance(kind, str) and kind in _CLAUDE_CODE_TYPES and any(k in obj for k in _CLAUDE_CODE_KEYS):
        return "claude_code"
    if kind == "file-history-snapshot" and "snapshot" in obj:
        return "claude_code"  # 2.x transcripts may open with a snapshot line, which has none of the keys above
    return None


def iter_memory(paths: Sequence[Path]) -> Iterator[Conversation | ImportProblem]:
    """Import every file (directories: every ``*.jsonl`` below them, sorted) in a recognised format.

    Missing paths raise FileNotFoundError before anything is imported. Whole-file problems (empty file, unknown
    format) are reported with line 0.
    """
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"memory path not found: {', '.join(missing)}")
    return _iter_files(paths)


def _iter_files(paths: list[Path]) -> Iterator[Conversation | ImportProblem]:
    for path in paths:
        files = sorted(p for p in path.rglob("*.jsonl") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            yield from _iter_file(file)


def _iter_file(file: Path) -> Iterator[Conversation | ImportProblem]:
    if _is_blank(file):
        yield ImportProblem(str(file), 0, "empty file")
        return
    fmt = detect_format(file)
    if fmt is None:
        tried = ", ".join(SUPPORTED_FORMATS)
        yield ImportProblem(str(file), 0, f"not a recognised memory format: tried {tried}")
        return
    yield from _IMPORTERS[fmt](file)


def _is_blank(file: Path) -> bool:
    with file.open("rb") as fh:
        while chunk := fh.read(1 << 16):
            if chunk.strip():
                return False
    return True
