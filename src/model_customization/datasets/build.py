"""Build a dataset version from memory files: import, check, dedupe, split by session, store immutably.

A dataset is content-addressed: its id is a hash of its examples and splits, so building the same memory with the
same options twice yields the same id and stores nothing new. Files are written into a temporary folder and
renamed into place, so a crash never leaves a half-written dataset behind.
"""

from __future__ import annotations

import gc
import hashlib
import heapq
import html
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from model_customization.datasets.curation import split_into_turn_examples
from model_customization.datasets.dedupe import NearDuplicateFilter, canonical_json, exact_key, example_text, minhash_of
from model_customization.datasets.examples import conversation_to_example, example_problem, message_to_dict
from model_customization.datasets.filters import ConversationFilter
from model_customization.datasets.outcomes import NO_SIGNAL, OutcomeLabeller, card_markdown_lines, labelled_example
from model_customization.datasets.redaction import load_detect_secrets, redact_conversation, redact_record, redact_text, share_clean_texts, unshare_clean_texts
from model_customization.datasets.tokens import _counter, bound_count_caches, count_chat_tokens
from model_customization.errors import NotFoundError, UserError
from model_customization.memory.cass_memory import load_outcome_signals, outcome_files
from model_customization.memory.detect import SUPPORTED_FORMATS, PassedOver, ReadUnit, plan_memory, read_unit
from model_customization.memory.records import Conversation, ImportProblem, Message, PreferencePair, SkippedFile
from model_customization.operations.datasets import BuildDatasetRequest
from model_customization.paths import check_readable
from model_customization.reading_limits import open_regular_file
from model_customization.storage import atomic_folder, file_lock
from model_customization.store.errors import home_os_error
from model_customization.workspace import Workspace

SPLITS = ("train", "validation", "test")
MAX_REPORTED_PROBLEMS = 50

ProgressFn = Callable[[int, str], None]


@dataclass
class BuildResult:
    dataset_id: str
    counts: dict[str, int]
    problems: list[str]
    problem_count: int
    dropped: dict[str, int]
    already_existed: bool
    card: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # files a folder walk passed over, with why (first 50)
    skipped_count: int = 0


# Sources listed in a card (JSON and Markdown); the whole list is paged by the datasets://{id}/sources/{page} resource.
CARD_SOURCES_SHOWN = 100
SOURCES_PER_PAGE = 1000


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    # Streamed, so no size limit; but only a regular file (a source swapped for a FIFO since it was read must not hang).
    with open_regular_file(path, what="Memory file", max_bytes=sys.maxsize, fenced=True) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _canonical(example: dict[str, Any]) -> str:
    return json.dumps(example, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def split_sessions(session_ids: Sequence[str], seed: int, validation_fraction: float, test_fraction: float) -> dict[str, str]:
    """Assign whole sessions to splits, so that no session leaks between train and the held-out splits."""
    ordered = sorted(set(session_ids))
    random.Random(seed).shuffle(ordered)
    n = len(ordered)
    n_test = round(n * test_fraction)
    n_validation = round(n * validation_fraction)
    # With any held-out fraction asked for, keep at least one session in it once there are enough to spare.
    if test_fraction > 0 and n_test == 0 and n >= 3:
        n_test = 1
    if validation_fraction > 0 and n_validation == 0 and n >= 3:
        n_validation = 1
    # Rounding each held-out split on its own can leave no session for training: give them back, largest first.
    while n and n_test + n_validation >= n and (n_test or n_validation):
        if n_validation >= n_test:
            n_validation -= 1
        else:
            n_test -= 1
    assignment = {}
    for index, session in enumerate(ordered):
        if index < n_test:
            assignment[session] = "test"
        elif index < n_test + n_validation:
            assignment[session] = "validation"
        else:
            assignment[session] = "train"
    return assignment


def _pair_example(prompt: list[Message], preferred: Message, non_preferred: Message, tools: list[dict] | None) -> dict[str, Any]:
    input_: dict[str, Any] = {"messages": [message_to_dict(m) for m in prompt]}
    if tools:
        input_["tools"] = tools
    return {"input": input_, "preferred_output": [message_to_dict(preferred)], "non_preferred_output": [message_to_dict(non_preferred)]}


def _redact_pair(pair: PreferencePair) -> tuple[PreferencePair, Counter[str]]:
    """Redact a pair as one conversation, so a value gets the same placeholder in the prompt and both answers."""
    carrier = Conversation(pair.session_id, [*pair.prompt, pair.preferred, pair.non_preferred], pair.source_file, pair.source_line, pair.source_format, tools=pair.tools)
    redacted, counts = redact_conversation(carrier)
    *prompt, preferred, non_preferred = redacted.messages
    return PreferencePair(pair.session_id, prompt, preferred, non_preferred, pair.source_file, pair.source_line, pair.source_format, redacted.tools), counts


def _attempt_pair(task_id: str, attempts: list[Conversation]) -> PreferencePair | None:
    """Best against worst attempt at one task, compared where they first differ (an assistant turn in both)."""
    rewarded = [a for a in attempts if a.outcome.reward is not None]
    if len(rewarded) < 2:
        return None
    best = max(rewarded, key=lambda a: a.outcome.reward)
    worst = min(rewarded, key=lambda a: a.outcome.reward)
    if best.outcome.reward == worst.outcome.reward:
        return None
    for index, (good, bad) in enumerate(zip(best.messages, worst.messages)):
        if message_to_dict(good) != message_to_dict(bad):
            if good.role == bad.role == "assistant" and index > 0:
                return PreferencePair(f"task:{task_id}", best.messages[:index], good, bad, best.source_file, best.source_line, best.source_format, best.tools)
            return None
    return None


def build_dataset(
    ws: Workspace,
    paths: Sequence[str | os.PathLike[str]],
    *,
    name: str | None = None,
    seed: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    method: str = "sft",
    example_mode: str = "conversation",
    filters: ConversationFilter | None = None,
    redact: bool = True,
    near_duplicate_threshold: float | None = 0.85,
    progress: ProgressFn | None = None,
    labeller: OutcomeLabeller | None = None,
    workers: int | None = None,
) -> BuildResult:
    """Import memory and store a curated dataset version.

    method "sft" keeps conversations (whole, with weights, or one example per assistant turn with
    example_mode="turns"); method "dpo" keeps preference pairs: those the source states (OpenAI preference files,
    ChatGPT regenerations with opposite ratings) and best-vs-worst attempts at the same task (tau-bench, ToolBench);
    method "kto" keeps each conversation with an outcome signal, labelled desirable or not (datasets/outcomes.py;
    `labeller` holds its options). Redaction of secrets and personal data happens before anything is stored.

    workers: processes that read, redact, hash and count the files (see _Reader); None reads
    MODEL_CUSTOMIZATION_BUILD_WORKERS, else one per CPU core. Any number gives the same dataset, byte for byte.
    """
    if not paths:
        raise UserError("No memory paths given. Pass one or more files or folders of transcripts (JSONL).")
    if not (0 <= validation_fraction < 1 and 0 <= test_fraction < 1 and validation_fraction + test_fraction < 1):
        raise UserError(
            f"validation_fraction ({validation_fraction}) and test_fraction ({test_fraction}) must each be in [0, 1) "
            "and leave some examples for training (their sum below 1)."
        )
    if method not in ("sft", "dpo", "kto"):
        raise UserError(f"Unknown method {method!r}: use 'sft' (conversations), 'dpo' (preference pairs) or 'kto' (conversations labelled by outcome).")
    if method == "kto" and example_mode != "conversation":
        raise UserError("A kto build labels whole sessions by their outcome: use example_mode='conversation' (the default).")
    if example_mode not in ("conversation", "turns"):
        raise UserError(f"Unknown example_mode {example_mode!r}: use 'conversation' or 'turns'.")
    if near_duplicate_threshold is not None and not 0 < near_duplicate_threshold <= 1:
        raise UserError(f"near_duplicate_threshold must be in (0, 1] or null to switch it off (got {near_duplicate_threshold}).")
    resolved = []
    for raw in paths:
        path = check_readable(raw, what="Memory path")  # inside the allowed roots (paths.py), links followed
        if not path.exists():
            raise NotFoundError(
                f"Memory path not found: {raw}. Give an existing file or folder (absolute, or relative to {Path.cwd()})."
            )
        resolved.append(path.resolve())

    # Kept examples are not held in memory: their canonical JSON lines go to a spill file in a work folder as they
    # come, and only a session number per example stays here (see _write_splits).
    with _home_writes(ws):
        ws.settings.datasets_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=ws.settings.datasets_dir))
        try:
            with (work / "kept.jsonl").open("wb") as spill:
                return _build(
                    ws, resolved, work, spill, name=name, seed=seed, validation_fraction=validation_fraction,
                    test_fraction=test_fraction, method=method, example_mode=example_mode, filters=filters, redact=redact,
                    near_duplicate_threshold=near_duplicate_threshold, progress=progress,
                    labeller=(labeller or OutcomeLabeller()) if method == "kto" else None, workers=workers,
                )
        finally:
            shutil.rmtree(work, ignore_errors=True)


