"""Exact token counts offline: OpenAI's encodings through bpe-openai (it ships the BPE files tiktoken would
download), and the local model's own tokenizer for local jobs."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from model_customization.errors import UserError

# Chat formatting overhead as OpenAI counts it for chat models: a few tokens around every message and three
# that prime the reply (the constants of OpenAI's own counting recipe for gpt-3.5/4-family chat formats).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3
_CHUNK_CHARS = 200_000  # bpe-openai refuses one input of more than 200k tokens; count long texts in pieces


def encoding_name_for(model: str) -> str:
    """o200k for the gpt-4o / gpt-4.1 / o-series families, cl100k for gpt-4 and gpt-3.5."""
    name = model.lower()
    if name.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")):
        return "o200k_base"
    if name.startswith(("gpt-4", "gpt-3.5", "gpt-35", "babbage-002", "davinci-002")):
        return "cl100k_base"
    raise UserError(f"No tokenizer known for OpenAI model {model!r}. Use a gpt-4.1, gpt-4o or gpt-3.5-turbo model name.")


@lru_cache(maxsize=4)
def _encoding(name: str):
    import bpe_openai

    return bpe_openai.get_encoding(name)


_BINDINGS = "bpe_openai._bindings"
_bindings_lock = threading.Lock()


def _rust_bindings() -> Any:
    """bpe-openai's Rust extension module, loaded from the package's folder without running the package's
    __init__: that imports its compat module, which decodes the BPE tables of cl100k, o200k and voyage3 into Python
    dicts (0.75 CPU-s and 70 MB per process) only to read their special tokens, while counting needs none of them.
    The module is registered under its own name, so a later `import bpe_openai` uses it (a PyO3 module initialises
    once per process). Any surprise in the package's layout falls back to the plain import."""
    import importlib.machinery
    import importlib.util
    import sys

    with _bindings_lock:
        module = sys.modules.get(_BINDINGS)
        if module is not None:
            return module
        try:
            package = importlib.util.find_spec("bpe_openai")
            folders = list(package.submodule_search_locations or []) if package else []
            found = [Path(f) / f"_bindings{suffix}" for f in folders for suffix in importlib.machinery.EXTENSION_SUFFIXES]
            path = next(p for p in found if p.is_file())
            loader = importlib.machinery.ExtensionFileLoader(_BINDINGS, str(path))
            spec = importlib.util.spec_from_file_location(_BINDINGS, path, loader=loader)
            module = importlib.util.module_from_spec(spec)
            sys.modules[_BINDINGS] = module
            loader.exec_module(module)
            return module
        except Exception:
            sys.modules.pop(_BINDINGS, None)
        import bpe_openai._bindings as module

        return module


@lru_cache(maxsize=4)
def _counter(name: str):
    """The Rust tokenizer's count (the same BPE the encoding runs, without building the list of token ids in
    Python: about 40% less time than len(encode_ordinary(...)))."""
    bindings = _rust_bindings()
    if name not in bindings.supported_encodings():
        _encoding(name)  # refuses an unknown name the way get_encoding does
    # Not get_encoding's Python Encoding (the package import above, and 12 MB for o200k): only the rare fallbacks
    # of _count_piece need it.
    return bindings.tokenizer_for_encoding(name).count


# Counts of texts already counted, per encoding: system prompts, tool definitions and tool outputs repeat a lot in
# chat data, and looking a text up costs far less than encoding it again. Bounded by the characters it holds.
_CACHE_MAX_CHARS = 16_000_000
_cache: dict[str, dict[str, int]] = {}
_cache_chars = 0
# Long texts (a transcript's tool outputs, files read again) are remembered by a digest of the text instead, so that
# a few large texts seen once do not push everything else out of the cache above, and the memory held is per text,
# not per character. A 128-bit BLAKE2b digest: telling two texts apart as surely as the SHA-256 digests that find
# duplicate examples, at about a thirtieth of the tokenizer's time per character.
_LONG_TEXT_CHARS = 4096
_LONG_CACHE_MAX_TEXTS = 200_000
_long_cache: dict[str, dict[bytes, int]] = {}


