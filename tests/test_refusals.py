"""Refusals at the domain level: a job or dataset that cannot work is refused with a clear message and leaves no trace.

Also the dataset guarantees the rest of the loop relies on: building is idempotent, and the split is by session
(no session in two splits), determined by the seed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from model_customization.datasets.redaction import redact_conversation
from model_customization.datasets.build import SPLITS, _canonical, build_dataset, split_sessions
from model_customization.datasets.examples import conversation_to_example, example_problem
from model_customization.errors import NotFoundError, UserError
from model_customization.jobs import orchestrator
from model_customization.memory.detect import iter_memory
from model_customization.memory.records import Conversation


def _openai_line(i: int) -> str:
    return json.dumps(
        {
            "messages": [
                {"role": "system", "content": "You are OpsBot, the on-call triage assistant."},
                {"role": "user", "content": f"Classify: 2026-03-15T21:20:{i:02d}Z [svc-{i}] ERROR boom {i}"},
                {"role": "assistant", "content": f"TRIAGE severity=high component=svc-{i} action=page"},
            ]
        }
    )


@pytest.fixture
def small_dataset(ws, tmp_path: Path) -> str:
    """A dataset with 5 valid conversations: fewer than 10 training examples whatever the split."""
    path = tmp_path / "small.jsonl"
    path.write_text("".join(_openai_line(i) + "\n" for i in range(5)), encoding="utf-8")
    result = build_dataset(ws, [path])
    assert sum(result.counts.values()) == 5
    assert result.counts["train"] < orchestrator.MIN_TRAIN_EXAMPLES
    return result.dataset_id


@pytest.fixture
def demo_dataset(ws, demo_paths) -> str:
    return build_dataset(ws, demo_paths).dataset_id


def _assert_refused(ws, dataset_id: str, *, match: str, **kwargs) -> UserError:
    with pytest.raises(UserError, match=match) as info:
        orchestrator.start_job(ws, dataset_id, **kwargs)
    assert ws.store.jobs.all() == [], "a refused job must leave nothing in the ledger"
    assert not ws.settings.jobs_dir.exists() or not any(ws.settings.jobs_dir.iterdir()), "nor any job folder"
    return info.value


def test_too_few_training_examples_is_refused(ws, small_dataset):
    error = _assert_refused(ws, small_dataset, match=r"at least 10")
    message = str(error)
    assert small_dataset in message
    assert "build_dataset_from_memory" in message  # names the next step


def test_unknown_base_model_name_is_refused(ws, demo_dataset):
    error = _assert_refused(ws, demo_dataset, match="gpt-9-imaginary", base_model="gpt-9-imaginary")
    assert isinstance(error, NotFoundError)
    assert "SmolLM2-135M-Instruct" in str(error)  # says what would work


def test_missing_base_model_path_is_refused(ws, demo_dataset, tmp_path):
    missing = tmp_path / "no-such-model"
    _assert_refused(ws, demo_dataset, match=r"Unknown base model", base_model=str(missing))


def test_folder_that_is_not_a_causal_lm_is_refused(ws, demo_dataset, tmp_path):
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert"}))
    error = _assert_refused(ws, demo_dataset, match=r"not a causal language model", base_model=str(folder))
    assert "BertModel" in str(error)


def test_folder_without_config_is_refused(ws, demo_dataset, tmp_path):
    folder = tmp_path / "empty-model"
    folder.mkdir()
    _assert_refused(ws, demo_dataset, match=r"no config\.json", base_model=str(folder))


def test_unknown_dataset_is_refused(ws):
    error = _assert_refused(ws, "ds-000000000000", match=r"not found")
    assert isinstance(error, NotFoundError)
    assert "list_datasets" in str(error)


@pytest.mark.parametrize(
    "hyperparameters",
    [{"epochs": 0}, {"learning_rate": -1}, {"batch_size": 0}, {"no_such_knob": 1}, {"max_seq_length": 4}],
)
def test_invalid_hyperparameters_are_refused(ws, demo_dataset, hyperparameters):
    key = next(iter(hyperparameters))
    error = _assert_refused(ws, demo_dataset, match=r"Invalid hyperparameters", hyperparameters=hyperparameters)
    assert key in str(error)
    assert "Allowed keys" in str(error)


def test_unknown_provider_and_method_are_refused(ws, demo_dataset):
    _assert_refused(ws, demo_dataset, match=r"Unknown provider 'vertex'.*'local'.*'openai'.*'bedrock'", provider="vertex")
    _assert_refused(ws, demo_dataset, match=r"method='sft'", method="dpo")


def test_openai_without_a_key_is_refused_before_anything_is_recorded(ws, demo_dataset, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    _assert_refused(ws, demo_dataset, match=r"OPENAI_API_KEY", provider="openai")


def test_missing_memory_path_is_refused(ws, tmp_path):
    missing = tmp_path / "nowhere" / "memory.jsonl"
    with pytest.raises(NotFoundError, match="not found") as info:
        build_dataset(ws, [missing])
    assert str(missing) in str(info.value)
    assert ws.store.datasets.all() == []
    assert not ws.settings.datasets_dir.exists() or not any(ws.settings.datasets_dir.iterdir())


def test_missing_path_among_good_ones_stores_nothing(ws, demo_paths, tmp_path):
    with pytest.raises(NotFoundError):
        build_dataset(ws, [*demo_paths, tmp_path / "missing"])
    assert ws.store.datasets.all() == []


def test_no_paths_is_refused(ws):
    with pytest.raises(UserError, match="No memory paths"):
        build_dataset(ws, [])
    assert ws.store.datasets.all() == []


def test_building_twice_gives_the_same_dataset(ws, demo_paths):
    first = build_dataset(ws, demo_paths, name="demo")
    second = build_dataset(ws, demo_paths, name="demo again")
    assert first.already_existed is False
    assert second.already_existed is True
    assert second.dataset_id == first.dataset_id
    assert second.counts == first.counts
    assert len(ws.store.datasets.all()) == 1
    assert ws.store.datasets.get(first.dataset_id)["name"] == "demo"  # the stored version is not touched


def test_same_memory_in_another_order_is_the_same_dataset(ws, demo_paths):
    forward = build_dataset(ws, demo_paths)
    backward = build_dataset(ws, list(reversed(demo_paths)))
    assert backward.dataset_id == forward.dataset_id
    assert backward.already_existed is True


# --- split by session ---------------------------------------------------------------------------------------


def _session_of_example(paths) -> dict[str, str]:
    """canonical example JSON -> session id, computed independently of the builder's split."""
    mapping: dict[str, str] = {}
    for item in iter_memory([Path(p).resolve() for p in paths]):
        if not isinstance(item, Conversation):
            continue
        # Builds redact before storing: map the redacted form, which is what the split files hold.
        example = conversation_to_example(redact_conversation(item)[0])
        if example_problem(example):
            continue
        mapping.setdefault(_canonical(example), item.session_id)
    return mapping


