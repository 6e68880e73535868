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
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from model_customization.datasets.curation import split_into_turn_examples
from model_customization.datasets.dedupe import NearDuplicateFilter, exact_key, example_text
from model_customization.datasets.examples import conversation_to_example, example_problem, message_to_dict
from model_customization.datasets.filters import ConversationFilter
from model_customization.datasets.redaction import redact_conversation
from model_customization.datasets.tokens import count_chat_tokens
from model_customization.errors import NotFoundError, UserError
from model_customization.memory.detect import SUPPORTED_FORMATS, iter_memory
from model_customization.memory.records import Conversation, ImportProblem, Message, PreferencePair
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
) -> BuildResult:
    """Import memory and store a curated dataset version.

    method "sft" keeps conversations (whole, with weights, or one example per assistant turn with
    example_mode="turns"); method "dpo" keeps preference pairs: those the source states (OpenAI preference files,
    ChatGPT regenerations with opposite ratings) and best-vs-worst attempts at the same task (tau-bench, ToolBench).
    Redaction of secrets and personal data happens before anything is stored.
    """
    if not paths:
        raise UserError("No memory paths given. Pass one or more files or folders of transcripts (JSONL).")
    if not (0 <= validation_fraction < 1 and 0 <= test_fraction < 1 and validation_fraction + test_fraction < 1):
        raise UserError(
            f"validation_fraction ({validation_fraction}) and test_fraction ({test_fraction}) must each be in [0, 1) "
            "and leave some examples for training (their sum below 1)."
        )
    if method not in ("sft", "dpo"):
        raise UserError(f"Unknown method {method!r}: use 'sft' (conversations) or 'dpo' (preference pairs).")
    if example_mode not in ("conversation", "turns"):
        raise UserError(f"Unknown example_mode {example_mode!r}: use 'conversation' or 'turns'.")
    if near_duplicate_threshold is not None and not 0 < near_duplicate_threshold <= 1:
        raise UserError(f"near_duplicate_threshold must be in (0, 1] or null to switch it off (got {near_duplicate_threshold}).")
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
    redactions: Counter[str] = Counter()
    seen_exact: set[str] = set()
    seen_turns: set[str] = set()
    near = NearDuplicateFilter(threshold=near_duplicate_threshold) if near_duplicate_threshold else None
    kept: list[tuple[str, dict[str, Any]]] = []  # (session id, example)
    source_files: dict[str, str] = {}
    formats: Counter[str] = Counter()
    attempts: dict[str, list[Conversation]] = {}
    conversations = 0

    def is_new(example: dict[str, Any]) -> bool:
        """Exact, then near-duplicate check of a whole conversation or pair (before any per-turn split)."""
        key = exact_key(example)
        if key in seen_exact:
            dropped["exact_duplicate"] += 1
            return False
        seen_exact.add(key)
        if near is not None:
            as_chat = example if "messages" in example else {"messages": example["input"]["messages"] + example["preferred_output"] + example["non_preferred_output"]}
            if near.is_duplicate(key, example_text(as_chat)):
                dropped["near_duplicate"] += 1
                return False
        return True

    def keep_pair(pair: PreferencePair) -> None:
        if redact:
            pair, counts = _redact_pair(pair)
            redactions.update(counts)
        example = _pair_example(pair.prompt, pair.preferred, pair.non_preferred, pair.tools)
        if is_new(example):
            kept.append((pair.session_id, example))

    for item in iter_memory(resolved):
        if isinstance(item, ImportProblem):
            problem_count += 1
            if len(problems) < MAX_REPORTED_PROBLEMS:
                problems.append(str(item))
            continue
        if item.source_file not in source_files:
            source_files[item.source_file] = _sha256_file(Path(item.source_file))
            if progress:
                progress(conversations, f"reading {Path(item.source_file).name}")
        formats[item.source_format] += 1
        if isinstance(item, PreferencePair):
            if method == "dpo":
                keep_pair(item)
            else:
                dropped["preference_pair"] += 1  # a supervised build has no use for them
            continue
        conversations += 1
        reason = filters.reason(item) if filters else None
        if reason:
            dropped[f"filter:{reason}"] += 1
            continue
        if method == "dpo":
            if item.task_id is None:
                dropped["no_preference_signal"] += 1
            else:
                attempts.setdefault(item.task_id, []).append(item)
            continue
        if redact:
            item, counts = redact_conversation(item)
            redactions.update(counts)
        whole = conversation_to_example(item)
        problem = example_problem(whole)
        if problem:
            dropped[problem] += 1
            continue
        if not is_new(whole):
            continue
        if example_mode == "conversation":
            kept.append((item.session_id, whole))
            continue
        for example in split_into_turn_examples(whole):
            # Sessions that open the same way give the same first-turn examples: keep one of each.
            key = exact_key(example)
            if key in seen_turns:
                dropped["exact_duplicate_turn"] += 1
            else:
                seen_turns.add(key)
                kept.append((item.session_id, example))

    for task_id, tried in attempts.items():
        pair = _attempt_pair(task_id, tried)
        if pair is None:
            dropped["no_preference_signal"] += len(tried)
        else:
            keep_pair(pair)

    if not kept:
        detail = f" First problems: {'; '.join(problems[:3])}." if problems else ""
        raise UserError(
            f"No usable examples found in {', '.join(str(p) for p in resolved)} "
            f"({conversations} conversations read, {problem_count} unreadable lines, dropped: {dict(dropped) or 'none'})."
            f"{detail} Supported formats: {', '.join(SUPPORTED_FORMATS)}"
            + (". A dpo build needs preference pairs or several rewarded attempts per task." if method == "dpo" else ".")
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
        "method": method,
        "format": "openai_dpo" if method == "dpo" else "openai_chat",
        "counts": counts,
        "conversations_read": conversations,
        "formats": dict(formats),
        "dropped": dict(sorted(dropped.items())),
        "duplicates_removed": {"exact": dropped.get("exact_duplicate", 0), "near": dropped.get("near_duplicate", 0)},
        "redactions": dict(sorted(redactions.items())),
        "unreadable": {"count": problem_count, "first": problems},
        "token_stats": {"o200k_base": {s: _token_stats(split_examples[s]) for s in SPLITS}},
        "sources": [{"path": p, "sha256": h} for p, h in sorted(source_files.items())],
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
        "content_sha256": content_hash,
    }

    final_dir = ws.settings.datasets_dir / dataset_id
    ws.settings.datasets_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dataset_id}-", dir=ws.settings.datasets_dir))
    try:
        for split in SPLITS:
            (staging / f"{split}.jsonl").write_text(split_text[split], encoding="utf-8")
        (staging / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False), encoding="utf-8")
        (staging / "card.md").write_text(card_markdown(card), encoding="utf-8")
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


