"""cass-memory's session outcomes as outcome signals on the conversations they name.

cass-memory (the `cm` tool, Dicklesworthstone/cass_memory_system) keeps a procedural memory beside the agents' own
transcripts, in its global folder (``$CASS_MEMORY_HOME``, else ``$XDG_DATA_HOME/cass-memory``, else
``~/.cass-memory``) and per repository in ``<repo>/.cass/``. What its source writes there, and what we make of it:

- ``outcomes.jsonl``: one JSON object a line, appended by ``cm outcome``, the MCP tool ``cm_outcome`` and the
  automatic grading of ``cm reflect``: ``sessionId`` (the transcript's path for the automatic grading and usually
  for ``--session``; any text the caller gave otherwise, ``"cli-manual"`` when none), ``outcome`` (success, failure,
  mixed or partial), ``rulesUsed``, and optionally ``notes``, ``task``, ``durationSec``, ``errorCount``,
  ``hadRetries``, ``sentiment``, ``autoGraded``; then ``recordedAt`` (ISO 8601) and ``path`` (the log itself).
  cass-memory's README draws ``outcomes/YYYY-MM/outcome-<timestamp>.json`` instead; its code has always written
  the JSONL log, but one such record per file is read the same way.
  These are **outcome signals**: each record's verdict is set on the conversations of the session it names
  (``Outcome.verdict``: true for success, false for failure, mixed and partial, since a session its user called
  mixed is not one to imitate), with the record in ``metadata["cass_outcome"]``. A session is named by its
  transcript's path (matched against the conversation's source file, as written or with links followed), by a
  session id (matched against the conversation's session id, and a subagent's parent session id), or, for a path
  from another machine or a moved home, by its last two path parts (``<project folder>/<session file>``). When
  several records name one session, the one recorded last wins.
- ``diary/<id>.json``: one summary per reflected session (``sessionPath``, ``status``, accomplishments,
  learnings). Not conversations, and their ``status`` is cass-memory's own guess from the transcript (a keyword
  heuristic that defaults to success, or a model's summary), not a verdict anyone gave: recognised and not used.
- ``playbook.yaml``: rules with helpful and harmful counts and feedback events. Those judge a rule in a session,
  not the session: not used (and not a file a folder walk offers).
- ``reflections/*.processed.log`` (``processed-sessions.jsonl`` in the README): which sessions were reflected on;
  ``context-log.jsonl`` and ``usage.jsonl``: which rules were shown, and usage events. Recognised and not used.

``config.json`` there may hold an API key: only the outcome log and outcome files are default allowed roots, never
the folder (see DEFAULT_AGENT_MEMORY_DIRS in paths.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from model_customization.paths import allowed_roots, iter_files_within_roots

from .formats import MemoryFormat
from .reading import RecordError, iter_lines, read_json_document, read_json_lines
from .records import Conversation, ImportProblem, Record

OUTCOME_STATUSES = ("success", "failure", "mixed", "partial")
DIARY_STATUSES = ("success", "failure", "mixed")
OUTCOME_LOG_NAME = "outcomes.jsonl"
OUTCOME_FOLDER_NAME = "outcomes"  # the README's outcomes/YYYY-MM/outcome-<timestamp>.json
GLOBAL_FOLDER_NAME = ".cass-memory"
REPO_FOLDER_NAME = ".cass"
HOME_ENV = "CASS_MEMORY_HOME"  # cass-memory's own override of its global folder
_NO_SESSION = {"", "cli-manual", "cli-transient"}  # what `cm outcome` records when no session was given
_USAGE_EVENTS = {"bullet_marked", "command_run", "session_count", "reflection_stats", "playbook_change", "error_occurred"}


# --- recognising the files ------------------------------------------------------------------------------------------
def sniff_outcome_record(obj: Any) -> float:
    """An outcome record: a session and one of cass-memory's four verdicts; recordedAt and rulesUsed are written by
    every version, so with them the record is certainly cass-memory's."""
    if not isinstance(obj, dict) or not isinstance(obj.get("sessionId"), str):
        return 0.0
    if not isinstance(obj.get("outcome"), str) or obj["outcome"].lower() not in OUTCOME_STATUSES:
        return 0.0
    return 0.97 if isinstance(obj.get("recordedAt"), str) and "rulesUsed" in obj else 0.6