@contextmanager
def _home_writes(ws: Workspace) -> Iterator[None]:
    """A full disk or a read-only data home while a dataset is written: a StorageError saying which, not an OSError."""
    try:
        yield
    except OSError as error:
        explained = home_os_error(error, ws.settings.home)
        if explained is None:
            raise
        raise explained from None


def build_dataset_from_request(ws: Workspace, request: BuildDatasetRequest, progress: ProgressFn | None = None) -> BuildResult:
    """build_dataset with the arguments of the build_dataset_from_memory tool and the `dataset build` command."""
    try:
        filters = ConversationFilter(
            outcome=request.outcome, min_turns=request.min_turns, max_turns=request.max_turns, since=request.since, until=request.until,
            tool_calls=request.tool_calls, sources=request.sources,
        )
    except ValueError as error:
        raise UserError(f"Invalid filter: {error}.") from None
    return build_dataset(
        ws, request.paths, name=request.name, seed=request.seed, validation_fraction=request.validation_fraction,
        test_fraction=request.test_fraction, method=request.method, example_mode=request.example_mode, filters=filters,
        redact=request.redact, near_duplicate_threshold=request.near_duplicate_threshold, progress=progress,
        labeller=OutcomeLabeller(request.reward_threshold, request.transcript_signals),
    )


@dataclass
class _Prepared:
    """What the per-record work (redaction, example, hashes, token counts; a worker process may do it) hands back.

    lines: (canonical JSON line, o200k tokens or None when the build process counts them (see _PrepareOptions), exact
    key of a per-turn example or None) per candidate example, in the order they would be kept. problem: why the
    example cannot be trained on (then nothing else is set)."""

    session_id: str
    redactions: Counter[str]
    problem: str | None = None
    key: str = ""  # exact_key of the whole conversation or pair
    signature: Any = None  # its MinHash when near-duplicate detection is on
    lines: list[tuple[bytes, int | None, bytes | None]] = field(default_factory=list)
    signal: tuple[bool, str] | None = None  # kto: the outcome signal the example was labelled by


@dataclass(frozen=True)
class _PrepareOptions:
    redact: bool
    example_mode: str
    near_duplicates: bool
    num_perm: int = 128
    shingle: int = 5
    # False in the workers a build forks from its own process: they start before the o200k tables are loaded (the
    # build process loads them while the workers parse) and the build process counts the examples it keeps.
    count_tokens: bool = True


def _line_of(example: dict[str, Any], turn_key: bytes | None, options: _PrepareOptions) -> tuple[bytes, int | None, bytes | None]:
    return canonical_json(example) + b"\n", _example_tokens(example) if options.count_tokens else None, turn_key


def _hashes(example: dict[str, Any], options: _PrepareOptions) -> tuple[str, Any]:
    """The exact key and (when asked for) the MinHash of a whole conversation or pair, before any per-turn split."""
    key = exact_key(example)
    if not options.near_duplicates:
        return key, None
    as_chat = example if "messages" in example else {"messages": example["input"]["messages"] + example["preferred_output"] + example["non_preferred_output"]}
    return key, minhash_of(example_text(as_chat), options.num_perm, options.shingle)


def _prepare_conversation(item: Conversation, options: _PrepareOptions, signal: tuple[bool, str] | None = None) -> _Prepared:
    """One conversation of an sft build (or of a kto build, labelled by its outcome `signal`): redacted, made an
    example (or per-turn examples), hashed and counted."""
    counts: Counter[str] = Counter()
    if options.redact:
        item, counts = redact_conversation(item)
    whole = conversation_to_example(item)
    problem = example_problem(whole)
    if problem:
        return _Prepared(item.session_id, counts, problem=problem)
    if signal is not None:
        whole = labelled_example(whole, signal[0])
    key, signature = _hashes(whole, options)
    if options.example_mode == "conversation":
        lines = [_line_of(whole, None, options)]
    else:
        lines = [_line_of(example, bytes.fromhex(exact_key(example))[:16], options) for example in split_into_turn_examples(whole)]
    return _Prepared(item.session_id, counts, key=key, signature=signature, lines=lines, signal=signal)


def _prepare_pair(pair: PreferencePair, options: _PrepareOptions) -> _Prepared:
    """One preference pair of a dpo build: redacted as one conversation, made an example, hashed and counted."""
    counts: Counter[str] = Counter()
    if options.redact:
        pair, counts = _redact_pair(pair)
    example = _pair_example(pair.prompt, pair.preferred, pair.non_preferred, pair.tools)
    key, signature = _hashes(example, options)
    return _Prepared(pair.session_id, counts, key=key, signature=signature, lines=[_line_of(example, None, options)])