def bound_count_caches(max_chars: int, max_long_texts: int) -> tuple[int, int]:
    """Hold at most max_chars characters of short texts and max_long_texts digests of long ones in this process's
    caches (emptied when full); returns the bounds before, to restore them. A build's token counting calls it: it
    counts far more distinct texts than the gate, and the defaults, sized for the gate's repeats, would hold about
    20 MB more per counting process (1 GB of transcripts measured at 307 MB summed PSS with them, 293 MB with 6M
    characters and 60k texts, at the same speed)."""
    global _CACHE_MAX_CHARS, _LONG_CACHE_MAX_TEXTS, _cache_chars
    before = _CACHE_MAX_CHARS, _LONG_CACHE_MAX_TEXTS
    _CACHE_MAX_CHARS, _LONG_CACHE_MAX_TEXTS = max_chars, max_long_texts
    if _cache_chars > max_chars:
        for counts in _cache.values():
            counts.clear()
        _cache_chars = 0
    if sum(map(len, _long_cache.values())) > max_long_texts:
        for digests in _long_cache.values():
            digests.clear()
    return before


def count_text(text: str, encoding: str) -> int:
    cache = _cache.get(encoding)
    if cache is None:
        cache = _cache[encoding] = {}
    if len(text) >= _LONG_TEXT_CHARS:
        return _count_long_text(text, encoding)
    known = cache.get(text)
    if known is not None:
        return known
    try:  # the common text: one call (a text this short is far below the tokenizer's limits)
        total = _counter(encoding)(text)
    except UnicodeEncodeError:
        total = _count_text(text, encoding)
    _remember(cache, text, total)
    return total


def _remember(cache: dict[str, int], text: str, total: int) -> None:
    global _cache_chars
    if _cache_chars + len(text) > _CACHE_MAX_CHARS:
        for counts in _cache.values():
            counts.clear()  # (in place: callers holding a cache dict keep the live one)
        _cache_chars = 0
    cache[text] = total
    _cache_chars += len(text)


# In a worker forked from a process that counts with others (a gate's pool, a build's fork server): the counts of
# long texts every worker of it has counted, so that a system prompt or a file read again is counted once in all,
# not once per worker (see share_long_counts).
_shared_counts: Any = None
SHARED_COUNT_SLOTS = 1 << 16  # 2 MB at most


def share_long_counts() -> None:
    """From now on this process, and those it forks, put and find long texts' counts in one shared table (a
    build's fork server: every worker it forks counts)."""
    global _shared_counts
    if _shared_counts is None:
        from model_customization.datasets.shared_digests import SharedCounts

        _shared_counts = SharedCounts(SHARED_COUNT_SLOTS)


def unshare_long_counts() -> None:
    """Back to this process's own counts; the shared table is freed."""
    global _shared_counts
    table, _shared_counts = _shared_counts, None
    if table is not None:
        table.close()


def _count_long_text(text: str, encoding: str) -> int:
    import hashlib

    cache = _long_cache.get(encoding)
    if cache is None:
        cache = _long_cache[encoding] = {}
    key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    total = cache.get(key)
    if total is None:
        shared = _shared_counts
        total = shared.get(key, encoding) if shared is not None else None
        if total is None:
            total = _count_text(text, encoding)
            if shared is not None:
                shared.put(key, encoding, total)
        if sum(map(len, _long_cache.values())) >= _LONG_CACHE_MAX_TEXTS:
            for counts in _long_cache.values():
                counts.clear()
        cache[key] = total
    return total


def _count_piece(piece: str, encoding: str) -> int:
    try:
        n = _counter(encoding)(piece)
    except UnicodeEncodeError:  # lone surrogates: encode_ordinary replaces them, and so its count does
        return len(_encoding(encoding).encode_ordinary(piece))
    if n > _PIECE_TOKEN_LIMIT:  # encode_ordinary refuses such a piece: keep its error
        return len(_encoding(encoding).encode_ordinary(piece))
    return n