def sniff_diary_entry(obj: Any) -> float:
    if not isinstance(obj, dict) or obj.get("status") not in DIARY_STATUSES:
        return 0.0
    if all(isinstance(obj.get(key), str) for key in ("id", "sessionPath", "timestamp", "agent")):
        return 0.95 if "accomplishments" in obj or "keyLearnings" in obj else 0.7
    return 0.0


def sniff_log_line(obj: Any) -> float:
    """A line of the processed-sessions log, the context log or the usage log."""
    if not isinstance(obj, dict):
        return 0.0
    if isinstance(obj.get("sessionPath"), str) and isinstance(obj.get("processedAt"), str):
        return 0.9
    if isinstance(obj.get("ruleIds"), list) and isinstance(obj.get("antiPatternIds"), list) and "timestamp" in obj:
        return 0.9
    if obj.get("event") in _USAGE_EVENTS and isinstance(obj.get("data"), dict) and "timestamp" in obj:
        return 0.6  # event names other tools could use too
    return 0.0


def count_outcome_records(path: Path) -> int:
    """Records in an outcome log (its non-blank lines, counted without parsing), or in an outcomes folder."""
    path = Path(path)
    if path.is_dir():
        return sum(1 for _ in path.rglob("outcome-*.json"))
    if path.suffix.lower() == ".json":
        return 1  # one record per file (the README's layout)
    return sum(1 for item in iter_lines(path) if not isinstance(item, ImportProblem))


def _iter_nothing(path: Path, **_: Any) -> Iterator[Record]:
    # Outcome records are read where they apply (with_outcome_signals): as files of a walk they yield nothing.
    return iter(())


FORMAT = MemoryFormat(
    "cass_memory_outcomes",
    _iter_nothing,
    sniff_line=sniff_outcome_record,
    sniff_document=sniff_outcome_record,
    side_file=True,
    title="cass-memory session outcomes",
    agent="cass-memory",
    where="~/.cass-memory/outcomes.jsonl ($CASS_MEMORY_HOME; <repo>/.cass/outcomes.jsonl)",
    kept="no conversations: each record's verdict is set on the Claude Code, Codex, Gemini... sessions it names",
    outcome_signals="success, failure, mixed or partial per session (Outcome.verdict), errors, retries, sentiment",
    locations=("~/.cass-memory/outcomes.jsonl", "~/.cass-memory/outcomes"),
    count_sessions=count_outcome_records,
)
DIARY_FORMAT = MemoryFormat(
    "cass_memory_diary",
    _iter_nothing,
    sniff_document=sniff_diary_entry,
    side_file=True,
    title="cass-memory diary entries (session summaries; recognised, not imported)",
    where="~/.cass-memory/diary/<id>.json",
)
LOG_FORMAT = MemoryFormat(
    "cass_memory_logs",
    _iter_nothing,
    sniff_line=sniff_log_line,
    side_file=True,
    title="cass-memory processed-session, context and usage logs (recognised, not imported)",
    where="~/.cass-memory/{reflections/*.processed.log,context-log.jsonl,usage.jsonl}",
)
FORMATS = (FORMAT, DIARY_FORMAT, LOG_FORMAT)


# --- the records ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SessionOutcome:
    """One outcome record, as cass-memory wrote it."""

    session: str  # the sessionId as written: a transcript path or a session id
    status: str  # success | failure | mixed | partial
    recorded_at: str | None
    source: str  # file:line of the record
    order: int  # reading order: the tie-breaker between records with the same recorded_at
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> bool:
        return self.status == "success"

    def sort_key(self) -> tuple[datetime, int]:
        return (_moment(self.recorded_at), self.order)

    def as_metadata(self, matched_by: str) -> dict[str, Any]:
        return {"status": self.status, "session": self.session, "recorded_at": self.recorded_at, "record": self.source, "matched_by": matched_by, **self.details}


def _moment(text: str | None) -> datetime:
    if text:
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime.min.replace(tzinfo=UTC)


