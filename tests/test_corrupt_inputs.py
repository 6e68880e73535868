"""Corrupt memory files: every broken file or line is reported with file:line, the rest is kept, nothing crashes.

Checked through both entry points: `iter_memory` (the importer registry) and `build_dataset` (result.problems,
problem_count and the counts of kept examples).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import time
from pathlib import Path

import pytest

from model_customization.datasets.build import SPLITS, build_dataset
from model_customization.errors import UserError
from model_customization.memory.detect import SUPPORTED_FORMATS, iter_memory
from model_customization.memory.records import Conversation, ImportProblem

PROBLEM_RE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<message>.*)$", re.S)
TEN_MB = 10 * 1024 * 1024


# ---------------------------------------------------------------------------------------------------------------- helpers


WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec "
    "romeo sierra tango uniform victor whiskey xray yankee zulu amber basalt cobalt dune ember fjord granite "
    "harbor island jasper kelp lagoon meadow nectar orchid pebble quartz river saffron tundra umber violet"
).split()


def chat_line(tag: str) -> str:
    """One valid OpenAI chat JSONL line whose content is unique to `tag` (and far from any other: no near-duplicate)."""
    rng = random.Random(tag)
    words = lambda n: " ".join(rng.choice(WORDS) for _ in range(n))  # noqa: E731
    return json.dumps(
        {
            "messages": [
                {"role": "user", "content": f"question {tag}: {words(12)}"},
                {"role": "assistant", "content": f"answer {tag}: {words(12)}"},
            ]
        }
    )


def run(paths: list[Path]) -> tuple[list[Conversation], list[ImportProblem]]:
    conversations, problems = [], []
    for record in iter_memory(paths):
        if isinstance(record, ImportProblem):
            problems.append(record)
        else:
            assert isinstance(record, Conversation), record
            conversations.append(record)
    return conversations, problems


def parse_problem(text: str) -> tuple[str, int, str]:
    match = PROBLEM_RE.match(text)
    assert match, f"problem without file:line: {text!r}"
    return match["file"], int(match["line"]), match["message"]


def total(result) -> int:
    return sum(result.counts[s] for s in SPLITS)


def demo_claude_files(demo_paths: list[Path]) -> list[Path]:
    """Claude Code demo transcripts of exactly four lines: user, assistant tool_use, user tool_result, answer."""
    files = []
    for path in sorted(demo_paths[0].glob("*.jsonl")):
        types = [json.loads(line)["type"] for line in path.read_bytes().splitlines()]
        if types == ["user", "assistant", "user", "assistant"]:
            files.append(path)
    assert len(files) >= 6
    return files


# ------------------------------------------------------------------------------------------------------ truncated JSON lines


def write_truncated_jsonl(path: Path) -> None:
    lines = [chat_line(f"t{i}") for i in range(1, 7)]
    lines[2] = lines[2][: len(lines[2]) // 2]  # line 3: cut in the middle of the object
    lines[5] = lines[5][:-7]  # line 6, the last one: cut mid-object, no newline after it
    path.write_text("\n".join(lines), encoding="utf-8")


def test_truncated_jsonl_lines_are_reported_at_their_lines(tmp_path: Path, ws) -> None:
    file = tmp_path / "mem" / "chat.jsonl"
    file.parent.mkdir()
    write_truncated_jsonl(file)

    conversations, problems = run([file])
    assert [(p.file, p.line) for p in problems] == [(str(file), 3), (str(file), 6)]
    assert all(p.message.startswith("invalid JSON") for p in problems)
    assert [c.source_line for c in conversations] == [1, 2, 4, 5]
    assert [c.messages[-1].content.split(":")[0] for c in conversations] == ["answer t1", "answer t2", "answer t4", "answer t5"]

    result = build_dataset(ws, [file.parent])
    assert result.problem_count == 2
    assert [parse_problem(p)[:2] for p in result.problems] == [(str(file), 3), (str(file), 6)]
    assert total(result) == 4


def test_truncated_line_error_points_at_the_column_where_the_line_ends(tmp_path: Path) -> None:
    cut = '{"messages": [{"role": "user",'
    file = tmp_path / "chat.jsonl"
    file.write_text(f"{chat_line('a')}\n{cut}\n{chat_line('b')}\n", encoding="utf-8")
    _, problems = run([file])
    assert [p.line for p in problems] == [2]
    assert f"(column {len(cut) + 1})" in problems[0].message, problems[0].message


# ------------------------------------------------------------------------------------------------------------ invalid UTF-8


def test_invalid_utf8_in_one_openai_line_costs_only_that_line(tmp_path: Path, ws) -> None:
    folder = tmp_path / "mem"
    folder.mkdir()
    file = folder / "chat.jsonl"
    lines = [chat_line(f"u{i}").encode() for i in range(1, 4)]
    lines[1] = lines[1].replace(b"question u2", b"question \xff\xfe u2")
    file.write_bytes(b"\n".join(lines) + b"\n")

    conversations, problems = run([file])
    assert [(p.file, p.line) for p in problems] == [(str(file), 2)]
    assert "invalid UTF-8" in problems[0].message
    assert [c.source_line for c in conversations] == [1, 3]

    result = build_dataset(ws, [folder])
    assert result.problem_count == 1
    assert parse_problem(result.problems[0])[:2] == (str(file), 2)
    assert total(result) == 2


def test_invalid_utf8_in_a_claude_code_transcript(tmp_path: Path, ws, demo_paths: list[Path]) -> None:
    source = demo_claude_files(demo_paths)[0]
    lines = source.read_bytes().splitlines(keepends=True)
    assert [json.loads(line)["type"] for line in lines] == ["user", "assistant", "user", "assistant"]
    folder = tmp_path / "mem"
    folder.mkdir()

    # (a) the final answer line (a leaf of the thread) is corrupt: it is reported, the thread up to it is kept.
    leaf = folder / "leaf.jsonl"
    broken = lines[:]
    broken[3] = broken[3].replace(b'"text":"', b'"text":"\xff\xfe', 1)
    assert broken[3] != lines[3]
    leaf.write_bytes(b"".join(broken))

    # (b) an extra corrupt line in the middle of an intact thread: reported, the whole conversation is kept.
    other = demo_claude_files(demo_paths)[1]
    other_lines = other.read_bytes().splitlines(keepends=True)
    middle = folder / "middle.jsonl"
    middle.write_bytes(b"".join(other_lines[:2] + [b'{"type":"summary","summary":"bad \xff\xfe bytes"}\n'] + other_lines[2:]))

    conversations, problems = run([leaf])
    assert [(p.file, p.line) for p in problems] == [(str(leaf), 4)]
    assert "invalid UTF-8" in problems[0].message
    assert len(conversations) == 1
    assert [m.role for m in conversations[0].messages] == ["user", "assistant", "tool"]

    conversations, problems = run([middle])
    assert [(p.file, p.line) for p in problems] == [(str(middle), 3)]
    assert "invalid UTF-8" in problems[0].message
    assert len(conversations) == 1
    assert [m.role for m in conversations[0].messages] == ["user", "assistant", "tool", "assistant"]
    assert conversations[0].messages[-1].content.startswith("TRIAGE ")

    result = build_dataset(ws, [folder])
    assert sorted(parse_problem(p)[:2] for p in result.problems) == [(str(leaf), 4), (str(middle), 3)]
    assert result.problem_count == 2
    assert total(result) == 2


# ----------------------------------------------------------------------------------------------------------- 10 MB lines


def test_ten_megabyte_lines(tmp_path: Path, ws) -> None:
    """No line-length limit is documented or enforced by the JSONL importers: a huge valid line is imported."""
    started = time.monotonic()
    folder = tmp_path / "mem"
    folder.mkdir()
    huge_content = "x" * TEN_MB
    huge = folder / "huge.jsonl"
    huge_line = json.dumps(
        {"messages": [{"role": "user", "content": "say x a lot"}, {"role": "assistant", "content": huge_content}]}
    )
    huge.write_text("\n".join([chat_line("h1"), huge_line, chat_line("h3")]) + "\n", encoding="utf-8")
    garbage = folder / "garbage.jsonl"
    garbage.write_text("\n".join([chat_line("g1"), "{" + "garbage " * (TEN_MB // 8), chat_line("g3")]) + "\n")
    binary_garbage = folder / "garbage_bytes.jsonl"
    binary_garbage.write_bytes(
        (chat_line("b1") + "\n").encode() + random.Random(3).randbytes(TEN_MB).replace(b"\n", b" ") + b"\n"
        + (chat_line("b3") + "\n").encode()
    )

    conversations, problems = run([folder])
    assert sorted((Path(p.file).name, p.line) for p in problems) == [("garbage.jsonl", 2), ("garbage_bytes.jsonl", 2)]
    by_file = {}
    for c in conversations:
        by_file.setdefault(Path(c.source_file).name, []).append(c.source_line)
    assert by_file == {"garbage.jsonl": [1, 3], "garbage_bytes.jsonl": [1, 3], "huge.jsonl": [1, 2, 3]}
    big = next(c for c in conversations if c.source_file == str(huge) and c.source_line == 2)
    assert big.messages[-1].content == huge_content

    result = build_dataset(ws, [folder])
    assert result.problem_count == 2
    assert total(result) == 7
    assert result.dropped == {}
    elapsed = time.monotonic() - started
    assert elapsed < 20, f"10 MB lines took {elapsed:.1f} s"  # ~5 s measured; the ceiling catches quadratic blow-ups


# ---------------------------------------------------------------------------------------------------------- binary files


def test_binary_files_are_one_problem_each(tmp_path: Path, ws) -> None:
    folder = tmp_path / "mem"
    folder.mkdir()
    noise = folder / "noise.jsonl"
    noise.write_bytes(random.Random(0).randbytes(64 * 1024))
    png = folder / "picture.json"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + random.Random(1).randbytes(4096))
    good = folder / "good.jsonl"
    good.write_text("\n".join(chat_line(f"bin{i}") for i in range(4)) + "\n", encoding="utf-8")

    conversations, problems = run([folder])
    assert sorted((p.file, p.line) for p in problems) == sorted([(str(noise), 0), (str(png), 0)])
    by_file = {p.file: p.message for p in problems}
    assert "not a recognised memory format" in by_file[str(noise)]
    assert "not a JSON document" in by_file[str(png)]  # a .json name that is not even text
    assert [c.source_line for c in conversations] == [1, 2, 3, 4]

    result = build_dataset(ws, [folder])
    assert result.problem_count == 2
    assert sorted(parse_problem(p)[:2] for p in result.problems) == sorted([(str(noise), 0), (str(png), 0)])
    assert total(result) == 4


# ----------------------------------------------------------------------------------------------------------- empty files


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty.jsonl", b""),
        ("blank.jsonl", b"  \n\t\r\n\n   "),
        ("empty.json", b""),
        ("blank.json", b"\n \n\t"),
        ("empty.af", b""),
        ("blank.traj", b"\r\n"),
    ],
)
def test_empty_files_are_reported_as_empty(tmp_path: Path, name: str, data: bytes) -> None:
    file = tmp_path / name
    file.write_bytes(data)
    conversations, problems = run([file])
    assert conversations == []
    assert [(p.file, p.line, p.message) for p in problems] == [(str(file), 0, "empty file")]


# ------------------------------------------------------------------------------------------------- truncated JSON document


def json_error_line(path: Path) -> int:
    """The line where a cut-off JSON document stops parsing, worked out with the json module itself."""
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        return error.lineno
    raise AssertionError(f"{path} parses")


def truncated_documents(tmp_path: Path) -> list[Path]:
    chatgpt = [
        {
            "title": "t",
            "create_time": 1.0,
            "mapping": {
                "root": {"id": "root", "message": None, "parent": None, "children": ["a"]},
                "a": {
                    "id": "a",
                    "parent": "root",
                    "children": [],
                    "message": {"id": "a", "author": {"role": "user"}, "content": {"parts": ["hi"]}},
                },
            },
        }
    ]
    pretty = json.dumps(chatgpt, indent=2)
    one_line = json.dumps({"agents": [{"name": "x", "messages": [{"role": "user", "text": "hi"}]}]})
    files = {
        "conversations.json": pretty[: len(pretty) * 2 // 3],  # pretty-printed, cut
        "agent.af": one_line[:-10],  # single line, cut
        "run.traj": '{"trajectory": [{"action": "ls", "observation": "fi',
        "messages.json": '[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"',
    }
    paths = []
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def test_truncated_json_document_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    for path in truncated_documents(tmp_path):
        conversations, problems = run([path])
        assert conversations == []
        # Reported where the JSON stops parsing, so the user can find the cut.
        assert [(p.file, p.line) for p in problems] == [(str(path), json_error_line(path))], path.name
        assert problems[0].message


def test_truncated_json_document_problem_says_the_json_is_invalid(tmp_path: Path) -> None:
    for path in truncated_documents(tmp_path):
        _, problems = run([path])
        assert "invalid JSON" in problems[0].message, problems[0].message


# ------------------------------------------------------------------------------------------------------ deeply nested JSON


def test_deeply_nested_jsonl_line_is_a_line_problem(tmp_path: Path) -> None:
    file = tmp_path / "chat.jsonl"
    file.write_text(f"{chat_line('d1')}\n{'[' * 100_000}\n{chat_line('d3')}\n", encoding="utf-8")
    conversations, problems = run([file])
    assert [(p.file, p.line) for p in problems] == [(str(file), 2)]
    assert [c.source_line for c in conversations] == [1, 3]


def test_deeply_nested_json_document_is_a_file_problem(tmp_path: Path) -> None:
    file = tmp_path / "deep.json"
    file.write_text("[" * 100_000, encoding="utf-8")
    conversations, problems = run([file])
    assert conversations == []
    assert [(p.file, p.line) for p in problems] == [(str(file), 0)]


# ------------------------------------------------------------------------------------------------- a folder of everything


def make_mixed_folder(folder: Path, demo_paths: list[Path]) -> tuple[list[Path], int, set[tuple[str, int]]]:
    """Good demo files plus every kind of corrupt file.

    Returns (the good demo files copied, the number of valid lines inside the corrupt files, the expected
    (file name, line) problems).
    """
    folder.mkdir(parents=True)
    claude = demo_claude_files(demo_paths)
    good = [*claude[2:6], demo_paths[1] / "triage_sessions.jsonl"]
    for path in good:
        shutil.copy(path, folder / path.name)

    expected: set[tuple[str, int]] = set()
    extra = 0

    write_truncated_jsonl(folder / "truncated.jsonl")
    expected |= {("truncated.jsonl", 3), ("truncated.jsonl", 6)}
    extra += 4

    lines = [chat_line(f"mixed-u{i}").encode() for i in range(1, 4)]
    lines[1] = lines[1].replace(b"question", b"\xff\xfequestion")
    (folder / "utf8.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    expected.add(("utf8.jsonl", 2))
    extra += 2

    cc_lines = claude[0].read_bytes().splitlines(keepends=True)
    cc_lines[3] = cc_lines[3].replace(b'"text":"', b'"text":"\xff\xfe', 1)
    (folder / "claude-broken-leaf.jsonl").write_bytes(b"".join(cc_lines))
    expected.add(("claude-broken-leaf.jsonl", 4))
    extra += 1

    (folder / "noise.jsonl").write_bytes(random.Random(5).randbytes(8192))
    (folder / "image.json").write_bytes(b"\x89PNG\r\n\x1a\n" + random.Random(6).randbytes(2048))
    (folder / "empty.jsonl").write_bytes(b"")
    (folder / "blank.json").write_bytes(b"  \n ")
    expected |= {("noise.jsonl", 0), ("image.json", 0), ("empty.jsonl", 0), ("blank.json", 0)}
    sub = folder / "nested"
    sub.mkdir()
    for path in truncated_documents(sub):
        expected.add((f"nested/{path.name}", json_error_line(path)))
    return good, extra, expected


def test_mixed_folder_keeps_good_data_and_reports_every_bad_piece(tmp_path: Path, ws, demo_paths: list[Path]) -> None:
    folder = tmp_path / "mixed"
    good, extra, expected = make_mixed_folder(folder, demo_paths)

    good_only = tmp_path / "good-only"
    good_only.mkdir()
    for path in good:
        shutil.copy(path, good_only / path.name)
    baseline = build_dataset(ws, [good_only])
    assert baseline.problem_count == 0
    good_conversations = sum(1 for r in iter_memory([good_only]) if isinstance(r, Conversation))
    assert total(baseline) == good_conversations == 4 + 80

    result = build_dataset(ws, [folder])
    assert result.counts == {s: result.counts[s] for s in SPLITS}
    assert total(result) == good_conversations + extra
    assert result.dropped == {}
    assert result.problem_count == len(expected) == len(result.problems)
    reported = set()
    for text in result.problems:
        file, line, message = parse_problem(text)
        assert Path(file).is_absolute() and Path(file).is_relative_to(folder.resolve()), file
        assert message
        reported.add((Path(file).relative_to(folder.resolve()).as_posix(), line))
    assert reported == expected

    again = build_dataset(ws, [folder])
    assert again.dataset_id == result.dataset_id
    assert again.already_existed
    assert again.counts == result.counts
    assert again.problem_count == result.problem_count

    # Content-addressed: the same files somewhere else make the same dataset.
    elsewhere = tmp_path / "elsewhere" / "mixed"
    shutil.copytree(folder, elsewhere)
    assert build_dataset(ws, [elsewhere]).dataset_id == result.dataset_id


def make_only_corrupt_folder(folder: Path) -> None:
    folder.mkdir()
    # Sorted first: three line-level problems (truncated, unknown role, invalid UTF-8), so the message's first
    # problems carry no list of formats. Line 2 is readable JSON, which is what identifies the file as OpenAI chat.
    (folder / "a-broken.jsonl").write_bytes(
        chat_line("x")[:20].encode()
        + b'\n{"messages": [{"role": "wizard", "content": "hi"}]}\n'
        + chat_line("y").encode().replace(b"question", b"\xff question")
        + b"\n"
    )
    (folder / "b-noise.jsonl").write_bytes(random.Random(9).randbytes(4096))
    (folder / "c-empty.json").write_bytes(b"")
    (folder / "d-image.json").write_bytes(b"\x89PNG\r\n\x1a\n" + random.Random(10).randbytes(512))


def test_folder_of_only_corrupt_files_is_a_user_error(tmp_path: Path, ws) -> None:
    folder = tmp_path / "corrupt"
    make_only_corrupt_folder(folder)
    # Not even a line of it is readable by iter_memory, but it must not raise either.
    conversations, problems = run([folder])
    assert conversations == [] and len(problems) == 6

    with pytest.raises(UserError) as info:
        build_dataset(ws, [folder])
    message = str(info.value)
    assert "No usable examples" in message
    assert "6 unreadable" in message
    broken = str((folder / "a-broken.jsonl").resolve())
    assert f"{broken}:1: invalid JSON" in message
    assert f"{broken}:2: message 1: unknown role 'wizard'" in message
    assert f"{broken}:3: invalid UTF-8" in message
    for fmt in SUPPORTED_FORMATS:  # what is expected
        assert fmt in message, fmt
    assert ws.store.datasets.all() == []
