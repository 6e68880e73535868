"""The model registry: memory files (sha256) -> dataset -> job -> model -> evaluations and deployments, for a tuned
model, its base model and a cloud name; through the domain, the models:// resources and `model lineage`."""

from __future__ import annotations

import hashlib
import json
import random
import string
from pathlib import Path

import anyio
import pytest

from model_customization.errors import NotFoundError


def _memory_files(folder: Path) -> list[Path]:
    rng = random.Random(3)
    paths = []
    for index in range(2):
        lines = []
        for _ in range(24):
            words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 8))) for _ in range(rng.randint(3, 6))]
            lines.append(json.dumps({"messages": [
                {"role": "user", "content": f"Tag these words: {' '.join(words)}"},
                {"role": "assistant", "content": "TAGS: " + ", ".join(w.upper() for w in words)},
            ]}))  # fmt: skip
        path = folder / f"memory-{index}.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def lineage_world(ws, tiny_model, tmp_path):
    """A dataset from two memory files, a tiny job (in this process), an evaluation and deployments."""
    from model_customization.datasets.build import build_dataset
    from model_customization.deployments import deploy_model, rollback
    from model_customization.evaluation.runner import evaluate
    from model_customization.providers.local.train import train_job

    files = _memory_files(tmp_path)
    dataset_id = build_dataset(ws, files, name="tags").dataset_id
    ws.store.jobs.add({"id": "job-lin1", "provider": "local", "base_model": str(tiny_model), "dataset_id": dataset_id, "method": "sft",
                       "hyperparameters": {"epochs": 1, "batch_size": 8}, "status": "queued"})  # fmt: skip
    train_job(ws, "job-lin1")
    assert ws.store.jobs.get("job-lin1")["status"] == "succeeded"
    report = evaluate(ws, dataset_id, [str(tiny_model), "ft-lin1"], limit=3, max_tokens=4)
    deploy_model(ws, "coder", "ft-lin1")  # first assignment: no gate
    deploy_model(ws, "reviewer", str(tiny_model))
    deploy_model(ws, "reviewer", "ft-lin1", force=True, reason="trying the tuned model")
    rollback(ws, "reviewer")  # the base model serves the reviewer again
    return {"files": files, "dataset_id": dataset_id, "eval": report, "base": str(tiny_model)}


def test_a_tuned_model_shows_every_link_of_its_lineage(ws, lineage_world):
    from model_customization.registry import list_registry, model_lineage

    world = lineage_world
    lineage = model_lineage(ws, "ft-lin1")
    assert lineage["model"]["id"] == "ft-lin1" and lineage["model"]["kind"] == "tuned" and lineage["model"]["adapter_present"]
    assert lineage["model"]["base_model"] == world["base"] and lineage["model"]["uri"] == "models://ft-lin1"
    assert lineage["job"]["id"] == "job-lin1" and lineage["job"]["status"] == "succeeded" and lineage["job"]["method"] == "sft"
    assert lineage["job"]["hyperparameters"]["epochs"] == 1
    card = ws.store.datasets.get(world["dataset_id"])["card"]
    assert lineage["dataset"]["id"] == world["dataset_id"] and lineage["dataset"]["name"] == "tags"
    assert lineage["dataset"]["content_sha256"] == card["content_sha256"] and world["dataset_id"].endswith(card["content_sha256"][:12])
    assert lineage["dataset"]["counts"] == ws.store.datasets.get(world["dataset_id"])["counts"]
    # The memory files it learned from, with the hashes of their bytes.
    assert sorted((Path(s["path"]).resolve(), s["sha256"]) for s in lineage["sources"]) == sorted((p.resolve(), _sha256(p)) for p in world["files"])

    [evaluation] = lineage["evaluations"]
    report = world["eval"]
    assert evaluation["eval_id"] == report["id"] and evaluation["dataset_id"] == world["dataset_id"] and evaluation["suite"] is None
    assert evaluation["models"] == [world["base"], "ft-lin1"] and evaluation["primary_metric"] == "token_f1"
    assert evaluation["score"] == report["summary"]["ft-lin1"]["token_f1"] and evaluation["cases"] == 3
    [comparison] = evaluation["comparisons"]
    assert (comparison["baseline"], comparison["candidate"]) == (world["base"], "ft-lin1")
    assert comparison["verdict"] == report["comparisons"][0]["verdict"]

    deployments = {(d["agent"], d["action"]): d for d in lineage["deployments"]}
    assert set(deployments) == {("coder", "deploy"), ("reviewer", "deploy")}
    assert deployments[("coder", "deploy")]["live"] is True
    assert deployments[("reviewer", "deploy")]["live"] is False  # rolled back since
    assert lineage["notes"] == []

    [entry] = list_registry(ws)
    assert entry["model_id"] == "ft-lin1" and entry["job_id"] == "job-lin1" and entry["dataset_id"] == world["dataset_id"]
    assert entry["evaluations"] == 1 and entry["live_deployments"] == ["coder"] and entry["source_files"] == 2
    assert entry["lineage"] == f"ft-lin1 <- job job-lin1 (succeeded) <- dataset {world['dataset_id']} (2 source files); 1 evaluation; serves coder"


