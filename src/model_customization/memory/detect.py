"""Format detection and the single entry point that imports memory from files and directories."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from model_customization.paths import iter_files_within_roots, iter_limited_lines, memory_limits, oversized_file_message

from .chatgpt_export import FEEDBACK_FORMAT as CHATGPT_FEEDBACK
from .aider import FORMAT as AIDER
from .aider import INPUT_HISTORY_FORMAT as AIDER_INPUT_HISTORY
from .chatgpt_export import FORMAT as CHATGPT_EXPORT
from .chatgpt_export import SHARED_INDEX_FORMAT as CHATGPT_SHARED_INDEX
from .claude_code import iter_claude_code
from .formats import MemoryFormat
from .letta import FORMAT as LETTA
from .mcp_memory import FORMAT as MCP_MEMORY
from .openai_chat import iter_openai_chat
from .opencode import FORMAT as OPENCODE
from .opencode import SIDE_FORMAT as OPENCODE_PART
from .otel_genai import FORMAT as OTEL_GENAI
from .reading import read_text
from .records import ImportProblem, Record
from .sharegpt import FORMAT as SHAREGPT
from .trajectories import FORMATS as TRAJECTORY_FORMATS

# Line formats are tried in this order on each of a file's first lines; document formats in this order on the
# parsed document. More specific formats come first.
FORMATS: list[MemoryFormat] = [
    SHAREGPT,  # before openai_chat: KTO-labelled `messages` lines would otherwise lose their labels
    *TRAJECTORY_FORMATS,  # tau_bench, toolbench, swe_agent
    OTEL_GENAI,
    CHATGPT_EXPORT,
    MemoryFormat("openai_chat", iter_openai_chat, sniff_line=lambda obj: _format_of(obj) == "openai_chat"),
    MemoryFormat(
        "claude_code", iter_claude_code, sniff_line=lambda obj: _format_of(obj) == "claude_code", options=frozenset({"include_thinking"})
    ),
    MCP_MEMORY,
    LETTA,
    CHATGPT_FEEDBACK,  # export side files: recognised so a folder import does not report them, they yield nothing
    CHATGPT_SHARED_INDEX,
    AIDER,
    AIDER_INPUT_HISTORY,  # Aider's prompt history beside the chat history: recognised, yields nothing
    OPENCODE,
    OPENCODE_PART,  # OpenCode message and part files: read through their session file, yield nothing alone
]
_BY_NAME = {f.name: f for f in FORMATS}
SUPPORTED_FORMATS: tuple[str, ...] = tuple(_BY_NAME)
DOCUMENT_SUFFIXES = (".json", ".af", ".traj")
MEMORY_SUFFIXES = (".jsonl", *DOCUMENT_SUFFIXES)
MAX_DOCUMENT_BYTES = 512 * 1024 * 1024  # whole-document formats are parsed in memory

# Enough lines to step over a few broken ones at the top of a file, few enough to stay cheap on huge files.
_PEEK_LINES = 20
_CLAUDE_CODE_KEYS = ("sessionId", "uuid", "parentUuid", "leafUuid")
_CLAUDE_CODE_TYPES = {"user", "assistant", "summary", "system", "progress", "file-history-snapshot", "queue-operation"}


def detect_format(path: Path) -> str | None:
    """Name of the format of a file, judged by its parsed document (JSON files) or first readable lines (JSONL)."""
    path = Path(path)
    if path.suffix.lower() in DOCUMENT_SUFFIXES and path.stat().st_size <= MAX_DOCUMENT_BYTES:
        try:
            document = json.loads(read_text(path))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            document = None  # maybe JSON Lines under another name: judge it line by line below
        else:
            for fmt in FORMATS:
                if fmt.sniff_document is not None and _safe(fmt.sniff_document, document):
                    return fmt.name
    with path.open("rb") as fh:
        seen = 0
        for _, raw in iter_limited_lines(fh, memory_limits().max_line_bytes):
            if isinstance(raw, int):
                continue  # an over-long line: the importer reports it
            if not raw.strip():
                continue
            seen += 1
            if seen > _PEEK_LINES:
                break
            try:
                obj = json.loads(raw.decode("utf-8-sig"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                continue  # a broken line says nothing; the importer will report it
            for fmt in FORMATS:
                if fmt.sniff_line is not None and _safe(fmt.sniff_line, obj):
                    return fmt.name
    return None


def _safe(sniff: Callable[[Any], bool], value: Any) -> bool:
    try:
        return bool(sniff(value))
    except Exception:  # noqa: BLE001 - a sniffer that trips over odd input simply does not recognise it
        return False


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


def iter_memory(paths: Sequence[Path], **options: Any) -> Iterator[Record]:
    """Import every file (directories: every ``*.jsonl``, ``*.json``, ``*.af``, ``*.traj`` below them, sorted).

    Missing paths raise FileNotFoundError before anything is imported. Whole-file problems (empty file, unknown
    format) are reported with line 0. Options (such as include_thinking) reach the formats that accept them.
    """
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"memory path not found: {', '.join(missing)}")
    return _iter_files(paths, options)


def _iter_files(paths: list[Path], options: dict[str, Any]) -> Iterator[Record]:
    for path in paths:
        # Folders are walked without following links that point outside the allowed roots (paths.py); those are
        # reported instead.
        files = iter_files_within_roots(path, MEMORY_SUFFIXES) if path.is_dir() else [(path, None)]
        for file, refused in files:
            if refused:
                yield ImportProblem(str(file), 0, refused)
            else:
                yield from _iter_file(file, options)


def _iter_file(file: Path, options: dict[str, Any]) -> Iterator[Record]:
    size, limit = file.stat().st_size, memory_limits().max_file_bytes
    if size > limit:
        yield ImportProblem(str(file), 0, oversized_file_message(size, limit))
        return
    if _is_blank(file):
        yield ImportProblem(str(file), 0, "empty file")
        return
    fmt = detect_format(file)
    if fmt is None:
        broken = _document_error(file)
        if broken:
            yield ImportProblem(str(file), broken[0], broken[1])
            return
        tried = ", ".join(SUPPORTED_FORMATS)
        yield ImportProblem(str(file), 0, f"not a recognised memory format: tried {tried}")
        return
    chosen = _BY_NAME[fmt]
    yield from chosen.iterate(file, **{k: v for k, v in options.items() if k in chosen.options})


def _document_error(file: Path) -> tuple[int, str] | None:
    """Where a JSON document file stops being JSON, so a cut-off export is not mistaken for an unknown format."""
    if file.suffix.lower() not in DOCUMENT_SUFFIXES or file.stat().st_size > MAX_DOCUMENT_BYTES:
        return None
    try:
        text = read_text(file)
    except UnicodeDecodeError as error:
        return 0, f"not UTF-8 text (byte {error.start}): not a JSON document"
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        if "\n" in text.strip() and all(_parses(line) for line in text.splitlines()[:5] if line.strip()):
            return None  # JSON Lines under a document name: judged as lines already
        return error.lineno, f"invalid JSON document: {error.msg} (line {error.lineno}, column {error.colno})"
    except RecursionError:
        return 0, "invalid JSON document: nested too deeply to read"
    return None


def _parses(line: str) -> bool:
    try:
        json.loads(line)
        return True
    except (json.JSONDecodeError, RecursionError):
        return False


def _is_blank(file: Path) -> bool:
    with file.open("rb") as fh:
        while chunk := fh.read(1 << 16):
            if chunk.strip():
                return False
    return True