def _prepare(record: Conversation | PreferencePair, options: _PrepareOptions, signal: tuple[bool, str] | None = None) -> _Prepared:
    """The per-record work of a build, in this process or a worker's (a pure function of its arguments)."""
    if isinstance(record, PreferencePair):
        return _prepare_pair(record, options)
    return _prepare_conversation(record, options, signal)


NOT_UNICODE = "not_unicode_text"


def _prepared_events(record: Conversation | PreferencePair, options: _PrepareOptions, signal: tuple[bool, str] | None = None) -> list[tuple[Any, ...]]:
    """The events of one record's work: ("prepared", ...), or, for a record whose text holds a lone surrogate (JSON
    allows an escape like \\ud800 alone; it is not Unicode text and no dataset line can hold it), a problem naming
    its file and line and a drop, so that one broken character does not stop the build."""
    try:
        return [("prepared", _prepare(record, options, signal))]
    except UnicodeEncodeError as error:
        if not isinstance(error.object, str) or not 0xD800 <= ord(error.object[error.start]) <= 0xDFFF:
            raise
        character = f"\\u{ord(error.object[error.start]):04x}"
        message = (
            f"a text of this {'preference pair' if isinstance(record, PreferencePair) else 'conversation'} holds a lone "
            f"surrogate ({character}: half of a character, which is not Unicode text); it was left out. Fix or remove "
            "that escape in the file."
        )
        return [("problem", ImportProblem(record.source_file, record.source_line, message)), ("dropped", NOT_UNICODE)]


WORKERS_ENV = "MODEL_CUSTOMIZATION_BUILD_WORKERS"
POOL_AFTER_BYTES = 4 << 20  # by default a pool starts once this much input was read: a small build is done sooner alone


def build_workers(requested: int | None = None) -> tuple[int, bool]:
    """(worker processes, whether they were asked for): the argument, else MODEL_CUSTOMIZATION_BUILD_WORKERS, else one
    per CPU core this process may use. Asked-for workers start at once; the default ones after POOL_AFTER_BYTES."""
    if requested is None:
        raw = os.environ.get(WORKERS_ENV, "").strip()
        if raw:
            try:
                requested = int(raw)
            except ValueError:
                raise UserError(f"{WORKERS_ENV}={raw[:40]!r} is not a number: set it to 1 (one process) or more.") from None
    if requested is not None:
        if requested < 1:
            raise UserError(f"Build workers must be 1 (one process) or more, got {requested}.")
        return requested, True
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    return cores, False


BIG_UNIT_BYTES = 64 << 20  # a file this large is read here, record by record, so its results never pile up at once
# Files handed to the pool and not yet merged here, per worker. Results are merged in plan order, so a long file
# (or this process, busy counting) holds back the merging of those after it; with room for many, the workers read on
# meanwhile (with two per worker they sat idle about a quarter of the time). IN_FLIGHT_BYTES, of input, bounds the
# results that may pile up; each worker may still have one file in flight, whatever its size.
IN_FLIGHT_PER_WORKER = 16
IN_FLIGHT_BYTES = 32 << 20


@dataclass(frozen=True)
class _ReadJob:
    """What reading any file of a build needs (given to each worker once, as it starts)."""

    options: _PrepareOptions
    method: str
    filters: ConversationFilter | None
    labeller: OutcomeLabeller | None  # only its signal() runs in a worker (a pure function); kept() counts here
    signals: Any  # the cass-memory outcome signals to apply to each conversation (OutcomeSignals), or None


class BuildReadError(RuntimeError):
    """An unexpected error while reading and preparing a record; the message names the file and the line."""


def _unit_events(unit: ReadUnit, job: _ReadJob) -> Iterator[tuple[Any, ...]]:
    """Read one unit of the import and do every record's work on it (redaction, examples, hashes, token counts),
    here or in a worker: events for the build, in record order, holding only small results (no conversation,
    except the attempts a dpo build pairs up). The events say what the build loop did with each record when it
    read the records itself."""
    skipped: list[SkippedFile] = []
    hashed: set[str] = set()
    where = (str(unit.path), 0)
    try:
        for item in read_unit(unit, {}, skipped):
            if isinstance(item, ImportProblem):
                yield ("problem", item)
                continue
            where = (item.source_file, item.source_line)
            if job.signals and isinstance(item, Conversation):
                job.signals.apply(item)
            if item.source_file not in hashed:
                hashed.add(item.source_file)
                yield ("source", item.source_file, _sha256_file(Path(item.source_file)))
            yield ("format", item.source_format)
            if isinstance(item, PreferencePair):
                yield from _prepared_events(item, job.options) if job.method == "dpo" else [("dropped", "preference_pair")]
                continue
            yield ("conversation",)
            reason = job.filters.reason(item) if job.filters else None
            if reason:
                yield ("dropped", f"filter:{reason}")
            elif job.method == "dpo":
                yield ("attempt", item) if item.task_id is not None else ("dropped", "no_preference_signal")
            else:
                signal = job.labeller.signal(item) if job.labeller else None  # kto: (desirable?, which signal said so)
                if job.labeller and signal is None:
                    yield ("dropped", NO_SIGNAL)
                else:
                    yield from _prepared_events(item, job.options, signal)
    except (UserError, BuildReadError, OSError):  # the domain's own messages; OSErrors name their file
        raise
    except Exception as error:
        raise BuildReadError(f"{type(error).__name__} while building from {where[0]}, line {where[1]}: {error}") from error
    for file in skipped:
        yield ("skipped", file)


_worker_job: _ReadJob | None = None  # set in each worker as it starts
# Token-count caches of whichever process counts a pooled build's examples (see tokens.bound_count_caches): what
# keeps a 1 GB build under 300 MB.
WORKER_COUNT_CACHE_CHARS = 6_000_000
WORKER_COUNT_CACHE_LONG_TEXTS = 60_000


def _start_worker(job: _ReadJob | None) -> None:
    global _worker_job
    _worker_job = job
    bound_count_caches(WORKER_COUNT_CACHE_CHARS, WORKER_COUNT_CACHE_LONG_TEXTS)
    # The tables and modules the worker inherited are never freed in it: keeping them out of the collector's view
    # keeps it from touching (and so copying) the pages it shares with the process it was forked from.
    gc.freeze()


def _read_in_worker(unit: ReadUnit) -> list[tuple[Any, ...]]:
    assert _worker_job is not None, "a build worker started without its job"
    return list(_unit_events(unit, _worker_job))


def _ready() -> None:
    """A task that does nothing: submitting it makes the pool start its workers (all at once, with fork)."""