_DETAIL_KEYS = {  # cass-memory's name -> ours, with the JSON type each must have to be kept
    "task": ("task", str),
    "durationSec": ("duration_sec", (int, float)),
    "errorCount": ("error_count", int),
    "hadRetries": ("had_retries", bool),
    "sentiment": ("sentiment", str),
    "autoGraded": ("auto_graded", bool),
}
MAX_TASK_CHARS = 300


def _outcome_of(obj: dict[str, Any], source: str, order: int) -> SessionOutcome | None:
    session, status = obj.get("sessionId"), obj.get("outcome")
    if not isinstance(session, str):
        raise RecordError("an outcome record needs sessionId as a string")
    if not isinstance(status, str) or status.lower() not in OUTCOME_STATUSES:
        raise RecordError(f"outcome {status!r} is not one of {', '.join(OUTCOME_STATUSES)}")
    if session.strip() in _NO_SESSION:
        return None  # recorded without a session: it names nothing we could join
    details: dict[str, Any] = {}
    for theirs, (ours, kind) in _DETAIL_KEYS.items():
        value = obj.get(theirs)
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            details[ours] = value[:MAX_TASK_CHARS] if isinstance(value, str) else value
    rules = obj.get("rulesUsed")
    if isinstance(rules, list):
        details["rules_used"] = [rule for rule in rules if isinstance(rule, str)]
    recorded_at = obj.get("recordedAt") if isinstance(obj.get("recordedAt"), str) else None
    return SessionOutcome(session.strip(), status.lower(), recorded_at, source, order, details)


def read_outcome_file(path: Path, start: int = 0) -> Iterator[SessionOutcome | ImportProblem]:
    """The records of an outcome log (JSONL) or of one outcome file (a JSON document); a problem for each bad one."""
    path = Path(path)
    if path.name == OUTCOME_LOG_NAME or path.suffix.lower() == ".jsonl":
        yield from read_json_lines(path, lambda obj, line_no: _outcome_of(obj, f"{path}:{line_no}", start + line_no), prefix=lambda _: "cass-memory outcome: ")
        return
    document, problem = read_json_document(path)
    if problem is not None:
        yield problem
        return
    if not isinstance(document, dict):
        yield ImportProblem(str(path), 0, "cass-memory outcome: expected a JSON object")
        return
    try:
        record = _outcome_of(document, f"{path}:1", start)
    except RecordError as error:
        yield ImportProblem(str(path), 0, f"cass-memory outcome: {error}")
        return
    if record is not None:
        yield record