def _split_lines(ws, dataset_id: str) -> dict[str, list[str]]:
    folder = Path(ws.store.datasets.get(dataset_id)["path"])
    return {s: (folder / f"{s}.jsonl").read_text(encoding="utf-8").splitlines() for s in SPLITS}


def _sessions_by_split(ws, dataset_id: str, session_of: dict[str, str]) -> dict[str, set[str]]:
    lines = _split_lines(ws, dataset_id)
    return {s: {session_of[_canonical(json.loads(line))] for line in lines[s]} for s in SPLITS}


def test_split_is_by_session_and_follows_the_seed(ws, demo_paths):
    session_of = _session_of_example(demo_paths)
    result = build_dataset(ws, demo_paths, seed=0)
    assert sum(result.counts.values()) == len(session_of)
    assert all(result.counts[s] > 0 for s in SPLITS), result.counts

    lines = _split_lines(ws, result.dataset_id)
    assert {s: len(lines[s]) for s in SPLITS} == result.counts
    hashes = {s: {hashlib.sha256(line.encode()).hexdigest() for line in lines[s]} for s in SPLITS}
    assert not hashes["train"] & hashes["validation"]
    assert not hashes["train"] & hashes["test"]
    assert not hashes["validation"] & hashes["test"]

    by_split = _sessions_by_split(ws, result.dataset_id, session_of)
    assert not by_split["train"] & by_split["validation"]
    assert not by_split["train"] & by_split["test"]
    assert not by_split["validation"] & by_split["test"]

    # The assignment is exactly the seeded one.
    expected = split_sessions(list(session_of.values()), 0, 0.1, 0.1)
    for split, sessions in by_split.items():
        assert all(expected[s] == split for s in sessions), split

    # Same seed again: the same split (and the same id); another seed: another split and another id.
    again = build_dataset(ws, demo_paths, seed=0)
    assert again.dataset_id == result.dataset_id
    other = build_dataset(ws, demo_paths, seed=1)
    assert other.dataset_id != result.dataset_id and other.already_existed is False
    assert other.counts == result.counts  # sizes follow the fractions, not the seed
    other_by_split = _sessions_by_split(ws, other.dataset_id, session_of)
    assert other_by_split["test"] != by_split["test"]
    expected_other = split_sessions(list(session_of.values()), 1, 0.1, 0.1)
    for split, sessions in other_by_split.items():
        assert all(expected_other[s] == split for s in sessions), split