class _Reader:
    """Reads the import's units (memory.detect.plan_memory) here or in a pool of worker processes, and hands their
    events to `handle` in plan order, so that a pool decides duplicates, splits and the card exactly as one process.

    Workers read whole files: this process only walks the folders, merges small results and (forked workers) counts
    the tokens of the examples kept. At most IN_FLIGHT_PER_WORKER files per worker, and IN_FLIGHT_BYTES of them, are in
    flight, and a file over BIG_UNIT_BYTES (or a folder a format reads whole) is read here record by record, so memory
    does not grow with the input. The pool forks this process when it has one thread (the CLI); in a process with
    threads (the server) it uses a fork server, since forking a threaded process can copy a lock some thread holds. A
    fork refused (a library's at-fork guard) leaves no worker behind and the build goes on in this process."""

    def __init__(self, job: _ReadJob, handle: Callable[[tuple[Any, ...]], None], workers: int | None, while_waiting: Callable[[], Any] | None = None) -> None:
        self.job = job
        self.handle = handle
        self.while_waiting = while_waiting  # work for this process the first time it waits on the pool
        self.workers, self.asked = build_workers(workers)
        self.planned = 0  # bytes of the files planned so far
        self.waiting: list[ReadUnit | ImportProblem | PassedOver] = []  # planned, not yet read (see add)
        self.pool: Any = None
        self.pending: deque[tuple[Any, int]] = deque()  # (future, or list of events made here; input bytes), in plan order
        self.in_flight = 0  # files handed to the pool and not merged yet
        self.in_flight_bytes = 0  # and their size
        self.tables_to_load = False  # this process counts the workers' examples and has not loaded the o200k tables yet
        self.cache_bounds: tuple[int, int] | None = None  # this process's count-cache bounds before the build's
        self.shared_clean = False  # this process made a table of clean texts for its forked workers to share
        self.frozen = False  # this process froze its objects out of its own collections before forking

    def __enter__(self) -> _Reader:
        if self.workers > 1 and self.asked:
            self._start()
        return self

    def add(self, item: ReadUnit | ImportProblem | PassedOver) -> None:
        """The next item of the plan. With default workers, items wait (unread: a few paths) until POOL_AFTER_BYTES
        of files are planned; then the pool starts and takes them all, else (a small import) they are read here. So
        a large build reads nothing in this process before its pool starts (from a server thread, this process
        then never loads the o200k tables its fork server's workers have)."""
        if self.pool is None and self.workers > 1 and not self.asked:
            self.waiting.append(item)
            if isinstance(item, ReadUnit):
                self.planned += self._size(item)
            if self.planned >= POOL_AFTER_BYTES:
                self._start()  # on refusal, workers drops to 1 and the waiting items are read here
                self._release()
            return None
        return self._read(item)

    def _release(self) -> None:
        waiting, self.waiting = self.waiting, []
        for item in waiting:
            self._read(item)

    @staticmethod
    def _size(item: ReadUnit) -> int:
        if item.kind == "folder":
            return 0
        try:
            return item.path.stat().st_size
        except OSError:
            return 0  # read_unit reports it

    def _read(self, item: ReadUnit | ImportProblem | PassedOver) -> None:
        if isinstance(item, ImportProblem):
            return self._queue([("problem", item)])
        if isinstance(item, PassedOver):
            return self._queue([("skipped", file) for file in item.files])
        size = self._size(item)
        if self.pool is None or item.kind == "folder" or size > BIG_UNIT_BYTES:
            self._drain()
            for event in _unit_events(item, self.job):
                self.handle(event)
            return None
        self.pending.append((self.pool.submit(_read_in_worker, item), size))
        self.in_flight += 1
        self.in_flight_bytes += size
        while self.in_flight >= self.workers and (
            self.in_flight >= IN_FLIGHT_PER_WORKER * self.workers or self.in_flight_bytes >= IN_FLIGHT_BYTES
        ):
            self._next()
        return None

    def _queue(self, events: list[tuple[Any, ...]]) -> None:
        if self.pending:
            self.pending.append((events, 0))
        else:
            for event in events:
                self.handle(event)

    def _next(self) -> None:
        done, size = self.pending.popleft()
        if not isinstance(done, list):
            if self.tables_to_load:
                self.tables_to_load = False
                _counter("o200k_base")  # the workers have files to read meanwhile: load the tables before waiting
            if self.while_waiting is not None:
                self.while_waiting, warm_up = None, self.while_waiting
                warm_up()
            self.in_flight -= 1
            self.in_flight_bytes -= size
            done = done.result()
        for event in done:
            self.handle(event)

    def _drain(self) -> None:
        while self.pending:
            self._next()

    def _start(self) -> None:
        import multiprocessing
        import random
        import threading
        from concurrent.futures import ProcessPoolExecutor

        methods = multiprocessing.get_all_start_methods()
        worker_job = self.job
        if "fork" in methods and threading.active_count() == 1:
            # The workers start at once, without the o200k tables; this process loads them while the workers read
            # the first files and counts the examples it keeps (loading them first kept both cores waiting ~0.7 s).
            worker_job = replace(self.job, options=replace(self.job.options, count_tokens=False))
            self.tables_to_load = True
            if self.job.options.redact:
                # Loaded here once and shared, not by each worker at its first line with a URL or a "pass" in it:
                # the same wall time (both workers would spend it at once), ~12 MB and 0.15 s less in all.
                load_detect_secrets()
                share_clean_texts()  # what one worker finds clean, the others need not scan (undone in __exit__)
                self.shared_clean = True
            # What exists now is shared with the forked workers, page by page, until either side writes to it. A
            # garbage collection writes to every object it visits, so one in this process while the workers run
            # (counting tokens makes plenty) would copy all of it: 16-20 MB more PSS on /tmp/cc52 when a full collection
            # happened to fall after the fork. Frozen objects are skipped by collections, here and in the workers.
            gc.freeze()
            self.frozen = True
            context = multiprocessing.get_context("fork")
        elif "forkserver" in methods:
            # The fork server has the tables (build_preload): its workers count, this process never loads them.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["model_customization.datasets.build_preload"])
        else:
            worker_job = replace(self.job, options=replace(self.job.options, count_tokens=False))  # not a load each
            self.tables_to_load = True
            context = multiprocessing.get_context("spawn")
        for attempt in range(3):
            pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start_worker, initargs=(worker_job,))
            try:
                pool.submit(_ready).result()
            except RuntimeError:
                from model_customization.datasets.pools import end_half_started_pool

                end_half_started_pool(pool)  # a fork refused halfway: the workers forked before it are ended
                time.sleep(random.uniform(0.02, 0.1) * (attempt + 1))
                continue
            self.pool = pool
            if self.tables_to_load:  # this process counts what the workers would have: with their cache bounds
                self.cache_bounds = bound_count_caches(WORKER_COUNT_CACHE_CHARS, WORKER_COUNT_CACHE_LONG_TEXTS)
            return
        self.tables_to_load = False
        self.workers = 1  # forks refused three times: this build goes on in this process

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        try:
            if error is None:
                self._release()  # a small import: read here
                self._drain()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
                self.pool = None
            if self.cache_bounds is not None:
                bound_count_caches(*self.cache_bounds)
                self.cache_bounds = None
            if self.shared_clean:
                unshare_clean_texts()
                self.shared_clean = False
            if self.frozen:
                gc.unfreeze()
                self.frozen = False