def _token_stats(examples: list[dict[str, Any]]) -> dict[str, Any]:
    counts = sorted(
        count_chat_tokens(e["messages"] if "messages" in e else e["input"]["messages"] + e["preferred_output"] + e["non_preferred_output"], "o200k_base")
        for e in examples
    )
    if not counts:
        return {"examples": 0, "total": 0, "mean": 0, "max": 0}
    return {"examples": len(counts), "total": sum(counts), "mean": round(sum(counts) / len(counts), 1), "max": counts[-1]}


def card_markdown(card: dict[str, Any]) -> str:
    """The dataset card for people: what is in it, what was left out and why, where it came from."""
    counts = card["counts"]
    lines = [
        f"# Dataset {card['id']}: {card['name']}",
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
    lines += [f"  - `{p}`" for p in card["unreadable"]["first"][:10]]
    lines += ["", "## Redactions (replaced by typed placeholders before storage)", ""]
    lines += [f"- {kind}: {n}" for kind, n in card.get("redactions", {}).items()] or ["- none found"]
    lines += ["", "## Sources", "", "| file | sha256 |", "|---|---|"]
    lines += [f"| `{s['path']}` | `{s['sha256'][:16]}…` |" for s in card["sources"]]
    lines += ["", "## Options", "", "```json", json.dumps(card["options"], indent=2), "```", ""]
    return "\n".join(lines)


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
