"""Inputs from real machines that once stopped a build: a file name that is not UTF-8, and a folder that holds the
data home itself."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from model_customization.datasets.build import build_dataset, unicode_safe
from model_customization.workspace import Workspace


def _chats(path: Path, tag: str, n: int = 12) -> None:
    rows = [{"messages": [{"role": "user", "content": f"{tag} question {i}"}, {"role": "assistant", "content": f"{tag} answer {i}"}]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_unicode_safe_writes_what_utf8_cannot_hold_as_escapes() -> None:
    assert unicode_safe("plain") == "plain"
    assert unicode_safe("naïve ✓") == "naïve ✓"
    assert unicode_safe(os.fsdecode(b"chats\xff.jsonl")) == "chats\\xff.jsonl"  # the bytes of a non-UTF-8 name
    assert unicode_safe("half \ud83d emoji") == "half \\ud83d emoji"  # a lone surrogate from a JSON escape
    assert unicode_safe({os.fsdecode(b"k\xfe"): [os.fsdecode(b"v\xfd"), 3, None]}) == {"k\\xfe": ["v\\xfd", 3, None]}


@pytest.mark.skipif(sys.platform != "linux", reason="file names of arbitrary bytes are a Linux file system's")
@pytest.mark.parametrize("workers", [1, 2])
def test_a_file_name_that_is_not_utf8_is_read_and_shown_escaped(tmp_path: Path, workers: int) -> None:
    folder = tmp_path / "memory"
    folder.mkdir()
    _chats(Path(os.fsdecode(bytes(folder) + b"/chats\xff.jsonl")), "odd")
    _chats(folder / "other.jsonl", "plain")
    ws = Workspace.open(tmp_path / "home")
    try:
        result = build_dataset(ws, [folder], workers=workers)
        assert sum(result.counts.values()) == 24  # the file was read, not skipped
        card_text = (ws.settings.datasets_dir / result.dataset_id / "card.json").read_text(encoding="utf-8")
        assert "chats\\\\xff.jsonl" in card_text  # json's escape of the backslash: the card says chats\xff.jsonl
        assert ws.store.datasets.get(result.dataset_id)["card"]["sources"][0]["path"].endswith("chats\\xff.jsonl")
    finally:
        ws.store.close()


def test_a_walked_folder_holding_the_data_home_does_not_read_it(tmp_path: Path) -> None:
    # A project folder with the data home inside it (or ~ with the default home): earlier datasets and the build's
    # own work files are not memory. The walk passes the home over and says so.
    project = tmp_path / "project"
    project.mkdir()
    _chats(project / "chats.jsonl", "memory")
    home = project / ".model-customization"
    ws = Workspace.open(home)
    try:
        first = build_dataset(ws, [project])
        assert sum(first.counts.values()) == 12
        assert not first.problems  # no work file of the build read as memory
        second = build_dataset(ws, [project])  # the home now holds a dataset of 12 examples
        assert second.dataset_id == first.dataset_id and sum(second.counts.values()) == 12
        assert any(str(home) in line and "data home" in line for line in second.skipped)
    finally:
        ws.store.close()


def test_the_local_gate_and_the_files_api_refuse_a_lone_surrogate_instead_of_crashing(ws, tmp_path: Path, monkeypatch) -> None:
    # A local model's tokenizer cannot read a lone surrogate (it raised a TypeError from inside the gate): the row
    # is an error naming its line; the other rows are measured as usual.
    from model_customization.datasets.inspect import inspect_dataset
    from model_customization.serving.files import FileProblem, check_training_file

    rows = [{"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]} for i in range(12)]
    lines = [json.dumps(r) for r in rows]
    lines[4] = lines[4].replace("question 4", "question \\ud83d 4")
    file = tmp_path / "chats.jsonl"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setenv("MODEL_CUSTOMIZATION_ALLOWED_ROOTS", str(tmp_path))
    report = inspect_dataset(ws, path=str(file), provider="local")
    assert [(f["line"], f["code"]) for f in report["findings"] if f["severity"] == "error"] == [(5, "not_unicode")]
    assert "\\ud83d" in next(f["message"] for f in report["findings"] if f["code"] == "not_unicode")
    assert report["token_stats"]["train"]["examples"] == 11
    with pytest.raises(FileProblem, match=r"line 5: a string holds a lone surrogate"):
        check_training_file(ws, "chats.jsonl", file.read_bytes())
