"""Reading memory files, shared by every importer: JSON Lines line by line, whole JSON documents, and the one error
type for a record that cannot be used.

An importer raises RecordError for a bad record (a line, a conversation, an agent, a span); the reader turns it into
an ImportProblem with the file and line, so one bad record never costs the rest of a file.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import orjson

from model_customization.paths import iter_limited_lines, memory_limits, overlong_line_message
from model_customization.reading_limits import open_regular_file, read_regular_bytes

from .records import ImportProblem

T = TypeVar("T")


class RecordError(ValueError):
    """A problem with one record; its message goes into the ImportProblem verbatim (after the reader's prefix)."""


def json_type(value: Any) -> str:
    """A JSON value's type in words, for messages: "a list", "an object", "null"..."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def read_text(path: Path) -> str:
    """A whole file as text (UTF-8, a byte-order mark dropped); UnicodeDecodeError when it is not UTF-8."""
    # Only a regular file within the memory limit, checked on the descriptor opened (reading_limits.py): a file swapped
    # for a FIFO, or for a link out of the allowed roots, since it was judged is refused, not read.
    return read_regular_bytes(path, what="Memory file", fenced=True).decode("utf-8-sig")


def read_json_document(path: Path) -> tuple[Any, ImportProblem | None]:
    """(the parsed file, None), or (None, the problem that stops it being read, at the line JSON reports)."""
    try:
        return json.loads(read_text(path)), None
    except UnicodeDecodeError as exc:
        return None, ImportProblem(str(path), 0, f"invalid UTF-8 at byte {exc.start}")
    except json.JSONDecodeError as exc:
        return None, ImportProblem(str(path), exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})")


def iter_lines(path: Path, data: bytes | None = None) -> Iterator[tuple[int, bytes] | ImportProblem]:
    """(line number, bytes) for each non-blank line of a file (or of `data`, its bytes already read); an ImportProblem
    for a line over the size limit, which is skipped without being held in memory whole.

    Binary reading with per-line decoding: one line of invalid UTF-8 must not cost the other lines of the file."""
    max_line_bytes = memory_limits().max_line_bytes
    with (io.BytesIO(data) if data is not None else open_regular_file(path, what="Memory file", fenced=True)) as handle:
        for line_no, raw in iter_limited_lines(handle, max_line_bytes):
            if isinstance(raw, int):
                yield ImportProblem(str(path), line_no, overlong_line_message(raw, max_line_bytes))
            elif raw.strip():
                yield line_no, raw


# orjson reads a line about twice as fast as json, and to the same objects, except where it refuses what json reads
# (NaN, 1e400, lone surrogate escapes, a byte-order mark: then json reads it) and for integers beyond 64 bits, which
# it reads as floats: a line with a run of 19 digits or more (anywhere, a string's included) is read by json. The
# runs are found by mapping every digit to "0" and anything else to " " (a regex search took four times orjson's time).
_DIGITS_ONLY = bytes(ord("0") if chr(byte).isdigit() and byte < 128 else ord(" ") for byte in range(256))
_LONG_DIGIT_RUN = b"0" * 19


def parse_json_line(raw: bytes, line_no: int) -> dict[str, Any]:
    """Decode and parse one JSONL line into an object, or raise RecordError saying what was wrong."""
    if _LONG_DIGIT_RUN not in raw.translate(_DIGITS_ONLY):
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # json reads it, or says what is wrong as it always has
        else:
            if not isinstance(obj, dict):
                raise RecordError(f"expected a JSON object, got {json_type(obj)}")
            return obj
    try:
        # A byte-order mark is only legitimate at the very start of the file.
        text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"invalid UTF-8 at byte {exc.start} of the line") from None
    try:
        obj = json.loads(text.rstrip("\r\n"))  # without the newline, so a cut-off line reports its own column
    except json.JSONDecodeError as exc:
        raise RecordError(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise RecordError("invalid JSON: nested too deeply to read") from None
    if not isinstance(obj, dict):
        raise RecordError(f"expected a JSON object, got {json_type(obj)}")
    return obj


def iter_json_lines(path: Path, data: bytes | None = None) -> Iterator[tuple[int, dict[str, Any]] | ImportProblem]:
    """(line number, object) for each readable line of a JSON Lines file; an ImportProblem for each other line.
    Blank lines are skipped."""
    return read_json_lines(path, lambda obj, line_no: (line_no, obj), data=data)


def read_json_lines(
    path: Path,
    read: Callable[[dict[str, Any], int], T | None],
    *,
    prefix: Callable[[int], str] | None = None,
    data: bytes | None = None,
) -> Iterator[T | ImportProblem]:
    """What `read(object, line number)` makes of each readable line (None: nothing), or an ImportProblem for a line
    that cannot be read, or that `read` refuses with RecordError: `prefix(line number)` starts that problem's message.
    `data`: the file's bytes, when they were read already."""
    for item in iter_lines(path, data):
        if isinstance(item, ImportProblem):
            yield item
            continue
        line_no, raw = item
        try:
            obj = parse_json_line(raw, line_no)
        except RecordError as exc:
            yield ImportProblem(str(path), line_no, str(exc))
            continue
        try:
            record = read(obj, line_no)
        except RecordError as exc:
            yield ImportProblem(str(path), line_no, f"{prefix(line_no) if prefix else ''}{exc}")
            continue
        if record is not None:
            yield record