_PIECE_TOKEN_LIMIT = 200_000  # bpe_openai's chunk limit (configuration.DEFAULT_CHUNK_LIMIT)


def _count_text(text: str, encoding: str) -> int:
    if len(text) <= _CHUNK_CHARS:
        return _count_piece(text, encoding)
    total, start = 0, 0
    while start < len(text):
        end = start + _CHUNK_CHARS
        if end < len(text):
            # Cut just before a whitespace run so no word is split (a split word would count as extra tokens).
            cut = text.rfind(" ", start, end)
            end = cut if cut > start else end
        total += _count_piece(text[start:end], encoding)
        start = end
    return total


def _message_text(message: dict[str, Any]) -> str:
    role, content = message.get("role", ""), message.get("content")
    if type(role) is str and (content is None or type(content) is str) and not message.get("tool_calls"):
        return role + "\n" + (content or "")  # the common message: the same text as the general case below
    parts = [str(message.get("role", "")), message.get("content") or ""]
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        parts += [str(function.get("name", "")), str(function.get("arguments", ""))]
    return "\n".join(p if isinstance(p, str) else str(p) for p in parts)


def count_chat_tokens(messages: list[dict[str, Any]], encoding: str, tools: list[dict[str, Any]] | None = None) -> int:
    """Tokens of one chat example as OpenAI's recipe counts them (tool definitions counted as their JSON text)."""
    import json

    total = REPLY_PRIMING_TOKENS
    cache = _cache.get(encoding)
    for message in messages:
        text = _message_text(message)
        n = None if cache is None else cache.get(text)  # (count_text's look-up, without its call for a known text)
        if n is None:
            n = count_text(text, encoding)
            cache = _cache[encoding]
        total += TOKENS_PER_MESSAGE + n
        if message.get("name"):
            total += TOKENS_PER_NAME
    if tools:
        total += count_text(json.dumps(tools, separators=(",", ":")), encoding)
    return total


def count_assistant_tokens(messages: list[dict[str, Any]], encoding: str) -> int:
    return sum(count_text(_message_text(m), encoding) for m in messages if m.get("role") == "assistant")


def chat_messages(row: dict[str, Any]) -> list[Any]:
    """The messages of a valid example that are counted: a preference example's input and both outputs."""
    from model_customization.datasets.render import is_preference

    if is_preference(row):
        return list(row["input"]["messages"]) + list(row["preferred_output"]) + list(row["non_preferred_output"])
    return list(row["messages"])


# Files at least this large are measured by a pool of worker processes when there are several cores (starting the
# pool costs tens of milliseconds); each worker reads ranges of whole lines of about BATCH_BYTES from the file itself.
PARALLEL_MIN_BYTES = 8 << 20
BATCH_BYTES = 1 << 20
# Towards the end of the work the ranges shrink (each a share of what is left, down to _MIN_RANGE_BYTES), so that the
# workers finish together rather than one waiting for the other's last megabyte.
_MIN_RANGE_BYTES = 64 << 10
_SCAN_BYTES = 64 << 10  # the parent finds the line ends in blocks of this size (ranges end at a block's last line)
_pool_job: tuple[str, Any, int] | None = None  # in a worker: (encoding, check, max_line_bytes), set as it starts


def _start_worker(encoding: str, check: Any, max_line_bytes: int, shared_counts: Any = None) -> None:
    global _pool_job, _shared_counts
    _pool_job = (encoding, check, max_line_bytes)
    _shared_counts = shared_counts  # its pool's own table (two gates in a server's threads each have theirs)


def _measure_row(split: str, line: int, row: Any, encoding: str, check: Any, digest: bytes | None = None) -> tuple[list[Any], bytes, int | None, list[Any]]:
    """(findings, digest, tokens or None when the row has an error, check's findings) for one parsed row; digest:
    its row_digest when the caller has it already."""
    from model_customization.datasets.validate import row_digest, row_findings

    if digest is None:
        digest = row_digest(row)
    n = _plain_chat_tokens(row, encoding)
    if n is not None:  # nothing for the format checks to find
        return [], digest, n, list(check(split, line, row, n)) if check is not None else []
    findings = row_findings(split, line, row)
    for finding in findings:
        if finding.severity == "error":
            return findings, digest, None, []
    n = count_chat_tokens(chat_messages(row), encoding, (row.get("input") or row).get("tools"))
    return findings, digest, n, list(check(split, line, row, n)) if check is not None else []