def _build(
    ws: Workspace,
    resolved: list[Path],
    work: Path,
    spill: Any,
    *,
    name: str | None,
    seed: int,
    validation_fraction: float,
    test_fraction: float,
    method: str,
    example_mode: str,
    filters: ConversationFilter | None,
    redact: bool,
    near_duplicate_threshold: float | None,
    progress: ProgressFn | None,
    labeller: OutcomeLabeller | None,
    workers: int | None,
) -> BuildResult:
    problems: list[str] = []
    problem_count = 0
    dropped: Counter[str] = Counter()
    redactions: Counter[str] = Counter()
    seen_exact: set[bytes] = set()  # 16-byte prefixes of the exact keys' sha256 digests
    seen_turns: set[bytes] = set()
    near = NearDuplicateFilter(threshold=near_duplicate_threshold) if near_duplicate_threshold else None
    options = _PrepareOptions(redact, example_mode, near is not None)
    spill_path = work / "kept.jsonl"
    kept_sessions = array("l")  # per kept example, in order: the number of its session in session_ids
    kept_tokens = array("q")  # per kept example, in order: its o200k tokens (for the card)
    session_ids: list[str] = []
    session_number: dict[str, int] = {}
    source_files: dict[str, str] = {}
    formats: Counter[str] = Counter()
    attempts: dict[str, list[Conversation]] = {}
    conversations = 0

    def keep(session_id: str, line: bytes, tokens: int | None) -> None:
        if tokens is None:  # prepared by a worker that does not count (see _PrepareOptions.count_tokens)
            tokens = _line_tokens(line)
        number = session_number.get(session_id)
        if number is None:
            number = session_number[session_id] = len(session_ids)
            session_ids.append(session_id)
        spill.write(line)
        kept_sessions.append(number)
        kept_tokens.append(tokens)

    def is_new(prepared: _Prepared) -> bool:
        """Exact, then near-duplicate check of a whole conversation or pair (before any per-turn split)."""
        digest = bytes.fromhex(prepared.key)[:16]
        if digest in seen_exact:
            dropped["exact_duplicate"] += 1
            return False
        seen_exact.add(digest)
        if near is not None and near.is_duplicate(prepared.key, None, prepared.signature):
            dropped["near_duplicate"] += 1
            return False
        return True

    def accept(prepared: _Prepared) -> None:
        """Take a prepared record's examples, in the order the records were read (so dedupe is deterministic)."""
        redactions.update(prepared.redactions)
        if prepared.problem:
            dropped[prepared.problem] += 1
            return
        if not is_new(prepared):
            return
        for line, tokens, turn_key in prepared.lines:
            if turn_key is not None:
                # Sessions that open the same way give the same first-turn examples: keep one of each.
                if turn_key in seen_turns:
                    dropped["exact_duplicate_turn"] += 1
                    continue
                seen_turns.add(turn_key)
            keep(prepared.session_id, line, tokens)
            if labeller and prepared.signal is not None:
                labeller.kept(prepared.signal)

    passed_over: list[SkippedFile] = []
    signals, signal_problems = load_outcome_signals(outcome_files(resolved))
    job = _ReadJob(options, method, filters, labeller, signals)

    def problem(item: ImportProblem) -> None:
        nonlocal problem_count
        problem_count += 1
        if len(problems) < MAX_REPORTED_PROBLEMS:
            # An importer's message may quote the bad value (a role that is really a pasted key): redact it too.
            message = redact_text(item.message)[0] if redact else item.message
            problems.append(str(replace(item, message=message)))

    def handle(event: tuple[Any, ...]) -> None:
        """What the build does with each event of _unit_events, in the order the records were read."""
        nonlocal conversations
        kind = event[0]
        if kind == "prepared":
            accept(event[1])
        elif kind == "format":
            formats[event[1]] += 1
        elif kind == "conversation":
            conversations += 1
        elif kind == "dropped":
            dropped[event[1]] += 1
        elif kind == "source":
            if event[1] not in source_files:
                source_files[event[1]] = event[2]
                if progress:
                    progress(conversations, redact_text(unicode_safe(f"reading {Path(event[1]).name}"))[0])  # a file name may hold a secret
        elif kind == "problem":
            problem(event[1])
        elif kind == "skipped":
            passed_over.append(event[1])
        elif kind == "attempt":
            attempts.setdefault(event[1].task_id, []).append(event[1])

    for item in signal_problems:  # problems in the outcome files come first, as iter_memory gives them
        problem(item)
    # Opening the ledger (SQLAlchemy, the schema check: ~0.6 s from a fresh CLI) is done while a pool's workers read,
    # not after them, when it would be the only work left.
    with _Reader(job, handle, workers, while_waiting=lambda: ws.store) as reader:
        # A folder walked that holds this data home (a project folder with the home inside it, or ~) does not read
        # the home: earlier datasets are not memory, and this build's own work files are being written there.
        for unit in plan_memory(resolved, {ws.settings.home.resolve(): "the data home of model-customization (its datasets and work files are not memory)"}):
            reader.add(unit)

    for task_id, tried in attempts.items():  # a dpo build's attempts at each task, paired once all were read
        pair = _attempt_pair(task_id, tried)
        if pair is None:
            dropped["no_preference_signal"] += len(tried)
        else:
            for event in _prepared_events(pair, options):
                handle(event)

    spill.close()
    skipped = [str(s) for s in passed_over[:MAX_REPORTED_PROBLEMS]]
    if not kept_sessions:
        detail = f" First problems: {'; '.join(problems[:3])}." if problems else ""
        if passed_over:
            names = "; ".join(skipped[:5]) + ("; ..." if len(passed_over) > 5 else "")
            detail += f" Skipped {len(passed_over)} file{'s' if len(passed_over) != 1 else ''}: {names}."
        raise UserError(redact_text(
            f"No usable examples found in {', '.join(str(p) for p in resolved)} "
            f"({conversations} conversations read, {problem_count} unreadable lines, {len(passed_over)} files skipped, "
            f"dropped: {dict(dropped) or 'none'})."
            f"{detail} Supported formats: {', '.join(SUPPORTED_FORMATS)}"
            + {
                "dpo": ". A dpo build needs preference pairs or several rewarded attempts per task.",
                "kto": ". A kto build needs sessions with an outcome signal (a reward, rating, verdict, or an agent's errors, rejections or interruptions).",
            }.get(method, ".")
        )[0])

    assignment = split_sessions(session_ids, seed, validation_fraction, test_fraction)
    split_of_session = [SPLITS.index(assignment[s]) for s in session_ids]
    example_split = bytes(split_of_session[n] for n in kept_sessions)  # the split (index in SPLITS) per example
    counts = {s: 0 for s in SPLITS}
    for index in example_split:
        counts[SPLITS[index]] += 1

    # Order within a split by content, so the same memory given in another order is the same dataset.
    content_hash = _write_splits(spill_path, example_split, work)
    card_fields = {
        "conversations_read": conversations,
        "formats": dict(formats),
        "dropped": dict(sorted(dropped.items())),
        "duplicates_removed": {"exact": dropped.get("exact_duplicate", 0), "near": dropped.get("near_duplicate", 0)},
        "redactions": dict(sorted(redactions.items())),
        "unreadable": {"count": problem_count, "first": problems},
        "skipped_files": {"count": len(passed_over), "first": skipped},
        "sources": [{"path": p, "sha256": h} for p, h in sorted(source_files.items())],
        **({"kto": labeller.card()} if labeller else {}),
        "options": {
            "seed": seed,
            "validation_fraction": validation_fraction,
            "test_fraction": test_fraction,
            "method": method,
            "example_mode": example_mode,
            "redact": redact,
            "near_duplicate_threshold": near_duplicate_threshold,
            "filters": {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(filters).items()} if filters else None,
            "paths": [str(p) for p in resolved],
        },
    }
    token_stats = {split: _stats_of(array("q", (n for n, i in zip(kept_tokens, example_split, strict=True) if i == index))) for index, split in enumerate(SPLITS)}
    dataset_id, card, existed = _store_written_splits(
        ws, work, content_hash, counts, name=name, method=method, card_fields=card_fields, token_stats=token_stats
    )
    # What the tool returns beside the card quotes file names and lines too: redacted the same way.
    shown_problems, shown_skipped = redact_record(unicode_safe([problems, skipped]))[0]
    return BuildResult(dataset_id, card["counts"], shown_problems, problem_count, dict(dropped), existed, card, shown_skipped, len(passed_over))