# --- where the records are ------------------------------------------------------------------------------------------
def default_global_folder() -> Path:
    """cass-memory's global folder, chosen as cass-memory chooses it."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    if os.environ.get("XDG_DATA_HOME"):
        return Path(os.environ["XDG_DATA_HOME"]).expanduser() / "cass-memory"
    return Path.home() / GLOBAL_FOLDER_NAME


def _is_outcome_file(path: Path) -> bool:
    if path.name == OUTCOME_LOG_NAME:
        return True
    return path.suffix.lower() == ".json" and path.name.startswith("outcome-") and OUTCOME_FOLDER_NAME in path.parent.parts[-2:]


def _looks_like_outcomes(path: Path) -> bool:
    """The first readable record of the file is an outcome record (an `outcomes.jsonl` of another tool is not)."""
    if path.suffix.lower() == ".json":
        document, problem = read_json_document(path)
        return problem is None and sniff_outcome_record(document) > 0
    for item in iter_lines(path):
        if isinstance(item, ImportProblem):
            continue
        try:
            obj = json.loads(item[1].decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            continue
        return sniff_outcome_record(obj) > 0
    return False


def _files_in_folder(folder: Path) -> list[Path]:
    return [file for file, refused in iter_files_within_roots(folder, (".jsonl", ".json")) if not refused and _is_outcome_file(file)]


def outcome_files(paths: Sequence[Path]) -> list[Path]:
    """The cass-memory outcome files to apply to an import of `paths`: those among or below the given paths, and
    those of cass-memory's global folder when that lies inside the allowed roots (never reported when it does not:
    a user who never allowed it has not asked for it)."""
    found: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found += _files_in_folder(path)
        elif path.is_file() and _is_outcome_file(path):
            found.append(path)
    roots = allowed_roots()
    home = default_global_folder()
    for candidate in (home / OUTCOME_LOG_NAME, home / OUTCOME_FOLDER_NAME):
        try:
            real = candidate.resolve()
            if not candidate.exists() or not any(real == root or real.is_relative_to(root) for root in roots):
                continue
        except OSError:
            continue
        found += _files_in_folder(candidate) if candidate.is_dir() else [candidate]
    unique: dict[Path, Path] = {}
    for file in found:
        try:
            unique.setdefault(file.resolve(), file)
        except OSError:
            continue
    return [file for file in unique.values() if _looks_like_outcomes(file)]


# --- joining records to conversations -------------------------------------------------------------------------------
def _path_keys(text: str) -> set[str]:
    """A session path as written and with links followed (cass-memory resolves `..` but not links)."""
    given = Path(text).expanduser()
    keys = {os.path.normpath(os.path.abspath(given))}
    try:
        keys.add(str(given.resolve()))
    except (OSError, RuntimeError):
        pass
    return keys


def _tail(text: str) -> str | None:
    """The last two parts of a path written on any system: `<project folder>/<session file>`."""
    parts = [part for part in text.replace("\\", "/").split("/") if part]
    return "/".join(parts[-2:]) if len(parts) >= 2 else None


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text


class OutcomeSignals:
    """Outcome records indexed by the ways a record names its session; the latest record per session wins."""

    def __init__(self, records: Iterable[SessionOutcome]) -> None:
        self.by_path: dict[str, SessionOutcome] = {}
        self.by_id: dict[str, SessionOutcome] = {}
        self.by_tail: dict[str, SessionOutcome] = {}
        for record in records:
            if _looks_like_path(record.session):
                for key in _path_keys(record.session):
                    _keep_latest(self.by_path, key, record)
                if tail := _tail(record.session):
                    _keep_latest(self.by_tail, tail, record)
            else:
                _keep_latest(self.by_id, record.session, record)

    def __bool__(self) -> bool:
        return bool(self.by_path or self.by_id or self.by_tail)

    def match(self, conv: Conversation) -> tuple[SessionOutcome, str] | None:
        for key in _path_keys(conv.source_file):
            if key in self.by_path:
                return self.by_path[key], "path"
        if conv.session_id in self.by_id:
            return self.by_id[conv.session_id], "session_id"
        if conv.parent_session_id and conv.parent_session_id in self.by_id:
            return self.by_id[conv.parent_session_id], "parent_session_id"
        tail = _tail(conv.source_file)
        if tail and tail in self.by_tail:
            return self.by_tail[tail], "path_tail"
        return None

    def apply(self, conv: Conversation) -> bool:
        found = self.match(conv)
        if found is None:
            return False
        record, matched_by = found
        conv.outcome.verdict = record.verdict
        conv.metadata["cass_outcome"] = record.as_metadata(matched_by)
        return True


def _keep_latest(index: dict[str, SessionOutcome], key: str, record: SessionOutcome) -> None:
    if key not in index or record.sort_key() >= index[key].sort_key():
        index[key] = record


def load_outcome_signals(files: Sequence[Path]) -> tuple[OutcomeSignals, list[ImportProblem]]:
    records: list[SessionOutcome] = []
    problems: list[ImportProblem] = []
    order = 0  # records of later files come after those of earlier ones when their recordedAt is equal
    for file in files:
        for item in read_outcome_file(file, start=order):
            if isinstance(item, ImportProblem):
                problems.append(item)
            else:
                records.append(item)
        order = (records[-1].order if records else order) + 1
    return OutcomeSignals(records), problems


def with_outcome_signals(paths: Sequence[Path], records: Iterator[Record]) -> Iterator[Record]:
    """The records of an import of `paths`, each conversation carrying the cass-memory verdict on its session (from
    the outcome files outcome_files(paths) finds); problems in those files come first."""
    signals, problems = load_outcome_signals(outcome_files(paths))
    yield from problems
    for record in records:
        if signals and isinstance(record, Conversation):
            signals.apply(record)
        yield record