def _plain_chat_tokens(row: Any, encoding: str) -> int | None:
    """count_chat_tokens of a plain chat example, the common row: an object with only "messages", a non-empty list
    of messages with only role, content and name, a role other than tool and a non-empty text, among them a user
    and an assistant message. For such a row the format checks (validate.row_findings) find nothing, so they are
    not run; None for any other row, which is checked and counted the general way."""
    if type(row) is not dict or len(row) != 1:
        return None
    messages = row.get("messages")
    if type(messages) is not list or not messages:
        return None
    from model_customization.datasets.validate import PLAIN_MESSAGE_KEYS, PLAIN_MESSAGE_ROLES

    cache = _cache.get(encoding)
    total = REPLY_PRIMING_TOKENS
    user = assistant = False
    for message in messages:
        if type(message) is not dict or not message.keys() <= PLAIN_MESSAGE_KEYS:
            return None
        role, content = message.get("role"), message.get("content")
        if type(role) is not str or role not in PLAIN_MESSAGE_ROLES or type(content) is not str or not content:
            return None
        if role == "user":
            user = True
        elif role == "assistant":
            assistant = True
        text = role + "\n" + content  # _message_text's text for such a message
        n = None if cache is None else cache.get(text)
        if n is None:
            n = count_text(text, encoding)
            cache = _cache[encoding]
        total += TOKENS_PER_MESSAGE + n
        if message.get("name"):
            total += TOKENS_PER_NAME
    return total if user and assistant else None


def _read_range(descriptor: int, start: int, length: int) -> bytes:
    parts, done = [], 0
    while done < length:
        part = os.pread(descriptor, length - done, start + done)
        if not part:  # the file shrank since it was scanned: what is there
            break
        parts.append(part)
        done += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _range_lines(descriptor: int, start: int, length: int, first_line: int, max_line_bytes: int) -> Iterator[tuple[int, bytes | int]]:
    """(line number, line) for the lines of bytes [start, start + length) of an open file, split as
    paths.iter_limited_lines splits them (at b"\n" only, the newline kept; a line longer than max_line_bytes as its
    length, without the newline)."""
    import io

    line = first_line
    for raw in io.BytesIO(_read_range(descriptor, start, length)):
        length_without_newline = len(raw) - 1 if raw[-1:] == b"\n" else len(raw)
        yield line, (length_without_newline if length_without_newline > max_line_bytes else raw)
        line += 1


def _measure_range(split: str, descriptor: int, start: int, length: int, first_line: int) -> list[tuple[Any, ...]]:
    """In a worker: the lines of a range of a file this process inherited open (_range_lines), parsed and measured;
    ("problem", finding), ("row", split, line, findings, digest, tokens, check's findings), or nothing for a blank
    line."""
    from model_customization.datasets.validate import parse_line_digest

    assert _pool_job is not None
    encoding, check, max_line_bytes = _pool_job
    out: list[tuple[Any, ...]] = []
    for line, raw in _range_lines(descriptor, start, length, first_line, max_line_bytes):
        row, digest, problem = parse_line_digest(split, line, raw, max_line_bytes)
        if problem is not None:
            out.append(("problem", problem))
        elif row is not None:
            out.append(("row", split, line, *_measure_row(split, line, row, encoding, check, digest)))
    return out