def _store_written_splits(
    ws: Workspace,
    work: Path,
    content_hash: str,
    counts: dict[str, int],
    *,
    name: str | None,
    method: str,
    card_fields: dict[str, Any],
    extra_files: dict[str, bytes] | None = None,
    token_stats: dict[str, dict[str, Any]] | None = None,
) -> tuple[str, dict[str, Any], bool]:
    """Move work/<split>.jsonl (from _write_splits) into the dataset's folder with its card, and add the ledger row.

    Returns the dataset id, its card and whether it existed already (then nothing is written and the stored card is
    returned). extra_files are written beside the splits (e.g. material the card refers to). token_stats: the card's
    o200k statistics per split when the caller counted them already; otherwise they are counted from the files.
    """
    from sqlalchemy.exc import IntegrityError  # the store has loaded SQLAlchemy by now

    dataset_id = "ds-" + content_hash[:12]
    existing = ws.store.datasets.get(dataset_id)
    if existing:
        return dataset_id, existing["card"], True

    # The one place a card is made: everything in it (the name, source file names, problems, options, any field
    # added later) is redacted here, before card.json, card.md and the ledger row are written from it.
    card, _ = redact_record(unicode_safe({
        "id": dataset_id,
        "name": name or dataset_id,
        "method": method,
        "format": {"dpo": "openai_dpo", "kto": "chat_kto"}.get(method, "openai_chat"),
        "counts": counts,
        **card_fields,
        "token_stats": {"o200k_base": token_stats or {s: _token_stats(work / f"{s}.jsonl") for s in SPLITS}},
        "content_sha256": content_hash,
    }))

    final_dir = ws.settings.datasets_dir / dataset_id
    # Builds of the same content may finish at once (threads of one server, servers sharing a home): they take turns
    # here, and every one after the first finds the row and returns that dataset. A file lock in the home, not a
    # database lock: waiting builds then hold no database connection the one storing needs.
    with file_lock(ws.settings.datasets_dir / ".store.lock"):
        existing = ws.store.datasets.get(dataset_id)
        if existing:
            return dataset_id, existing["card"], True
        # Files left by a crash before the ledger row was written are replaced whole.
        with atomic_folder(final_dir) as staging:
            for split in SPLITS:
                os.replace(work / f"{split}.jsonl", staging / f"{split}.jsonl")
            for file_name, data in (extra_files or {}).items():
                (staging / file_name).write_bytes(data)
            (staging / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False), encoding="utf-8")
            (staging / "card.md").write_text(card_markdown(card), encoding="utf-8")
        row = {"id": dataset_id, "name": card["name"], "created_at": time.time(), "path": str(final_dir), "counts": counts, "card": card}
        try:
            ws.store.datasets.add(row)
        except IntegrityError:
            # A server with another home on the same PostgreSQL ledger stored this content first: it is that dataset
            # (its files are now in this home too).
            existing = ws.store.datasets.get(dataset_id)
            if existing is None:
                raise
            return dataset_id, existing["card"], True
    return dataset_id, card, False


def store_examples(
    ws: Workspace,
    examples: Sequence[tuple[str, dict[str, Any]]],
    *,
    name: str | None,
    method: str,
    card_fields: dict[str, Any],
    extra_files: dict[str, bytes] | None = None,
) -> tuple[str, dict[str, Any], bool]:
    """Store examples made elsewhere (each with its split already chosen) exactly as build_dataset stores its own.

    The id is content-addressed the same way, so the same examples in the same splits are the same dataset. Returns
    (dataset_id, card, already_existed).
    """
    reserved = {f"{s}.jsonl" for s in SPLITS} | {"card.json", "card.md"}
    for file_name in extra_files or {}:
        if file_name in reserved or Path(file_name).name != file_name or file_name.startswith("."):
            raise ValueError(f"extra file name {file_name!r} is not a plain name beside the splits")
    example_split = bytes(SPLITS.index(split) for split, _ in examples)  # ValueError for an unknown split
    counts = {s: 0 for s in SPLITS}
    for split, _ in examples:
        counts[split] += 1
    with _home_writes(ws):
        ws.settings.datasets_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=ws.settings.datasets_dir))
        try:
            spill_path = work / "kept.jsonl"
            with spill_path.open("wb") as spill:
                for _, example in examples:
                    spill.write(canonical_json(example) + b"\n")
            content_hash = _write_splits(spill_path, example_split, work)
            return _store_written_splits(
                ws, work, content_hash, counts, name=name, method=method, card_fields=card_fields, extra_files=extra_files
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)


RUN_BYTES = 32 << 20  # at most this much of the kept examples' text is sorted in memory at once


