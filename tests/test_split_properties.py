"""Property tests for the session split: whole sessions, deterministic, sized by the fractions, no leaks."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from model_customization.datasets.build import SPLITS, build_dataset, read_split, split_sessions
from model_customization.datasets.examples import conversation_to_example
from model_customization.memory.detect import iter_memory
from model_customization.memory.records import Conversation

session_ids = st.lists(st.text(min_size=1, max_size=10), max_size=80)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
fraction = st.floats(min_value=0, max_value=0.95, allow_nan=False, exclude_max=True)


@st.composite
def fractions(draw: st.DrawFn) -> tuple[float, float]:
    """(validation_fraction, test_fraction) as build_dataset accepts them: each in [0, 1), sum below 1."""
    validation = draw(fraction)
    test = draw(fraction)
    assume(validation + test < 1)
    return validation, test


def expected_size(n: int, frac: float) -> int:
    """round(n * fraction), at least 1 when the fraction is above 0 and there are 3 sessions or more."""
    size = round(n * frac)
    if frac > 0 and size == 0 and n >= 3:
        size = 1
    return size


@settings(max_examples=200, deadline=None)
@given(ids=session_ids, seed=seeds, fr=fractions())
def test_every_session_is_assigned_exactly_once(ids: list[str], seed: int, fr: tuple[float, float]) -> None:
    assignment = split_sessions(ids, seed, *fr)
    # A dict: one split per session, so no session can be in two splits.
    assert set(assignment) == set(ids)
    assert set(assignment.values()) <= set(SPLITS)
    by_split = {s: {k for k, v in assignment.items() if v == s} for s in SPLITS}
    assert sum(len(v) for v in by_split.values()) == len(set(ids))
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not by_split[a] & by_split[b]


@settings(max_examples=200, deadline=None)
@given(ids=session_ids, seed=seeds, fr=fractions(), data=st.data())
def test_order_and_repetition_do_not_matter(ids: list[str], seed: int, fr: tuple[float, float], data: st.DataObject) -> None:
    reordered = data.draw(st.permutations(ids))
    repeated = reordered + data.draw(st.lists(st.sampled_from(ids), max_size=10) if ids else st.just([]))
    first = split_sessions(ids, seed, *fr)
    assert split_sessions(reordered, seed, *fr) == first
    assert split_sessions(repeated, seed, *fr) == first
    assert split_sessions(tuple(reversed(ids)), seed, *fr) == first


@settings(max_examples=300, deadline=None)
@given(ids=session_ids, seed=seeds, fr=fractions())
def test_sizes_follow_the_fractions(ids: list[str], seed: int, fr: tuple[float, float]) -> None:
    validation_fraction, test_fraction = fr
    n = len(set(ids))
    sizes = Counter(split_sessions(ids, seed, validation_fraction, test_fraction).values())
    n_test = expected_size(n, test_fraction)
    n_validation = expected_size(n, validation_fraction)
    # Training always keeps at least one session: when the rounded held-out shares would take them all, the
    # larger held-out split gives sessions back first (validation on a tie).
    while n and n_test + n_validation >= n and (n_test or n_validation):
        if n_validation >= n_test:
            n_validation -= 1
        else:
            n_test -= 1
    assert (sizes["test"], sizes["validation"]) == (n_test, n_validation)
    assert sizes["train"] == n - n_test - n_validation
    if n:
        assert sizes["train"] >= 1
    if test_fraction == 0:
        assert sizes["test"] == 0
    if validation_fraction == 0:
        assert sizes["validation"] == 0


@pytest.mark.parametrize(
    ("n", "validation_fraction", "test_fraction", "expected"),
    [
        (0, 0.1, 0.1, {}),
        (1, 0.1, 0.1, {"train": 1}),
        (2, 0.1, 0.1, {"train": 2}),  # below 3 sessions the minimum of 1 does not apply
        (3, 0.1, 0.1, {"test": 1, "validation": 1, "train": 1}),
        (3, 0.0, 0.1, {"test": 1, "train": 2}),
        (10, 0.1, 0.1, {"test": 1, "validation": 1, "train": 8}),
        (10, 0.25, 0.25, {"test": 2, "validation": 2, "train": 6}),  # round half to even: round(2.5) == 2
        (100, 0.1, 0.2, {"test": 20, "validation": 10, "train": 70}),
    ],
)
def test_sizes_examples(n: int, validation_fraction: float, test_fraction: float, expected: dict[str, int]) -> None:
    ids = [f"s{i}" for i in range(n)]
    assert dict(Counter(split_sessions(ids, 0, validation_fraction, test_fraction).values())) == expected


@settings(max_examples=100, deadline=None)
@given(
    ids=st.lists(st.text(min_size=1, max_size=10), min_size=20, max_size=80, unique=True),
    first_seed=seeds,
    fr=st.tuples(st.floats(0.1, 0.3), st.floats(0.1, 0.3)),
)
def test_different_seeds_usually_give_different_assignments(ids: list[str], first_seed: int, fr: tuple[float, float]) -> None:
    # With n >= 20 and at least 2 sessions in each held-out split there are >= 29,070 possible assignments, so ten
    # seeds giving fewer than eight distinct ones would mean the seed is (nearly) ignored.
    assignments = {
        tuple(sorted(split_sessions(ids, first_seed + k, *fr).items())) for k in range(10)
    }
    assert len(assignments) >= 8


# ---------------------------------------------------------------------------------------------------- end to end, demo data


def _canonical(example: dict[str, Any]) -> str:
    return json.dumps(example, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@pytest.fixture(scope="module")
def demo_sessions(demo_paths: list[Path]) -> dict[str, str]:
    """Canonical example text -> session id, for every demo conversation (raw, and as redaction stores it)."""
    try:
        from model_customization.datasets.redaction import redact_conversation
    except ImportError:  # pragma: no cover - builds without redaction store the raw example
        redact_conversation = None
    mapping: dict[str, str] = {}
    sessions: set[str] = set()
    for record in iter_memory(demo_paths):
        assert isinstance(record, Conversation), record
        sessions.add(record.session_id)
        variants = [record]
        if redact_conversation is not None:
            variants.append(redact_conversation(record)[0])
        for conversation in variants:
            key = _canonical(conversation_to_example(conversation))
            assert mapping.setdefault(key, record.session_id) == record.session_id, "two demo sessions, one example"
    assert len(sessions) == 160
    return mapping


@pytest.mark.parametrize("seed", [0, 1, 7, 2**31 + 12345])
def test_demo_build_splits_by_session_without_leaks(ws, demo_paths: list[Path], demo_sessions: dict[str, str], seed: int) -> None:
    result = build_dataset(ws, demo_paths, seed=seed)
    assert result.problem_count == 0
    split_of_session: dict[str, str] = {}
    texts: dict[str, str] = {}
    for split in SPLITS:
        examples = read_split(ws, result.dataset_id, split)
        assert len(examples) == result.counts[split]
        for example in examples:
            text = _canonical(example)
            assert text not in texts, f"example in {texts.get(text)} and {split}"
            texts[text] = split
            assert text in demo_sessions, "a stored example that no demo session produces"
            session = demo_sessions[text]
            assert split_of_session.setdefault(session, split) == split, f"session {session} in two splits"

    all_sessions = set(demo_sessions.values())
    dropped = sum(result.dropped.values())
    # Every demo session lands in exactly one split, except those the build drops (and says so).
    assert len(split_of_session) == len(all_sessions) - dropped
    if dropped == 0:
        assert set(split_of_session) == all_sessions
    # And the split sizes are the session split of build_dataset's own kept sessions.
    expected = Counter(split_sessions(list(split_of_session), seed, 0.1, 0.1).values())
    assert Counter(split_of_session.values()) == expected
    assert split_sessions(list(split_of_session), seed, 0.1, 0.1) == split_of_session


def test_fractions_below_one_always_leave_training_data(ws, tmp_path: Path) -> None:
    file = tmp_path / "two.jsonl"
    pairs = [("what is the capital of france", "paris is the capital"), ("how many legs does a spider have", "eight")]
    file.write_text(
        "\n".join(
            json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}) for q, a in pairs
        )
        + "\n"
    )
    result = build_dataset(ws, [file], validation_fraction=0.5, test_fraction=0.4)
    assert result.counts["train"] >= 1, result.counts
