"""Format detection and the single entry point that imports memory from files and directories."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_customization.paths import FenceError, file_kind, iter_files_within_roots, iter_limited_lines, memory_limits, oversized_file_message
from model_customization.reading_limits import FileTooLarge, NotARegularFile

from .aider import FORMAT as AIDER
from .aider import INPUT_HISTORY_FORMAT as AIDER_INPUT_HISTORY
from .cass_memory import FORMATS as CASS_MEMORY_FORMATS
from .cass_memory import with_outcome_signals
from .chatgpt_export import FEEDBACK_FORMAT as CHATGPT_FEEDBACK
from .chatgpt_export import FORMAT as CHATGPT_EXPORT
from .chatgpt_export import SHARED_INDEX_FORMAT as CHATGPT_SHARED_INDEX
from .claude_code import iter_claude_code
from .cline import FORMATS as CLINE_FORMATS
from .codex_cli import FORMAT as CODEX_CLI
from .cursor import FORMAT as CURSOR
from .formats import JSON_DOCUMENT_SUFFIXES, JSON_LINE_SUFFIXES, MemoryFormat, score
from .gemini_cli import FORMAT as GEMINI_CLI
from .gemini_cli import SIDE_FORMAT as GEMINI_CLI_SIDE
from .letta import FORMAT as LETTA
from .mcp_memory import FORMAT as MCP_MEMORY
from .openai_chat import iter_openai_chat
from .opencode import FORMAT as OPENCODE
from .opencode import SIDE_FORMAT as OPENCODE_SIDE
from .openhands import FORMATS as OPENHANDS_FORMATS
from .otel_genai import FORMAT as OTEL_GENAI
from .reading import read_text
from .records import ImportProblem, Record, SkippedFile
from .sharegpt import FORMAT as SHAREGPT
from .trajectories import FORMATS as TRAJECTORY_FORMATS

# Every sniffer of every format is asked; the best score wins and, on equal scores, the earlier format in this list
# (so keep the more specific formats first).
FORMATS: list[MemoryFormat] = [
    SHAREGPT,  # before openai_chat: KTO-labelled `messages` lines would otherwise lose their labels
    *TRAJECTORY_FORMATS,  # tau_bench, toolbench, swe_agent
    OTEL_GENAI,
    CHATGPT_EXPORT,
    MemoryFormat(
        "openai_chat",
        iter_openai_chat,
        sniff_line=lambda obj: _openai_fit(obj),
        title="OpenAI chat fine-tuning JSONL",
        where="any .jsonl with one {messages: [...]} per line (OpenAI's fine-tuning format)",
        kept="system, user and assistant messages, tool calls with results, per-message weights; preference lines as pairs",
        outcome_signals="weight 0 marks an assistant turn not to learn",
    ),
    MemoryFormat(
        "claude_code",
        iter_claude_code,
        sniff_line=lambda obj: _format_of(obj) == "claude_code",
        options=frozenset({"include_thinking"}),
        title="Claude Code transcripts",
        agent="Claude Code",
        where="~/.claude/projects/<encoded project folder>/<session id>.jsonl",
        kept="user and assistant turns, tool calls with results, subagent sessions, thinking on request, cwd, model, timestamps",
        outcome_signals="tool errors, tool calls the user rejected, interruptions",
        locations=("~/.claude/projects", "~/.claude/transcripts"),
    ),
    CODEX_CLI,
    GEMINI_CLI,
    MCP_MEMORY,
    LETTA,
    *CLINE_FORMATS,  # cline, roo_code, kilo_code, and their task side files
    *OPENHANDS_FORMATS,  # openhands (V0 events), openhands_v1 (conversation folders)
    CHATGPT_FEEDBACK,  # export side files: recognised so a folder import does not report them, they yield nothing
    CHATGPT_SHARED_INDEX,
    AIDER,
    AIDER_INPUT_HISTORY,  # Aider's prompt history beside the chat history: recognised, yields nothing
    OPENCODE,
    OPENCODE_SIDE,  # OpenCode message, part and project files: read through their session file, yield nothing alone
    CURSOR,
    GEMINI_CLI_SIDE,  # logs.json and tool restore points beside Gemini CLI chats
    *CASS_MEMORY_FORMATS,  # outcome records (joined to the sessions they name by iter_memory), diary entries, logs
]
_BY_NAME = {f.name: f for f in FORMATS}
SUPPORTED_FORMATS: tuple[str, ...] = tuple(_BY_NAME)
DOCUMENT_SUFFIXES = JSON_DOCUMENT_SUFFIXES
MEMORY_SUFFIXES = (*JSON_LINE_SUFFIXES, *DOCUMENT_SUFFIXES, *dict.fromkeys(s for f in FORMATS for s in f.suffixes))
MAX_DOCUMENT_BYTES = 512 * 1024 * 1024  # whole-document formats are parsed in memory

# Enough lines to step over a few broken ones at the top of a file, few enough to stay cheap on huge files.
_PEEK_LINES = 20
_UNCONTESTED_LINES = 3  # lines after which a format that alone fits every one of them is taken without reading on
_CLAUDE_CODE_KEYS = ("sessionId", "uuid", "parentUuid", "leafUuid")
_CLAUDE_CODE_TYPES = {"user", "assistant", "summary", "system", "progress", "file-history-snapshot", "queue-operation"}
# Below this, a format was only guessed: when nothing can be read as it, the problem says so and names the runner-up.
_SURE = 0.5


@dataclass(frozen=True)
class Verdict:
    """What detection made of one file or folder: the best-fitting format and the runner-up, with their scores."""

    format: str | None
    score: float = 0.0
    runner_up: str | None = None
    runner_up_score: float = 0.0

    def guess_note(self) -> str:
        runner = f"runner-up {self.runner_up} (fit {self.runner_up_score:.2f})" if self.runner_up else "no other format fits"
        return f"detected as {self.format} (fit {self.score:.2f}; {runner})"


def detect_format(path: Path) -> str | None:
    """Name of the format of a file (or of a folder, for formats whose unit is a folder), or None."""
    return judge(path).format


def judge(path: Path) -> Verdict:
    """Ask every sniffer of every format about `path` and rank the formats by their best score.

    Files: formats judged by the path itself (sniff_file), by the parsed document (JSON files up to
    MAX_DOCUMENT_BYTES) and by the first readable lines (a format's line score is its mean over the lines that
    parse). Folders: sniff_folder."""
    path = Path(path)
    formats = FORMATS
    scores = [0.0] * len(formats)
    if path.is_dir():
        for i, fmt in enumerate(formats):
            scores[i] = score(fmt.sniff_folder, path)
        return _rank(formats, scores)
    suffix = path.suffix.lower()
    # Path sniffers open the file: ask those whose suffix it has first, the others only if nothing else fits (an Aider
    # history saved under another name), so a folder of JSONL transcripts is not opened twice per format.
    by_suffix = [not fmt.suffixes or suffix in fmt.suffixes for fmt in formats]
    for i, fmt in enumerate(formats):
        if by_suffix[i]:
            scores[i] = score(fmt.sniff_file, path)
    if path.suffix.lower() in DOCUMENT_SUFFIXES and path.stat().st_size <= MAX_DOCUMENT_BYTES:
        try:
            document = json.loads(read_text(path))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            pass  # maybe JSON Lines under another name: judged line by line below
        else:
            for i, fmt in enumerate(formats):
                scores[i] = max(scores[i], score(fmt.sniff_document, document))
    if max(scores) < 1.0 and not _is_binary(path):
        line_totals = [0.0] * len(formats)
        lines = 0
        for obj in _peek_lines(path):
            lines += 1
            for i, fmt in enumerate(formats):
                line_totals[i] += score(fmt.sniff_line, obj)
            if lines >= _UNCONTESTED_LINES and _uncontested(line_totals, lines):
                break  # one format fits every line so far and no other fits any: more lines would not change that
        if lines:
            scores = [max(s, total / lines) for s, total in zip(scores, line_totals, strict=True)]
    if max(scores) == 0:
        for i, fmt in enumerate(formats):
            if not by_suffix[i]:
                scores[i] = score(fmt.sniff_file, path)
    return _rank(formats, scores)


def _uncontested(totals: list[float], lines: int) -> bool:
    fitting = [t for t in totals if t > 0]
    return len(fitting) == 1 and fitting[0] >= lines


def _rank(formats: list[MemoryFormat], scores: list[float]) -> Verdict:
    ranked = sorted((i for i, s in enumerate(scores) if s > 0), key=lambda i: (-scores[i], i))
    order = [i for n, i in enumerate(ranked) if all(formats[j].name != formats[i].name for j in ranked[:n])]
    if not order:
        return Verdict(None)
    best = order[0]
    if len(order) == 1:
        return Verdict(formats[best].name, scores[best])
    second = order[1]
    return Verdict(formats[best].name, scores[best], formats[second].name, scores[second])


def _peek_lines(path: Path) -> Iterator[Any]:
    """The parsed objects of a file's first readable lines (broken lines say nothing; the importer reports them)."""
    with path.open("rb") as fh:
        seen = 0
        for _, raw in iter_limited_lines(fh, memory_limits().max_line_bytes):
            if isinstance(raw, int) or not raw.strip():
                continue  # an over-long line: the importer reports it
            seen += 1
            if seen > _PEEK_LINES:
                return
            try:
                yield json.loads(raw.decode("utf-8-sig"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                continue


def _is_binary(path: Path) -> bool:
    """A NUL byte in the first line: a database or an image, never JSON Lines; not worth reading line by line."""
    with path.open("rb") as fh:
        return b"\0" in fh.read(4096).split(b"\n", 1)[0]


def _openai_fit(obj: Any) -> float:
    """OpenAI chat JSONL: a `messages` list whose entries all carry a role (an unknown role is still this format,
    reported by the importer); a `messages` list without roles is only a loose guess, which any format that knows
    its own keys outranks (a Gemini CLI session saved on one line has `messages` with `type`, not `role`)."""
    if _format_of(obj) != "openai_chat":
        return 0.0
    messages = obj.get("messages")
    if not isinstance(messages, list):
        return 1.0  # a preference line (input + preferred_output)
    if messages and all(isinstance(m, dict) and "role" in m for m in messages):
        return 1.0
    return 0.3


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


def iter_memory(paths: Sequence[Path], *, skipped: list[SkippedFile] | None = None, **options: Any) -> Iterator[Record]:
    """Import every file and folder given (folders: every file below them that a memory format may read, sorted;
    a folder a folder format claims is imported whole).

    Missing paths raise FileNotFoundError before anything is imported. Whole-file problems (empty file, unknown
    format) are reported with line 0. Files a folder walk passes over (a suffix no format reads, a Markdown file no
    format recognises, a .git folder) are appended to `skipped`, when a list is given, with the reason. Options
    (such as include_thinking) reach the formats that accept them.
    """
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"memory path not found: {', '.join(missing)}")
    return with_outcome_signals(paths, _iter_files(paths, options, skipped))  # cass-memory verdicts on the sessions they name


@dataclass(frozen=True)
class ReadUnit:
    """One piece of an import that can be read on its own, in any process: a file given ("file"), a file met on a
    folder walk ("walked"), or a folder a folder format reads whole ("folder", with its verdict)."""

    path: Path
    kind: str
    verdict: Verdict | None = None


@dataclass(frozen=True)
class PassedOver:
    """Files a folder walk passed over, reported when the walk of that folder ends (as iter_memory reports them)."""

    files: tuple[SkippedFile, ...]


def plan_memory(paths: Sequence[Path], passed_folders: dict[Path, str] | None = None) -> Iterator[ReadUnit | ImportProblem | PassedOver]:
    """The import of `paths` as iter_memory makes it, cut into units read by read_unit, in the same order (a
    dataset build hands the units to worker processes). Outcome signals (cass-memory) are not applied here.
    passed_folders: real folders a walk does not enter, with the reason (see paths.iter_files_within_roots)."""
    for path in paths:
        path = Path(path)
        if not path.is_dir():
            if not path.is_file():  # a FIFO would block the reader forever and a device never ends: never opened
                yield ImportProblem(str(path), 0, f"not a regular file ({file_kind(path)}): only regular files are read")
                continue
            yield ReadUnit(path, "file")
            continue
        verdict = judge(path)
        if verdict.format is not None:
            yield ReadUnit(path, "folder", verdict)
            continue
        # Folders are walked without following links that point outside the allowed roots (paths.py); those are
        # reported instead.
        passed_over: list[tuple[Path, str]] = []
        claim = _claims_folder if any(f.sniff_folder is not None for f in FORMATS) else None
        for file, refused in iter_files_within_roots(path, _memory_suffixes(), claim_folder=claim, skipped=passed_over, passed_folders=passed_folders):
            if refused:
                yield ImportProblem(str(file), 0, refused)
            elif file.is_dir():
                yield ReadUnit(file, "folder", judge(file))
            else:
                yield ReadUnit(file, "walked")
        if passed_over:
            yield PassedOver(tuple(SkippedFile(str(p), reason) for p, reason in passed_over))


def read_unit(unit: ReadUnit, options: dict[str, Any], skipped: list[SkippedFile] | None) -> Iterator[Record]:
    """The records of one unit of plan_memory (files it passes over appended to `skipped`)."""
    if unit.kind == "folder":
        yield from _iterate(unit.path, unit.verdict or judge(unit.path), options)
    elif unit.kind == "file":
        yield from _iter_file(unit.path, options, judge(unit.path), walked=False, skipped=skipped)
    else:
        yield from _iter_file(unit.path, options, None, walked=True, skipped=skipped)


def _iter_files(paths: list[Path], options: dict[str, Any], skipped: list[SkippedFile] | None) -> Iterator[Record]:
    for item in plan_memory(paths):
        if isinstance(item, ReadUnit):
            yield from read_unit(item, options, skipped)
        elif isinstance(item, PassedOver):
            if skipped is not None:
                skipped.extend(item.files)
        else:
            yield item


def _claims_folder(folder: Path) -> bool:
    return any(score(f.sniff_folder, folder) > 0 for f in FORMATS)


def _is_database(file: Path) -> bool:
    """Whether a database format (read row by row, never whole) claims the file by its path and header alone."""
    return any(f.database and score(f.sniff_file, file) > 0 for f in FORMATS)


def _memory_suffixes() -> tuple[str, ...]:
    return (*JSON_LINE_SUFFIXES, *DOCUMENT_SUFFIXES, *dict.fromkeys(s for f in FORMATS for s in f.suffixes))


def _iter_file(file: Path, options: dict[str, Any], verdict: Verdict | None, *, walked: bool, skipped: list[SkippedFile] | None) -> Iterator[Record]:
    try:
        yield from _read_file(file, options, verdict, walked=walked, skipped=skipped)
    except FenceError as refused:  # the file opened was not the one checked (a link swapped in): nothing of it is read
        yield ImportProblem(str(file), 0, str(refused))


def _read_file(file: Path, options: dict[str, Any], verdict: Verdict | None, *, walked: bool, skipped: list[SkippedFile] | None) -> Iterator[Record]:
    size, limit = file.stat().st_size, memory_limits().max_file_bytes
    if size > limit and not _is_database(file):
        yield ImportProblem(str(file), 0, oversized_file_message(size, limit))
        return
    if _is_blank(file):
        yield ImportProblem(str(file), 0, "empty file")
        return
    verdict = verdict or judge(file)
    if verdict.format is None:
        if walked and file.suffix.lower() not in (*JSON_LINE_SUFFIXES, *DOCUMENT_SUFFIXES):
            # A README.md or an unrelated database met on a walk is not memory that failed to read: say it was passed over.
            if skipped is not None:
                skipped.append(SkippedFile(str(file), f"no memory format recognises this {file.suffix.lower()} file"))
            return
        broken = _document_error(file)
        if broken:
            yield ImportProblem(str(file), broken[0], broken[1])
            return
        tried = ", ".join(f.name for f in FORMATS)
        yield ImportProblem(str(file), 0, f"not a recognised memory format: tried {tried}")
        return
    yield from _iterate(file, verdict, options)


def _iterate(path: Path, verdict: Verdict, options: dict[str, Any]) -> Iterator[Record]:
    """The chosen format's records; when it was only a guess and nothing could be read, say what was guessed."""
    chosen = _BY_NAME.get(verdict.format or "") or next(f for f in FORMATS if f.name == verdict.format)
    records = chosen.iterate(path, **{k: v for k, v in options.items() if k in chosen.options})
    read_something = False
    problems = 0
    try:
        for record in records:
            if isinstance(record, ImportProblem):
                problems += 1
            else:
                read_something = True
            yield record
    except (NotARegularFile, FileTooLarge, FenceError) as refused:  # changed since it was judged (a FIFO or a link out swapped in): reported, never read
        yield ImportProblem(str(path), 0, str(refused))
        return
    if problems and not read_something and (verdict.score < _SURE or verdict.runner_up_score >= _SURE):
        yield ImportProblem(
            str(path), 0, f"nothing could be read: {verdict.guess_note()}; if the file is another format, import it with that format's tool or convert it"
        )


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
