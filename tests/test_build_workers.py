"""A dataset built by a pool of worker processes is the dataset one process builds: the same id, the same bytes."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from forking import refuse_every_second_fork

from model_customization.datasets import build
from model_customization.datasets.build import build_dataset
from model_customization.errors import UserError
from model_customization.workspace import Workspace

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "memory-samples"
TRAJECTORIES = Path(__file__).resolve().parent / "fixtures" / "trajectories"
SECRETS = {"aws": "AKIAIOSFODNN7EXAMPLQ", "github": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "email": "dana.whitfield@example.org"}


@pytest.fixture(scope="module")
def memory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Several source formats, exact and near copies, secrets and personal data."""
    folder = tmp_path_factory.mktemp("memory")
    shutil.copytree(SAMPLES / "claude-code", folder / "claude-code")
    shutil.copytree(SAMPLES / "openai-finetune", folder / "openai-finetune")
    shutil.copytree(SAMPLES / "sharegpt", folder / "sharegpt")
    shutil.copytree(TRAJECTORIES, folder / "trajectories")
    # An exact copy of a whole file, so every conversation in it is an exact duplicate of an earlier one.
    shutil.copy(SAMPLES / "openai-finetune" / "mlteam-ai_toy_chat_fine_tuning.jsonl", folder / "openai-finetune" / "zz-copy.jsonl")
    rows = []
    for i in range(12):
        words = " ".join(f"step{j} checks the deployment log for service {j % 5}" for j in range(30))
        rows.append({"messages": [
            {"role": "system", "content": "You are the on-call assistant."},
            {"role": "user", "content": f"Case {i}: key {SECRETS['aws']}, token {SECRETS['github']}, mail {SECRETS['email']}. {words}"},
            {"role": "assistant", "content": f"Rotate {SECRETS['aws']} now; I will call +44 20 7946 0958 from 10.4.12.9. {words}"},
        ]})
    rows.append(json.loads(json.dumps(rows[3])))
    rows[-1]["messages"][2]["content"] += " Done."  # a near copy of case 3
    (folder / "seeded.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def _built(home: Path, memory: Path, workers: int | None, **options: object) -> tuple[object, dict[str, bytes]]:
    ws = Workspace.open(home)
    try:
        result = build_dataset(ws, [memory], workers=workers, **options)
        folder = ws.settings.datasets_dir / result.dataset_id
        return result, {f.name: f.read_bytes() for f in sorted(folder.iterdir())}
    finally:
        ws.store.close()


@pytest.mark.parametrize("options", [{}, {"example_mode": "turns"}, {"method": "dpo"}, {"method": "kto"}, {"redact": False, "near_duplicate_threshold": None, "seed": 3}], ids=["sft", "turns", "dpo", "kto", "plain"])
def test_pool_builds_the_same_dataset_as_one_process(tmp_path: Path, memory: Path, monkeypatch: pytest.MonkeyPatch, options: dict) -> None:
    started = []
    start = build._Reader._start
    monkeypatch.setattr(build._Reader, "_start", lambda self: (started.append(self.workers), start(self))[1])

    alone, alone_files = _built(tmp_path / "one", memory, 1, **options)
    assert started == []  # one worker: no pool at all
    pooled, pooled_files = _built(tmp_path / "pool", memory, 3, **options)
    assert started == [3]

    assert pooled.dataset_id == alone.dataset_id
    assert pooled.counts == alone.counts and pooled.dropped == alone.dropped
    assert pooled_files == alone_files  # splits, card.json and card.md, byte for byte
    if options.get("method") == "kto":
        assert alone.card["kto"]["desirable"] > 0 and alone.card["kto"]["undesirable"] > 0
    if options.get("method") not in ("dpo", "kto"):
        assert alone.dropped.get("exact_duplicate", 0) >= 4  # the copied file
    if options == {}:
        assert alone.dropped.get("near_duplicate", 0) >= 1
        assert alone.card["redactions"]["secret"] > 0 and alone.card["redactions"]["email"] > 0
        stored = b"".join(alone_files[f"{s}.jsonl"] for s in ("train", "validation", "test")).decode()
        assert all(value not in stored for value in SECRETS.values())
        tokens = alone.card["token_stats"]["o200k_base"]
        assert [tokens[s]["examples"] for s in ("train", "validation", "test")] == [alone.counts[s] for s in ("train", "validation", "test")]


def test_forked_workers_leave_the_counting_to_this_process(tmp_path: Path, memory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers forked from the build process start before it loads the o200k tables: it counts each example it keeps,
    once (a dropped duplicate is never counted), and the card's statistics are those of one process."""
    _as_from_one_thread(monkeypatch)  # forked workers (a thread another test left would make it a fork server)
    counted: list[bytes] = []
    real = build._line_tokens
    monkeypatch.setattr(build, "_line_tokens", lambda line: (counted.append(line), real(line))[1])
    alone, alone_files = _built(tmp_path / "one", memory, 1)
    assert counted == []  # one process counts as it prepares
    pooled, pooled_files = _built(tmp_path / "pool", memory, 2)
    assert len(counted) == sum(pooled.counts.values()) and len(set(counted)) == len(counted)
    assert pooled_files["card.json"] == alone_files["card.json"]


def test_pool_from_a_process_with_threads_uses_a_fork_server(tmp_path: Path, memory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server builds from a thread: its pool must not fork a process that has other threads (a lock one of them
    holds would stay locked in the copy); it starts workers from a fork server and still builds the same bytes."""
    import concurrent.futures

    contexts = []

    real = concurrent.futures.ProcessPoolExecutor

    def spy(*args, **kwargs):
        contexts.append(kwargs["mp_context"].get_start_method())
        return real(*args, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", spy)
    monkeypatch.setattr(threading, "active_count", lambda: 2)
    counted: list[bytes] = []
    monkeypatch.setattr(build, "_line_tokens", lambda line: counted.append(line))
    alone, alone_files = _built(tmp_path / "one", memory, 1)
    pooled, pooled_files = _built(tmp_path / "pool", memory, 2)
    assert contexts == ["forkserver"]
    assert (pooled.dataset_id, pooled_files) == (alone.dataset_id, alone_files)
    assert counted == []  # the fork server's workers have the tables and count; this process never loads them


def test_the_fork_server_preloads_what_every_worker_needs() -> None:
    """The fork server's workers share the o200k tables, numpy and detect-secrets' plugins instead of each loading
    them (detect-secrets alone is ~12 MB and 0.15 s a worker)."""
    import subprocess
    import sys

    probe = (
        "import sys, model_customization.datasets.build_preload\n"
        "from model_customization.datasets import redaction, tokens\n"
        "print(redaction._detect_secrets_plugins.cache_info().currsize, tokens._counter.cache_info().currsize, 'numpy' in sys.modules,"
        " redaction._shared_clean is not None, tokens._shared_counts is not None)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "1", "True", "True", "True"]


def _read_and_probe_the_shared_table(unit):  # (at module level: the pool sends it to its workers by name)
    """A worker's read, with one more event: whether it had the table of clean texts and how many digests it held."""
    from model_customization.datasets import redaction

    events = _real_read_in_worker(unit)
    shared = redaction._shared_clean
    held = 0 if shared is None else sum(shared._table[at : at + 16] != bytes(16) for at in range(0, len(shared._table), 16))
    return [*events, ("format", f"probe {shared is not None} {held}")]  # rides into the card's formats


_real_read_in_worker = build._read_in_worker


def test_forked_workers_share_the_texts_they_found_clean(tmp_path: Path, memory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While its workers read, a build that redacts keeps the digests of clean texts in a table they share (a file
    read again in another session is scanned by one of them only); the table is freed with the pool."""
    from model_customization.datasets import redaction

    _as_from_one_thread(monkeypatch)
    monkeypatch.setattr(build, "_read_in_worker", _read_and_probe_the_shared_table)
    ws = Workspace.open(tmp_path / "home")
    try:
        result = build_dataset(ws, [memory], workers=2)
    finally:
        ws.store.close()
    probes = [key.split()[1:] for key in result.card["formats"] if key.startswith("probe ")]
    assert probes and all(shared == "True" for shared, _ in probes)
    assert max(int(held) for _, held in probes) > 0  # the workers wrote what they found clean into it
    assert redaction._shared_clean is None  # freed with the pool


def test_workers_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_CUSTOMIZATION_BUILD_WORKERS", "1")
    assert build.build_workers() == (1, True)
    assert build.build_workers(4) == (4, True)  # the argument wins
    monkeypatch.setenv("MODEL_CUSTOMIZATION_BUILD_WORKERS", "many")
    with pytest.raises(UserError, match="MODEL_CUSTOMIZATION_BUILD_WORKERS"):
        build.build_workers()
    monkeypatch.delenv("MODEL_CUSTOMIZATION_BUILD_WORKERS")
    workers, asked = build.build_workers()
    assert workers >= 1 and not asked  # by default: one per core, started once a build has read enough
    with pytest.raises(UserError):
        build.build_workers(0)


def test_the_workers_read_the_files_and_the_builder_only_merges(tmp_path: Path, memory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a pool, every file is parsed, redacted and hashed in a worker: this process reads none of them."""
    read_here: list[Path] = []
    real = build._unit_events

    def spy(unit, job):
        read_here.append(unit.path)
        return real(unit, job)

    monkeypatch.setattr(build, "_unit_events", spy)  # the workers forked later inherit it, but their lists are theirs
    _built(tmp_path / "one", memory, 1)
    files = len(read_here)
    assert files >= 10
    read_here.clear()
    _built(tmp_path / "pool", memory, 2)
    assert read_here == []


def test_a_large_file_read_here_between_pooled_ones_keeps_the_bytes(tmp_path: Path, memory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files over BIG_UNIT_BYTES are read in this process, record by record, after the pooled files before them
    are merged: the order, and so the dataset and its card, stay those of one process."""
    alone, alone_files = _built(tmp_path / "one", memory, 1)
    monkeypatch.setattr(build, "BIG_UNIT_BYTES", 20_000)  # a few of the sample files are larger
    sizes = [f.stat().st_size for f in memory.rglob("*") if f.is_file()]
    assert any(s > 20_000 for s in sizes) and any(s <= 20_000 for s in sizes)
    pooled, pooled_files = _built(tmp_path / "pool", memory, 2)
    assert (pooled.dataset_id, pooled_files) == (alone.dataset_id, alone_files)


@pytest.mark.parametrize("budget", ["count", "bytes"])
def test_files_in_flight_stay_within_their_bounds(tmp_path: Path, memory: Path, monkeypatch: pytest.MonkeyPatch, budget: str) -> None:
    """The pool is handed files ahead of the merging, up to IN_FLIGHT_PER_WORKER per worker while their input is
    under IN_FLIGHT_BYTES (what keeps memory flat), and always one per worker, however large: the same dataset."""
    alone, alone_files = _built(tmp_path / "one", memory, 1)
    monkeypatch.setattr(build, "IN_FLIGHT_PER_WORKER", 3)
    monkeypatch.setattr(build, "IN_FLIGHT_BYTES", 1 << 40 if budget == "count" else 1)
    seen: list[tuple[int, int]] = []
    real = build._Reader._next

    def spy(self):
        if self.pending and not isinstance(self.pending[0][0], list):
            seen.append((self.in_flight, self.in_flight_bytes))
        return real(self)

    monkeypatch.setattr(build._Reader, "_next", spy)
    pooled, pooled_files = _built(tmp_path / "pool", memory, 2)
    assert (pooled.dataset_id, pooled_files) == (alone.dataset_id, alone_files)
    assert len(seen) >= 10
    if budget == "count":
        assert max(files for files, _ in seen) == 6  # two workers, three each: not held back by the oldest file
    else:
        assert max(files for files, _ in seen) == 2  # over the byte budget: one file per worker
        assert all(size > 0 for _, size in seen)


def test_progress_is_reported_as_one_process_reports_it(tmp_path: Path, memory: Path) -> None:
    reports: dict[int, list[tuple[int, str]]] = {}
    for workers in (1, 2):
        ws = Workspace.open(tmp_path / str(workers))
        try:
            seen: list[tuple[int, str]] = []
            build_dataset(ws, [memory], workers=workers, progress=lambda n, message, seen=seen: seen.append((n, message)))
            reports[workers] = seen
        finally:
            ws.store.close()
    assert len(reports[1]) >= 10 and reports[2] == reports[1]


def _as_from_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build as the CLI does, from a process with one thread, so that the pool forks this process (and its patched
    functions): a thread another test left running would otherwise make it use a fork server."""
    monkeypatch.setattr(threading, "active_count", lambda: 1)


@pytest.mark.parametrize("workers", [1, 2])
def test_an_error_in_a_worker_names_the_file_and_line(tmp_path: Path, memory: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    import multiprocessing

    _as_from_one_thread(monkeypatch)

    real = build._prepare

    def failing(record, options, signal=None):
        if "Case 5:" in str(getattr(record, "messages", [None])[1:2]):
            raise ValueError("the hash table is full")
        return real(record, options, signal)

    monkeypatch.setattr(build, "_prepare", failing)
    before = {p.pid for p in multiprocessing.active_children()}
    ws = Workspace.open(tmp_path / "home")
    try:
        with pytest.raises(build.BuildReadError, match=r"ValueError while building from .*seeded\.jsonl, line 6: the hash table is full"):
            build_dataset(ws, [memory], workers=workers)
    finally:
        ws.store.close()
    assert [p for p in multiprocessing.active_children() if p.pid not in before] == []


def test_a_refused_fork_leaves_no_worker_behind_and_builds_in_this_process(tmp_path: Path, memory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A library's at-fork guard may refuse a fork halfway through starting the pool (filelock does while another
    thread changes a descriptor's ownership): the workers already forked are ended and the build goes on here."""
    import multiprocessing

    _as_from_one_thread(monkeypatch)

    alone, alone_files = _built(tmp_path / "one", memory, 1)
    before = {p.pid for p in multiprocessing.active_children()}
    forks = refuse_every_second_fork(monkeypatch)
    pooled, pooled_files = _built(tmp_path / "pool", memory, 2)
    assert len(forks) >= 6  # three pools, each with one worker forked and one refused, before going on alone
    assert [p for p in multiprocessing.active_children() if p.pid not in before] == []
    assert (pooled.dataset_id, pooled_files) == (alone.dataset_id, alone_files)


def test_default_workers_start_once_enough_is_planned_and_then_take_every_file(tmp_path: Path, memory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the default workers, a small import is read in this process (no pool to start); a large one is read
    wholly by the pool, the files planned before it started included, so this process never prepares a record."""
    alone, alone_files = _built(tmp_path / "one", memory, 1)
    read_here: list[Path] = []
    real = build._unit_events
    monkeypatch.setattr(build, "_unit_events", lambda unit, job: (read_here.append(unit.path), real(unit, job))[1])
    monkeypatch.setattr(build, "build_workers", lambda requested=None: (2, False))
    started = []
    start = build._Reader._start
    monkeypatch.setattr(build._Reader, "_start", lambda self: (started.append(self.workers), start(self))[1])

    monkeypatch.setattr(build, "POOL_AFTER_BYTES", 1 << 40)  # never reached: a small import
    small, small_files = _built(tmp_path / "small", memory, None)
    assert started == [] and len(read_here) >= 10

    read_here.clear()
    monkeypatch.setattr(build, "POOL_AFTER_BYTES", 60_000)  # reached after a few files
    large, large_files = _built(tmp_path / "large", memory, None)
    assert started == [2] and read_here == []
    assert (small.dataset_id, small_files) == (large.dataset_id, large_files) == (alone.dataset_id, alone_files)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_a_lone_surrogate_leaves_its_record_out_and_names_the_line(tmp_path: Path, workers: int, method: str) -> None:
    """JSON allows an escape like \\ud800 alone (half a character, often an emoji cut in two); no dataset line can hold
    it. The record is left out with a problem naming its file and line, and the build goes on with the others."""
    folder = tmp_path / "memory"
    folder.mkdir()
    for number in range(2):  # two files, so a pool of two has one each
        lines = []
        for i in range(12):
            text = f"file {number} case {i}: " + ("broken \ud83d here" if i == 4 else "fine") + " " + " ".join(f"w{number}x{i}x{j}" for j in range(20))
            if method == "sft":
                lines.append({"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": f"answer {number} {i}"}]})
            else:
                lines.append({
                    "input": {"messages": [{"role": "user", "content": f"question {number} {i}"}]},
                    "preferred_output": [{"role": "assistant", "content": text}],
                    "non_preferred_output": [{"role": "assistant", "content": f"worse {number} {i}"}],
                })
        (folder / f"part{number}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in lines), encoding="utf-8")
    assert "\\ud83d" in (folder / "part0.jsonl").read_text(encoding="utf-8")  # written as JSON writes it: an escape

    result, files = _built(tmp_path / "home", folder, workers, method=method)
    assert sum(result.counts.values()) == 22
    assert result.dropped.get(build.NOT_UNICODE) == 2
    named = [p for p in result.problems if "lone surrogate" in p and "\\ud83d" in p]
    assert [p.split(": ")[0] for p in named] == [f"{folder / 'part0.jsonl'}:5", f"{folder / 'part1.jsonl'}:5"]
    assert all(b"broken" not in body for body in files.values())


def test_a_forked_build_freezes_this_process_objects_while_its_workers_run_and_only_then(tmp_path: Path, memory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While forked workers share this process's pages, its own garbage collections must not write to them (a full
    collection after the fork copied them: 16-20 MB more PSS on a 52.9 MB build), so its objects are frozen out of them;
    after the build (or its failure) they are collected again as before, as a server that builds many times needs."""
    import gc

    _as_from_one_thread(monkeypatch)
    frozen_while_merging: list[int] = []
    before = gc.get_freeze_count()
    ws = Workspace.open(tmp_path / "home")
    real_next = build._Reader._next

    def next_and_look(self: Any) -> None:
        frozen_while_merging.append(gc.get_freeze_count())
        real_next(self)

    monkeypatch.setattr(build._Reader, "_next", next_and_look)
    try:
        build_dataset(ws, [memory], workers=2)
        assert frozen_while_merging and min(frozen_while_merging) > before  # frozen while the workers ran
        assert gc.get_freeze_count() == before  # and no longer after

        def fail(record, options, signal=None):
            raise ValueError("boom")

        monkeypatch.setattr(build, "_prepare", fail)
        with pytest.raises(build.BuildReadError):
            build_dataset(ws, [memory], workers=2)
        assert gc.get_freeze_count() == before
    finally:
        ws.store.close()
