"""Build a dataset version from memory files: import, check, dedupe, split by session, store immutably.

A dataset is content-addressed: its id is a hash of its examples and splits, so building the same memory with the
same options twice yields the same id and stores nothing new. Files are written into a temporary folder and
renamed into place, so a crash never leaves a half-written dataset behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_customization.datasets.examples import conversation_to_example, example_problem
from model_customization.errors import NotFoundError, UserError
from model_customization.memory.detect import iter_memory
from model_customization.memory.records import Conversation, ImportProblem, PreferencePair
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


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
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
    assignment = {}
    for index, session in enumerate(ordered):
        if index < n_test:
            assignment[session] = "test"
        elif index < n_test + n_validation:
            assignment[session] = "validation"
        else:
            assignment[session] = "train"
    return assignment


def build_dataset(
    ws: Workspace,
    paths: Sequence[str | os.PathLike[str]],
    *,
    name: str | None = None,
    seed: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    progress: ProgressFn | None = None,
) -> BuildResult:
    if not paths:
        raise UserError("No memory paths given. Pass one or more files or folders of transcripts (JSONL).")
    if not (0 <= validation_fraction < 1 and 0 <= test_fraction < 1 and validation_fraction + test_fraction < 1):
        raise UserError(
            f"validation_fraction ({validation_fraction}) and test_fraction ({test_fraction}) must each be in [0, 1) "
            "and leave some examples for training (their sum below 1)."
        )
    resolved = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise NotFoundError(
                f"Memory path not found: {raw}. Give an existing file or folder (absolute, or relative to {Path.cwd()})."
            )
        resolved.append(path.resolve())

    problems: list[str] = []
    problem_count = 0
    dropped: Counter[str] = Counter()
    seen_hashes: set[str] = set()
    kept: list[tuple[str, dict[str, Any]]] = []  # (session id, example)
    source_files: dict[str, str] = {}
    formats: Counter[str] = Counter()
    conversations = 0

    for item in iter_memory(resolved):
        if isinstance(item, ImportProblem):
            problem_count += 1
            if len(problems) < MAX_REPORTED_PROBLEMS:
                problems.append(str(item))
            continue
        if isinstance(item, PreferencePair):
            # Preference pairs make DPO datasets; a supervised build counts them and leaves them out.
            dropped["preference_pair"] += 1
            continue
        assert isinstance(item, Conversation)
        conversations += 1
        formats[item.source_format] += 1
        if item.source_file not in source_files:
            source_files[item.source_file] = _sha256_file(Path(item.source_file))
            if progress:
                progress(conversations, f"reading {Path(item.source_file).name}")
        example = conversation_to_example(item)
        reason = example_problem(example)
        if reason:
            dropped[reason] += 1
            continue
        digest = hashlib.sha256(_canonical(example).encode()).hexdigest()
        if digest in seen_hashes:
            dropped["exact_duplicate"] += 1
            continue
        seen_hashes.add(digest)
        kept.append((item.session_id, example))

    if not kept:
        detail = f" First problems: {'; '.join(problems[:3])}." if problems else ""
        raise UserError(
            f"No usable examples found in {', '.join(str(p) for p in resolved)} "
            f"({conversations} conversations read, {problem_count} unreadable lines, dropped: {dict(dropped) or 'none'})."
            f"{detail} Check that the files are OpenAI chat JSONL or Claude Code transcripts."
        )

    assignment = split_sessions([s for s, _ in kept], seed, validation_fraction, test_fraction)
    split_examples: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for session, example in kept:
        split_examples[assignment[session]].append(example)
    # Order within a split by content, so the same memory given in another order is the same dataset.
    for split in SPLITS:
        split_examples[split].sort(key=_canonical)
    counts = {s: len(split_examples[s]) for s in SPLITS}

    split_text = {s: "".join(_canonical(e) + "\n" for e in split_examples[s]) for s in SPLITS}
    content_hash = hashlib.sha256("\x1e".join(split_text[s] for s in SPLITS).encode()).hexdigest()
    dataset_id = "ds-" + content_hash[:12]

    existing = ws.ledger.get_dataset(dataset_id)
    if existing:
        return BuildResult(dataset_id, existing["counts"], problems, problem_count, dict(dropped), True, existing["card"])

    card = {
        "id": dataset_id,
        "name": name or dataset_id,
        "format": "openai_chat",
        "counts": counts,
        "conversations_read": conversations,
        "formats": dict(formats),
        "dropped": dict(dropped),
        "unreadable": {"count": problem_count, "first": problems},
        "sources": [{"path": p, "sha256": h} for p, h in sorted(source_files.items())],
        "options": {
            "seed": seed,
            "validation_fraction": validation_fraction,
            "test_fraction": test_fraction,
            "paths": [str(p) for p in resolved],
        },
        "content_sha256": content_hash,
    }

    final_dir = ws.settings.datasets_dir / dataset_id
    ws.settings.datasets_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dataset_id}-", dir=ws.settings.datasets_dir))
    try:
        for split in SPLITS:
            (staging / f"{split}.jsonl").write_text(split_text[split], encoding="utf-8")
        (staging / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False), encoding="utf-8")
        if final_dir.exists():  # files left by a crash before the ledger row was written: replace them
            shutil.rmtree(final_dir)
        os.replace(staging, final_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    ws.ledger.add_dataset(
        {
            "id": dataset_id,
            "name": card["name"],
            "created_at": time.time(),
            "path": str(final_dir),
            "counts": counts,
            "card": card,
        }
    )
    return BuildResult(dataset_id, counts, problems, problem_count, dict(dropped), False, card)


def get_dataset(ws: Workspace, dataset_id: str) -> dict[str, Any]:
    row = ws.ledger.get_dataset(dataset_id)
    if not row:
        raise NotFoundError(
            f"Dataset {dataset_id!r} not found. Call list_datasets to see stored datasets, "
            "or build_dataset_from_memory to make one."
        )
    return row


def read_split(ws: Workspace, dataset_id: str, split: str) -> list[dict[str, Any]]:
    row = get_dataset(ws, dataset_id)
    path = Path(row["path"]) / f"{split}.jsonl"
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