def _write_splits(spill_path: Path, example_split: Sequence[int], work: Path) -> str:
    """Write work/<split>.jsonl, each split's lines sorted by their canonical JSON; return the content hash.

    An external merge sort: the spill file is read in order, lines are gathered per split and, whenever more
    than RUN_BYTES are gathered, the largest split's lines are sorted and written as a sorted run; the runs of
    each split are then merged. Lines are compared as UTF-8 bytes, which orders them as their strings (by code
    point), and the newline ending each line sorts below any byte of a canonical JSON text (control characters are
    escaped in it), so the order is that of sorting the canonical JSON strings. The hash is
    sha256(train text + "\x1e" + validation text + "\x1e" + test text), as if the files were joined.
    """
    buffers: list[list[bytes]] = [[] for _ in SPLITS]
    sizes = [0] * len(SPLITS)
    runs: list[list[Path]] = [[] for _ in SPLITS]

    def flush(index: int) -> None:
        run = work / f"run-{index}-{len(runs[index])}.jsonl"
        buffers[index].sort()
        with run.open("wb") as handle:
            handle.writelines(buffers[index])
        runs[index].append(run)
        buffers[index], sizes[index] = [], 0

    with spill_path.open("rb") as spill:
        for index, line in zip(example_split, spill):
            buffers[index].append(line)
            sizes[index] += len(line)
            if sum(sizes) > RUN_BYTES:
                flush(max(range(len(SPLITS)), key=sizes.__getitem__))
    spill_path.unlink()

    digest = hashlib.sha256()
    for index, split in enumerate(SPLITS):
        if index:
            digest.update(b"\x1e")
        buffers[index].sort()
        handles = [run.open("rb") for run in runs[index]]
        try:
            lines = heapq.merge(*handles, buffers[index]) if handles else buffers[index]
            with (work / f"{split}.jsonl").open("wb") as out:
                for line in lines:
                    digest.update(line)
                    out.write(line)
        finally:
            for handle in handles:
                handle.close()
        buffers[index] = []
        for run in runs[index]:
            run.unlink()
    return digest.hexdigest()


def _example_tokens(example: dict[str, Any]) -> int:
    messages = example["messages"] if "messages" in example else example["input"]["messages"] + example["preferred_output"] + example["non_preferred_output"]
    return count_chat_tokens(messages, "o200k_base")


def _line_tokens(line: bytes) -> int:
    """The o200k tokens of a dataset line's example, parsed by orjson (json where it refuses a value json wrote:
    NaN, an int over 64 bits)."""
    import orjson

    try:
        example = orjson.loads(line)
    except orjson.JSONDecodeError:
        example = json.loads(line)
    return _example_tokens(example)


def _token_stats(split_file: Path) -> dict[str, Any]:
    """Token statistics of a written split, one example at a time (the o200k tables are loaded only here, once the
    import is done: they take more memory than anything else in a build)."""
    counts = array("q")
    with split_file.open("rb") as handle:
        for line in handle:
            counts.append(_example_tokens(json.loads(line)))
    return _stats_of(counts)


def _stats_of(counts: array) -> dict[str, Any]:
    if not counts:
        return {"examples": 0, "total": 0, "mean": 0, "max": 0}
    return {"examples": len(counts), "total": sum(counts), "mean": round(sum(counts) / len(counts), 1), "max": max(counts)}


def card_markdown(card: dict[str, Any]) -> str:
    """The dataset card for people: what is in it, what was left out and why, where it came from."""
    counts = card["counts"]
    lines = [
        f"# Dataset {card['id']}: {markdown_text(card['name'])}",
        "",
        f"Method **{card.get('method', 'sft')}**, stored as {card['format']} JSONL. "
        f"{card['conversations_read']} conversations read from {len(card['sources'])} files ({', '.join(f'{k}: {v}' for k, v in card['formats'].items())}).",
        "",
        "| split | examples | tokens (o200k) | mean | max |",
        "|---|---|---|---|---|",
    ]
    stats = card.get("token_stats", {}).get("o200k_base", {})
    for split in SPLITS:
        st = stats.get(split, {})
        lines.append(f"| {split} | {counts[split]} | {st.get('total', '')} | {st.get('mean', '')} | {st.get('max', '')} |")
    lines += ["", "## Left out", ""]
    lines += [f"- {reason}: {n}" for reason, n in card["dropped"].items()] or ["- nothing"]
    lines.append(f"- unreadable lines or files: {card['unreadable']['count']}")
    lines += [f"  - {_code_span(p)}" for p in card["unreadable"]["first"][:10]]
    lines += ["", "## Redactions (replaced by typed placeholders before storage)", ""]
    lines += [f"- {kind}: {n}" for kind, n in card.get("redactions", {}).items()] or ["- none found"]
    lines += ["", "## Sources", "", "| file | sha256 |", "|---|---|"]
    lines += [f"| {_code_span(s['path'])} | `{s['sha256'][:16]}…` |" for s in card["sources"][:CARD_SOURCES_SHOWN]]
    if len(card["sources"]) > CARD_SOURCES_SHOWN:  # a build of 100k files must not make a card of megabytes
        lines.append(f"\n{len(card['sources']) - CARD_SOURCES_SHOWN:,} more source files: all of them, with their sha256, in datasets://{card['id']}/sources/1 and the pages after it.")
    if "constitution" in card:
        lines += _constitution_markdown(card["constitution"])
    if "kto" in card:
        lines += card_markdown_lines(card["kto"])
    lines += ["", "## Options", "", "```json", json.dumps(card["options"], indent=2), "```", ""]
    return "\n".join(lines)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")  # < > & are left to html.escape


def markdown_text(text: str) -> str:
    """Text a caller chose (a dataset name) as inert Markdown: HTML escaped, Markdown's punctuation backslashed and
    line breaks flattened, so it shows as typed and can neither add markup, links, images nor lines to the card."""
    flat = " ".join(str(text).split())
    # Punctuation first, then <, > and & as entities (whose own characters the first step must not touch).
    return html.escape(_MARKDOWN_SPECIAL.sub(r"\\\1", flat), quote=False)


def _code_span(text: str) -> str:
    """Text (a file name, an importer's message) as one Markdown code span that no backtick, bar or line break in
    it can end early: a fence longer than any backtick run inside, bars escaped for the table it may sit in."""
    flat = " ".join(str(text).split()).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall("`+", flat)), default=0) + 1)
    return f"{fence} {flat} {fence}" if flat.startswith("`") or flat.endswith("`") else f"{fence}{flat}{fence}"


def _constitution_markdown(constitution: dict[str, Any]) -> list[str]:
    """The card section of a dataset made by critique and revision against principles (datasets/constitutional.py)."""
    lines = ["", "## Constitution (answers critiqued and revised against these principles)", ""]
    lines += [f"{n}. {principle}" for n, principle in enumerate(constitution["principles"], 1)]
    lines += [
        "",
        f"Model `{constitution['model']}`; {constitution['prompts_read']} prompts, {constitution['succeeded']} completed, "
        f"{constitution['failed']} failed ({', '.join(f'{k}: {v}' for k, v in constitution['failures'].items()) or 'none'}).",
        f"Every critique and revision per prompt: `{constitution['examples_file']}` beside the splits"
        + (" and under `constitution.examples` in card.json." if "examples" in constitution else "."),
    ]
    for record in constitution.get("examples", [])[:3]:
        lines += ["", f"### Prompt {record['prompt_id'][:12]} ({record['split']})", "", f"> {_one_line(record['prompt'])}", ""]
        lines.append(f"- original: {_one_line(record['original'])}")
        for step in record["steps"]:
            lines.append(f"- critique ({_one_line(step['principle'], 60)}): {_one_line(step['critique'])}")
            lines.append(f"- revision: {_one_line(step['revision'])}")
    return lines


