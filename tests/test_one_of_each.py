"""The shared helpers the importers, the evaluation and the export use instead of their own copies: publishing a
folder whole (storage.atomic_folder), the JSON Lines reader and its one bad-record error (memory.reading), and the
timestamp conversions (timestamps)."""

from __future__ import annotations

import json
import stat

import pytest

from model_customization.memory.reading import RecordError, iter_json_lines, read_json_document, read_json_lines
from model_customization.memory.records import ImportProblem
from model_customization.storage import atomic_folder, atomic_write
from model_customization.timestamps import epoch_to_iso, nanos_to_iso, utc_iso


# --- storage -------------------------------------------------------------------------------------------------
def test_atomic_folder_replaces_a_folder_whole_and_leaves_nothing_beside_it(tmp_path):
    target = tmp_path / "out"
    with atomic_folder(target) as staging:
        (staging / "a.txt").write_text("first")
    with atomic_folder(target, mode=0o755) as staging:
        (staging / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_folder_keeps_the_old_folder_when_writing_fails(tmp_path):
    target = tmp_path / "out"
    with atomic_folder(target) as staging:
        (staging / "kept.txt").write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_folder(target) as staging:
            (staging / "half.txt").write_text("half")
            raise RuntimeError("disk full")
    assert (target / "kept.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_write_replaces_a_file(tmp_path):
    path = tmp_path / "report.md"
    atomic_write(path, b"one")
    atomic_write(path, b"two")
    assert path.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


# --- memory.reading ------------------------------------------------------------------------------------------
def test_read_json_lines_reports_unreadable_lines_and_refused_records_at_their_lines(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_bytes(b'{"n": 1}\n\n{"n": \n[1]\n{"n": -1}\n\xff\n{"n": 2}\n')

    def read(obj, line_no):
        if obj["n"] < 0:
            raise RecordError("n must not be negative")
        return (line_no, obj["n"])

    items = list(read_json_lines(path, read, prefix=lambda line_no: f"record #{line_no}: "))
    records = [i for i in items if not isinstance(i, ImportProblem)]
    problems = {p.line: p.message for p in items if isinstance(p, ImportProblem)}
    assert records == [(1, 1), (7, 2)]
    assert problems[3].startswith("invalid JSON")  # not the reader's record: no prefix
    assert problems[4] == "expected a JSON object, got a list"
    assert problems[5] == "record #5: n must not be negative"
    assert problems[6].startswith("invalid UTF-8")
    assert list(iter_json_lines(path, data=b'{"a": 1}\n'))[0] == (1, {"a": 1})


def test_read_json_document_says_where_a_document_breaks(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text('[\n  {"a": 1},\n  {"a": \n]')
    doc, problem = read_json_document(path)
    assert doc is None and problem is not None and problem.line == 4 and problem.message.startswith("invalid JSON")
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"a": 1}).encode())
    assert read_json_document(path) == ({"a": 1}, None)


# --- timestamps ----------------------------------------------------------------------------------------------
def test_timestamps():
    assert utc_iso(0) == "1970-01-01T00:00:00+00:00"
    assert utc_iso(1.5, timespec="milliseconds", zulu=True) == "1970-01-01T00:00:01.500Z"
    assert epoch_to_iso("yesterday") is None and epoch_to_iso(True) is None and epoch_to_iso(1e30) is None
    assert nanos_to_iso("1700000000123456789") == "2023-11-14T22:13:20.123456Z"
    assert nanos_to_iso(0) is None and nanos_to_iso(None) is None and nanos_to_iso(10**40) is None