def _line_ranges(split: str, descriptor: int, max_line_bytes: int, range_bytes: int | Callable[[int], int]) -> Iterator[tuple[Any, ...]]:
    """The file cut at line ends into ("range", split, descriptor, start, length, first line number) of about
    range_bytes each, in order; a line longer than max_line_bytes that does not lie inside one scanned block comes
    as ("overlong", split, line number, length) instead, so no worker ever holds it. Only newlines are looked for
    here (bytes.find and count): the lines themselves are read by the workers. range_bytes may be a function of the
    bytes scanned so far (ranges that shrink towards the end of the work)."""
    size_at = range_bytes if callable(range_bytes) else (lambda _position: range_bytes)
    position = 0  # bytes scanned
    range_start, range_line = 0, 1  # the pending range: its first byte and the number of its first line
    lines_in_range = 0  # complete lines between range_start and line_start
    line_start = 0  # first byte of the line being scanned

    def pending(end: int) -> Iterator[tuple[Any, ...]]:
        if end > range_start:
            yield ("range", split, descriptor, range_start, end - range_start, range_line)

    while True:
        block = os.pread(descriptor, _SCAN_BYTES, position)
        if not block:
            break
        first_newline = block.find(b"\n")
        if first_newline < 0:
            position += len(block)
            continue
        line_end = position + first_newline
        if line_end - line_start > max_line_bytes:
            yield from pending(line_start)
            yield ("overlong", split, range_line + lines_in_range, line_end - line_start)
            range_start, range_line, lines_in_range = line_end + 1, range_line + lines_in_range + 1, 0
        else:
            lines_in_range += 1
        last_newline = block.rfind(b"\n")
        lines_in_range += block.count(b"\n", first_newline + 1)
        line_start = position + last_newline + 1
        position += len(block)
        if line_start - range_start >= size_at(line_start):
            yield from pending(line_start)
            range_start, range_line, lines_in_range = line_start, range_line + lines_in_range, 0
    if position - line_start > max_line_bytes:  # a last line without a newline
        yield from pending(line_start)
        yield ("overlong", split, range_line + lines_in_range, position - line_start)
    else:
        yield from pending(position)


def _worker_count() -> int:
    import multiprocessing
    import os

    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


class ForkRefused(Exception):
    """The gate's workers could not be forked; nothing has been read yet, so the caller measures in this process."""


def _ready() -> None:
    """A task that does nothing: submitting it makes the pool fork its workers (all at once, with fork)."""


def _started_pool(executor: Any, context: Any, workers: int, job: tuple[Any, ...]) -> tuple[Any, Any]:
    """(a pool whose workers are already forked, the future of a first task that does nothing). A fork can be
    refused at that moment by a library's at-fork guard (filelock refuses while another thread of a server changes a
    descriptor's ownership): tried a few times, then ForkRefused, before any line of the file was read. The first
    task is not waited for here, so the workers start on the first ranges while they come up; its future says
    whether they did (a worker that died as it started breaks the pool)."""
    import random
    import time

    for attempt in range(4):
        pool = executor(workers, mp_context=context, initializer=_start_worker, initargs=job)
        try:
            return pool, pool.submit(_ready)  # forks every worker now, or raises
        except RuntimeError:
            from model_customization.datasets.pools import end_half_started_pool

            end_half_started_pool(pool)
            time.sleep(random.uniform(0.02, 0.1) * (attempt + 1))  # two gates forking at once: not in step again
    raise ForkRefused