def test_base_and_cloud_models_get_the_lineage_that_exists(ws, lineage_world):
    from model_customization.registry import model_lineage

    world = lineage_world
    base = model_lineage(ws, world["base"])
    assert base["model"]["kind"] == "base" and base["model"]["registered"] is False and base["model"]["uri"] is None  # a path
    assert base["job"] is None and base["dataset"] is None and base["sources"] == []
    assert [e["eval_id"] for e in base["evaluations"]] == [world["eval"]["id"]]
    assert base["evaluations"][0]["score"] == world["eval"]["summary"][world["base"]]["token_f1"]
    live = [(d["agent"], d["action"], d["live"]) for d in base["deployments"]]
    assert live == [("reviewer", "deploy", False), ("reviewer", "rollback", True)]

    cloud = model_lineage(ws, "gpt-4o-mini")
    assert cloud["model"]["provider"] == "openai" and cloud["model"]["kind"] == "base" and cloud["evaluations"] == []

    with pytest.raises(NotFoundError, match=r"No model 'ft-nope'.*models://index"):
        model_lineage(ws, "ft-nope")
    with pytest.raises(NotFoundError, match="models://index"):
        model_lineage(ws, "no-such-local-model")


def test_a_missing_report_is_tolerated_and_said(ws, lineage_world):
    from model_customization.registry import model_lineage

    folder = Path(ws.store.evaluations.get(lineage_world["eval"]["id"])["path"])
    (folder / "report.json").unlink()
    [evaluation] = model_lineage(ws, "ft-lin1")["evaluations"]
    assert evaluation["report"].startswith("missing:") and evaluation["comparisons"] == []
    assert evaluation["score"] == lineage_world["eval"]["summary"]["ft-lin1"]["token_f1"]  # from the ledger's summary


def test_resources_and_cli_show_the_lineage(ws, lineage_world):
    from mcp import Client
    from mcp.shared.exceptions import MCPError
    from typer.testing import CliRunner

    from model_customization.cli import app
    from model_customization.server.app import build_server

    async def read() -> tuple:
        async with Client(build_server(ws=ws)) as client:
            index = json.loads((await client.read_resource("models://index")).contents[0].text)
            detail = json.loads((await client.read_resource("models://ft-lin1")).contents[0].text)
            with pytest.raises(MCPError):
                await client.read_resource("models://ft-nope")
            return index, detail

    index, detail = anyio.run(read)
    assert [e["model_id"] for e in index] == ["ft-lin1"] and index[0]["uri"] == "models://ft-lin1"
    assert detail["job"]["id"] == "job-lin1" and len(detail["sources"]) == 2

    runner = CliRunner()
    shown = runner.invoke(app, ["model", "lineage", "ft-lin1", "--json", "--home", str(ws.settings.home)])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["dataset"]["id"] == lineage_world["dataset_id"]
    text = runner.invoke(app, ["model", "lineage", "ft-lin1", "--home", str(ws.settings.home)])
    assert text.exit_code == 0 and "job-lin1" in text.output and lineage_world["eval"]["id"] in text.output
    assert _sha256(lineage_world["files"][0]) in "".join(text.output.split())  # rich may wrap the long hash
    missing = runner.invoke(app, ["model", "lineage", "ft-nope", "--home", str(ws.settings.home)])
    assert missing.exit_code == 3 and "ft-nope" in missing.output  # not found