def unicode_safe(value: Any) -> Any:
    """value with every string (and key) that UTF-8 cannot encode written with backslash escapes: a file name that
    is not UTF-8 (Python holds its bytes as lone surrogates: `chats\\xff.jsonl` is shown so) or a lone surrogate from
    a JSON escape (shown as `\\ud83d`). Cards, ledger rows, problems and progress messages hold file names; one such
    name stopped a build at its very end."""
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            pass
        try:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a surrogate that is not an undecodable byte
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {unicode_safe(k): unicode_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [unicode_safe(v) for v in value]
    return value


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def get_dataset(ws: Workspace, dataset_id: str) -> dict[str, Any]:
    row = ws.store.datasets.get(dataset_id)
    if not row:
        raise NotFoundError(
            f"Dataset {dataset_id!r} not found. Call list_datasets to see stored datasets, "
            "or build_dataset_from_memory to make one."
        )
    return row


def read_split(ws: Workspace, dataset_id: str, split: str) -> list[dict[str, Any]]:
    if split not in SPLITS:  # also keeps a name such as "../x" from reaching the file system
        raise UserError(f"Unknown split {split[:80]!r}; a dataset has the splits {', '.join(SPLITS)}.")
    row = get_dataset(ws, dataset_id)
    path = Path(row["path"]) / f"{split}.jsonl"
    try:
        with path.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        raise UserError(
            f"Dataset {dataset_id}'s file {path} is missing: the ledger has the dataset but its folder is gone or "
            "incomplete. Run `model-customization doctor` to see what else is affected; build the dataset again to restore it."
        ) from None


def list_datasets_page(ws: Workspace, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
    """{datasets, total, next_cursor}: stored datasets newest first, one page at a time (see paging.py)."""
    from model_customization.paging import page_rows

    def key(row: dict[str, Any]) -> tuple[float, str]:
        return (row["created_at"], row["id"])

    rows = sorted(ws.store.datasets.all(), key=key, reverse=True)
    shown, next_cursor = page_rows(rows, key, kind="datasets", limit=limit, cursor=cursor, newest_first=True)
    return {"datasets": shown, "total": len(rows), "next_cursor": next_cursor}


ACTIVE_JOB_STATUSES = ("validating", "queued", "running", "paused")


def dataset_references(ws: Workspace, dataset_id: str) -> dict[str, list[str]]:
    """What still points at a dataset: {jobs: [{id, status}], evaluations: [ids], agent_suites: [agent or agent/task
    of the suites in force]}."""
    jobs = [{"id": j["id"], "status": j["status"]} for j in ws.store.jobs.all() if j["dataset_id"] == dataset_id]
    evaluations = [e["id"] for e in ws.store.evaluations.all() if e["dataset_id"] == dataset_id]
    suites = []
    for agent in ws.store.deployments.agents():
        in_force: dict[Any, dict[str, Any]] = {}
        for row in ws.store.deployments.suites_of(agent):  # oldest first: the last row per task is the one in force
            in_force[row["task"]] = row
        suites += [agent if task is None else f"{agent}/{task}" for task, row in in_force.items() if row["dataset_id"] == dataset_id]
    return {"jobs": jobs, "evaluations": evaluations, "agent_suites": sorted(suites)}


def delete_dataset(ws: Workspace, dataset_id: str, force: bool = False) -> dict[str, Any]:
    """Remove a stored dataset: its ledger row, then its folder. Refused while anything uses it (see below).

    Jobs always keep their dataset: every job row names its dataset (a foreign key, and the lineage of the models it
    made), so a dataset a job trained on is refused even with force. Evaluations and agent suites name it only as
    text: force deletes it anyway (their stored reports stay readable; an agent suite on it must be set again).
    """
    from sqlalchemy.exc import IntegrityError

    row = get_dataset(ws, dataset_id)
    used = dataset_references(ws, dataset_id)
    if used["jobs"]:
        jobs = {job["id"]: job["status"] for job in used["jobs"]}
        active = [job for job, status in jobs.items() if status in ACTIVE_JOB_STATUSES]
        listed = ", ".join(f"{job} ({status})" for job, status in jobs.items())
        if active:
            raise UserError(f"Dataset {dataset_id} is in use by jobs that have not ended: {', '.join(active)}. cancel_job them or wait for them to end; even then, see below. Jobs on it: {listed}.")
        raise UserError(
            f"Dataset {dataset_id} cannot be deleted: jobs trained on it ({listed}), and the ledger keeps every job's "
            "dataset as the lineage of the models it made (force does not override this). Nothing was deleted."
        )
    others = [f"{kind.replace('_', ' ')} {', '.join(ids)}" for kind, ids in used.items() if ids and kind != "jobs"]
    if others and not force:
        raise UserError(
            f"Dataset {dataset_id} is referenced by {'; '.join(others)}. Their stored results stay readable after a delete, "
            "but resuming those evaluations or evaluating an agent on its suite would need the dataset. Call again with "
            "force=true to delete it anyway. Nothing was deleted."
        )
    folder = Path(row["path"])
    inside = folder.resolve().parent == ws.settings.datasets_dir.resolve()
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if inside and folder.is_dir() else 0
    # The ledger row goes first: a dataset exists for everyone exactly while its row does. A crash after this line
    # leaves only a folder without a row, which nothing reads, `doctor` lists as a leftover and a build of the same
    # content replaces. Files first would leave a row pointing at missing files: a dataset that lies.
    try:
        gone = ws.store.datasets.delete(dataset_id)
    except IntegrityError:  # a job started on it between our check and the delete
        raise UserError(f"Dataset {dataset_id} was just used by a new job (list_jobs shows it); it is kept. Nothing was deleted.") from None
    if not gone:
        raise NotFoundError(f"Dataset {dataset_id!r} not found (deleted meanwhile?). Call list_datasets to see stored datasets.")
    removed = False
    if inside and folder.is_dir():
        # Renamed first, so a removal cut short never leaves a half-empty folder under the dataset's own name.
        doomed = folder.with_name(f".deleted-{folder.name}-{os.getpid()}")
        os.replace(folder, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        removed = not doomed.exists()
    notes = []
    if not inside:
        notes.append(f"its folder {folder} is outside the data home's datasets folder and was left alone")
    elif not removed and folder.parent.is_dir():
        notes.append("some files could not be removed; `model-customization doctor` lists what is left")
    if others:
        notes.append(f"still named by {'; '.join(others)}")
    return {
        "dataset_id": dataset_id,
        "name": row["name"],
        "deleted": True,
        "files_removed": removed,
        "bytes_freed": size if removed else 0,
        "forced": bool(others),
        "notes": notes,
    }