def _parallel_results(rows: Any, encoding: str, check: Any) -> Iterator[tuple[Any, ...]]:
    """_measure_range's results for every range of lines of rows' files, in file order, from a pool of forked
    workers. The files are opened (and checked) here before the workers are forked, so each worker reads its ranges
    from the same open descriptors with pread: only offsets go to the workers, not lines. Forked, too, so that check,
    often a closure, reaches them without pickling, and the tokenizer loaded here is shared. At most two ranges per
    worker are in flight, so memory stays flat whatever the file's size."""
    import contextlib
    import gc
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    from model_customization.datasets.validate import Finding
    from model_customization.paths import overlong_line_message

    workers = _worker_count()
    _counter(encoding)  # loaded once here, before the fork, rather than in every worker
    with contextlib.ExitStack() as files:
        opened = [(split, files.enter_context(rows.open(file))) for split, file in rows.files]
        # Objects that exist now are left out of the workers' garbage collections: a collection writes to every
        # object it visits, which would copy the parent's memory into each worker page by page.
        gc.freeze()
        try:
            # Each pool's own job, given to its workers as they start (not a global set here: two gates may run at
            # once in a server's threads, and a worker may fork at any submit).
            # The workers give each other the counts of the long texts they count (a fork shares the table's pages).
            from model_customization.datasets.shared_digests import SharedCounts

            shared_counts = SharedCounts(SHARED_COUNT_SLOTS)
            files.callback(shared_counts.close)  # freed once the pool is done (the workers have their own mappings)
            job = (encoding, check, rows.max_line_bytes, shared_counts)
            pool, ready = _started_pool(ProcessPoolExecutor, multiprocessing.get_context("fork"), workers, job)

            def results_of(done: Any) -> list[Any]:
                nonlocal ready
                if ready is not None:  # before the first result is given: did the workers start?
                    try:
                        ready.result()
                    except RuntimeError:  # (BrokenProcessPool) nothing has been given yet: measured here instead
                        raise ForkRefused from None
                    ready = None
                return done if isinstance(done, list) else done.result()

            def submitted(item: tuple[Any, ...]) -> Any:
                try:
                    return pool.submit(_measure_range, *item[1:])
                except RuntimeError:  # (BrokenProcessPool) a worker died as it started
                    if ready is not None:
                        raise ForkRefused from None
                    raise

            with pool:
                pending: deque[Any] = deque()
                in_flight = 0
                left = sum(os.fstat(handle.fileno()).st_size for _, handle in opened)  # bytes not yet scanned

                def range_size(position: int) -> int:
                    return min(BATCH_BYTES, max(_MIN_RANGE_BYTES, (left - position) // (4 * workers)))

                for split, handle in opened:
                    for item in _line_ranges(split, handle.fileno(), rows.max_line_bytes, range_size):
                        if item[0] == "overlong":
                            _, split_, line, length = item
                            problem = Finding(split_, line, "error", "line_too_long", overlong_line_message(length, rows.max_line_bytes))
                            pending.append([("problem", problem)])
                        else:
                            pending.append(submitted(item))
                            in_flight += 1
                        while in_flight >= 2 * workers or (pending and isinstance(pending[0], list)):
                            done = pending.popleft()
                            if not isinstance(done, list):
                                in_flight -= 1
                            yield from results_of(done)
                    left -= os.fstat(handle.fileno()).st_size
                while pending:
                    yield from results_of(pending.popleft())
        finally:
            gc.unfreeze()


def measure_chat_rows(rows: Any, encoding: str, check: Any = None) -> tuple[list[Any], dict[str, int], dict[str, list[int]]]:
    """One pass over (split, line, row): each row is validated and, when it has no error, counted with `encoding`;
    no row is kept. check(split, line, row, tokens) returns more findings for a counted row (a provider's limits).

    rows from files (inspect.FileRows) of at least PARALLEL_MIN_BYTES are parsed and measured by worker processes
    when there are several cores, with the same findings in the same order: the workers return each row's findings,
    digest and count, and this process merges them in file order (duplicates need the view of the whole file).

    Returns (findings, counts per split, tokens per split); the validation findings come first, then check's."""
    from model_customization.datasets.validate import RowValidator

    validator = RowValidator()
    measured: list[Any] = []
    tokens: dict[str, list[int]] = {}

    def record(split: str, line: int, findings: list[Any], digest: bytes, n: int | None, extra: list[Any]) -> None:
        validator.record(split, line, findings, digest)
        if n is not None:
            tokens.setdefault(split, []).append(n)
            measured.extend(extra)

    parallel = hasattr(rows, "open") and _worker_count() > 1 and rows.total_bytes() >= PARALLEL_MIN_BYTES
    if parallel:
        try:
            for result in _parallel_results(rows, encoding, check):
                if result[0] == "problem":
                    rows.problems.append(result[1])
                else:
                    record(*result[1:])
        except ForkRefused:  # raised before the first batch: nothing recorded yet
            parallel = False
    if not parallel:
        for split, line, row in rows:
            record(split, line, *_measure_row(split, line, row, encoding, check))
    findings, counts = validator.finish()
    return findings + measured, counts, tokens
