"""One stored dataset, every provider that trains: each renders and checks it by its own rules, and none needs the
user to convert anything first (the issue's "the same stored dataset trains on local, together, the OpenAI-compatible
endpoints, hf-jobs and bedrock without any conversion").

Each provider's own tests follow a job from that dataset to a tuned model through its fake service; this file holds
them to one dataset id side by side, so a provider that quietly needs another shape of data fails here.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from model_customization.datasets.build import build_dataset, read_split
from model_customization.datasets.inspect import inspect_dataset
from model_customization.errors import UserError
from model_customization.providers.registry import BUILTIN_PROVIDERS, providers

# What the issue names; a provider added later that trains joins the loop by itself.
NAMED_IN_THE_ISSUE = {"local", "together", "openai", "azure-openai", "hf-jobs", "bedrock"}


@pytest.fixture(scope="module")
def trainers() -> list:
    return [p for p in providers("train") if p.name in BUILTIN_PROVIDERS]


@pytest.fixture
def dataset_id(ws, demo_paths) -> str:
    return build_dataset(ws, demo_paths).dataset_id


def _stored_bytes(ws, dataset_id: str) -> str:
    folder = ws.settings.datasets_dir / dataset_id
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def test_every_provider_the_issue_names_can_train(trainers):
    assert NAMED_IN_THE_ISSUE <= {p.name for p in trainers}


def test_the_same_dataset_passes_each_providers_own_gate_unchanged(ws, dataset_id, trainers):
    counts = ws.store.datasets.get(dataset_id)["counts"]
    before = _stored_bytes(ws, dataset_id)
    for trainer in trainers:
        report = inspect_dataset(ws, dataset_id=dataset_id, provider=trainer.name)
        assert report["provider"] == trainer.name and report["valid"] and report["errors"] == 0, (trainer.name, report["findings"])
        assert report["counts"]["train"] == counts["train"] and report["token_stats"]["train"]["total"] > 0, trainer.name
    assert _stored_bytes(ws, dataset_id) == before  # nothing was converted in place


def test_each_cloud_provider_renders_the_stored_examples_in_its_own_format(ws, dataset_id, trainers):
    example = next(iter(read_split(ws, dataset_id, "train")))
    rendered = {}
    for trainer in trainers:
        if trainer.runs_locally:
            continue
        try:
            rendered[trainer.name] = json.dumps(trainer.render_example(example), sort_keys=True)
        except UserError as error:  # hf-jobs ships the stored files themselves, for our own trainer
            rendered[trainer.name] = f"per-model: {error}"
    assert set(rendered) >= {"together", "openai", "azure-openai", "bedrock"}, rendered
    assert not any(rendered[name].startswith("per-model") for name in ("together", "openai", "azure-openai", "bedrock")), rendered
    text = example["messages"][-1]["content"]
    for name, row in rendered.items():
        if not row.startswith("per-model"):
            assert json.dumps(text)[1:-1][:40] in row, name  # the assistant's words travel unchanged
