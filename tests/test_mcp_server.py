"""The MCP surface, in process: tools/list, the whole loop with the tiny model, resources, progress, errors, cancel.

Every call goes through an in-process `mcp.Client`, so arguments are validated against the published input schemas
and results against the output schemas, exactly as an agent would see them.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers import MCP_TOOLS
from mcp import Client
from mcp.shared.exceptions import MCPError

from model_customization.jobs.processes import worker_alive
from model_customization.server.app import build_server

pytestmark = pytest.mark.anyio

SNAPSHOT = Path(__file__).parent / "snapshots" / "list_tools.json"
TOOLS = MCP_TOOLS
READ_ONLY = {"find_memory", "list_datasets", "list_jobs", "check_job", "inspect_dataset", "list_training_files", "throughput_status", "list_models", "list_job_events"}
TERMINAL = {"succeeded", "failed", "cancelled"}
SMALL_HP = {"epochs": 1, "batch_size": 16, "max_seq_length": 256}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- helpers ------------------------------------------------------------------------------------------------


def text_of(result) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def call_ok(client: Client, name: str, args: dict[str, Any] | None = None, **kwargs) -> dict[str, Any]:
    result = await client.call_tool(name, args or {}, **kwargs)
    assert not result.is_error, f"{name} failed: {text_of(result)}"
    assert result.structured_content is not None, name
    # The text content carries the same JSON, for clients that ignore structured content.
    assert json.loads(text_of(result)) == result.structured_content
    return result.structured_content


async def call_error(client: Client, name: str, args: dict[str, Any]) -> str:
    result = await client.call_tool(name, args)
    assert result.is_error, f"{name} should have failed, got {result.structured_content}"
    return text_of(result)


async def read_json(client: Client, uri: str) -> Any:
    result = await client.read_resource(uri)
    assert len(result.contents) == 1
    return json.loads(result.contents[0].text)


async def poll_job(client: Client, job_id: str, until: set[str], timeout: float, interval: float = 0.5) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = await call_ok(client, "check_job", {"job_id": job_id, "events": 50})
        if status["status"] in until:
            return status
        assert status["status"] not in TERMINAL, f"job ended as {status['status']}: {status['error']}\n{status['events']}"
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} still {status['status']} after {timeout} s: {status}")
        await anyio.sleep(interval)


def demo_conversation_count(demo_paths: list[Path]) -> int:
    """Counted from the files: one Claude Code session per transcript file, one OpenAI conversation per line."""
    claude_dir, openai_dir = demo_paths
    n_claude = len(list(claude_dir.rglob("*.jsonl")))
    n_openai = sum(
        1 for f in openai_dir.rglob("*.jsonl") for line in f.read_text(encoding="utf-8").splitlines() if line.strip()
    )
    return n_claude + n_openai


# --- tools/list ---------------------------------------------------------------------------------------------


async def test_list_tools_describes_every_tool(ws):
    async with Client(build_server(ws=ws)) as client:
        tools = (await client.list_tools()).tools
    OPEN_WORLD = {"start_job", "check_job", "cancel_job", "list_jobs", "pause_job", "prompt_model", "evaluate", "generate_constitutional_dataset",
                  "upload_training_file", "list_training_files", "delete_training_file", "provision_throughput", "throughput_status", "release_throughput"}
    by_name = {t.name: t for t in tools}
    assert set(by_name) == TOOLS
    assert len(tools) == len(TOOLS)
    for tool in tools:
        assert tool.description, tool.name
        assert tool.input_schema["type"] == "object", tool.name
        assert "ctx" not in tool.input_schema.get("properties", {}), tool.name
        assert tool.output_schema and tool.output_schema["type"] == "object", tool.name
        assert tool.annotations is not None, tool.name
        assert tool.annotations.title, tool.name
        # Tools that may call a cloud provider (OpenAI, Anthropic, Bedrock) say so; the rest stay on this machine.
        assert tool.annotations.open_world_hint is (tool.name in OPEN_WORLD), tool.name
    for name in READ_ONLY:
        assert by_name[name].annotations.read_only_hint is True, name
    for name in TOOLS - READ_ONLY - {"prompt_model"}:
        assert by_name[name].annotations.read_only_hint is False, name
    assert by_name["cancel_job"].annotations.destructive_hint is True
    assert by_name["delete_dataset"].annotations.destructive_hint is True
    assert by_name["build_dataset_from_memory"].annotations.destructive_hint is False
    assert by_name["start_job"].annotations.destructive_hint is False
    for name in ("deploy_model", "rollback_deployment"):
        assert by_name[name].annotations.destructive_hint is False, name
        assert by_name[name].annotations.idempotent_hint is False, name
    assert by_name["set_agent_suite"].annotations.idempotent_hint is True
    assert by_name["set_agent_suite"].input_schema["required"] == ["agent"]
    # Required arguments are the ones an agent cannot guess.
    assert by_name["build_dataset_from_memory"].input_schema["required"] == ["paths"]
    # start_job needs a dataset_id or resume=<job_id>; the domain refuses a call with neither.
    assert "required" not in by_name["start_job"].input_schema
    assert by_name["check_job"].input_schema["required"] == ["job_id"]
    assert by_name["cancel_job"].input_schema["required"] == ["job_id"]
    # evaluate takes models with a dataset_id or a suite file, or only resume=<eval_id>; the domain checks which.
    assert "required" not in by_name["evaluate"].input_schema
    # Outputs point at resources and the next id to use.
    assert "dataset_id" in by_name["build_dataset_from_memory"].output_schema["properties"]
    assert "model_id" in by_name["check_job"].output_schema["properties"]


@pytest.mark.parametrize("name", sorted(TOOLS))
async def test_tool_description_briefs_a_new_colleague(ws, name):
    async with Client(build_server(ws=ws)) as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == name)
    assert len(tool.description or "") > 100, f"{name}: description too thin ({len(tool.description or '')} chars)"


async def test_list_tools_matches_snapshot(ws):
    """Pins names and schemas: a change to the public surface must be deliberate (UPDATE_SNAPSHOTS=1 to accept)."""
    async with Client(build_server(ws=ws)) as client:
        tools = (await client.list_tools()).tools
    live = [
        {"name": t.name, "input_schema": t.input_schema, "output_schema": t.output_schema}
        for t in sorted(tools, key=lambda t: t.name)
    ]
    rendered = json.dumps(live, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(rendered, encoding="utf-8")
    assert SNAPSHOT.is_file(), f"{SNAPSHOT} is missing: run the tests once with UPDATE_SNAPSHOTS=1 to write it"
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert live == expected, "tools/list changed; if that is intended, rerun with UPDATE_SNAPSHOTS=1 and review the diff"


# --- the loop -----------------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
async def test_full_loop_through_mcp(ws, tiny_model, demo_paths):
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async with Client(build_server(ws=ws)) as client:
        # 1. Memory -> dataset, with progress notifications.
        built = await call_ok(
            client,
            "build_dataset_from_memory",
            {"paths": [str(p) for p in demo_paths], "name": "demo"},
            progress_callback=on_progress,
        )
        dataset_id = built["dataset_id"]
        assert dataset_id.startswith("ds-")
        assert built["resource_uri"] == f"datasets://{dataset_id}"
        assert built["already_existed"] is False
        assert built["problem_count"] == 0 and built["problems"] == []
        n_conversations = demo_conversation_count(demo_paths)
        assert sum(built["counts"].values()) + sum(built["dropped"].values()) == n_conversations
        assert sum(built["counts"].values()) == n_conversations  # the demo has nothing to drop
        assert all(built["counts"][s] > 0 for s in ("train", "validation", "test"))
        assert progress, "build_dataset_from_memory sent no progress notification"
        assert any(message and "reading" in message for _, _, message in progress)

        listed = await call_ok(client, "list_datasets")
        assert listed["total"] == 1
        assert [d["dataset_id"] for d in listed["datasets"]] == [dataset_id]
        assert listed["datasets"][0]["name"] == "demo"

        # The gate: valid for OpenAI, tokens counted per split, a dated quote with OpenAI's default epochs.
        inspected = await call_ok(client, "inspect_dataset", {"dataset_id": dataset_id, "provider": "openai", "model": "gpt-4o-mini"})
        assert inspected["valid"] is True and inspected["errors"] == 0
        assert inspected["counts"] == built["counts"]
        assert inspected["token_stats"]["train"]["examples"] == built["counts"]["train"]
        assert inspected["quote"]["model"] == "gpt-4o-mini-2024-07-18" and inspected["quote"]["epochs"] == 3
        assert inspected["quote"]["billed_tokens"] == 3 * inspected["token_stats"]["train"]["total"]
        assert inspected["quote"]["estimated_cost_usd"] > 0 and inspected["quote"]["prices_read_on"]
        assert listed["datasets"][0]["counts"] == built["counts"]

        # 2. Start a job: returns at once.
        started_at = time.monotonic()
        job = await call_ok(
            client,
            "start_job",
            {"dataset_id": dataset_id, "base_model": str(tiny_model), "hyperparameters": SMALL_HP},
        )
        assert time.monotonic() - started_at < 10, "start_job must not wait for training"
        job_id = job["job_id"]
        assert job["status"] in ("queued", "running")
        assert job["dataset_id"] == dataset_id
        assert job["base_model"] == str(Path(tiny_model).resolve())
        assert job["hyperparameters"]["epochs"] == 1 and job["hyperparameters"]["batch_size"] == 16
        assert job["resource_uri"] == f"jobs://{job_id}"
        assert job["model_id"] is None

        # 3. Poll until it succeeded.
        done = await poll_job(client, job_id, {"succeeded"}, timeout=120)
        assert done["total_steps"] and done["total_steps"] > 0
        assert done["step"] == done["total_steps"]
        assert done["train_loss"] is not None
        assert done["error"] is None
        assert done["eta_seconds"] is None
        assert done["finished_at"] is not None
        model_id = done["model_id"]
        assert model_id and model_id.startswith("ft-")
        assert any("succeeded" in e["message"] for e in done["events"]), done["events"]

        jobs = await call_ok(client, "list_jobs")
        assert [(j["job_id"], j["status"], j["model_id"]) for j in jobs["jobs"]] == [(job_id, "succeeded", model_id)]
        assert (await call_ok(client, "list_jobs", {"status": "running"}))["jobs"] == []

        # 4. Use the tuned model.
        answer = await call_ok(
            client, "prompt_model", {"model": model_id, "prompt": "2026-03-14T09:12:44Z [payments-api] ERROR timeout", "max_tokens": 8}
        )
        assert answer["model"] == model_id
        assert isinstance(answer["text"], str)
        assert 1 <= answer["completion_tokens"] <= 8
        assert answer["prompt_tokens"] > 0

        # 5. Evaluate base vs tuned, with progress.
        progress.clear()
        report = await call_ok(
            client,
            "evaluate",
            {"dataset_id": dataset_id, "models": [str(tiny_model), model_id], "limit": 3, "max_tokens": 8},
            progress_callback=on_progress,
        )
        assert report["cases"] == 3
        assert report["split"] == "test"
        assert set(report["scores"]) == {str(Path(tiny_model).resolve()), model_id}
        for scores in report["scores"].values():
            measured = {k: v for k, v in scores.items() if v is not None}
            quality = {"exact_match", "normalized_exact_match", "token_f1", "rouge_l", "chrf", "bleu"}  # no judge asked for: no judge score
            assert set(measured) == quality | {"perplexity", "latency_seconds", "latency_p95_seconds", "prompt_tokens", "completion_tokens", "cost_usd"}
            assert measured["perplexity"] > 1  # of the references, as local models expose their token probabilities
            assert all(0 <= measured[k] <= 1 for k in quality)
            # Local models answer on this machine: no API cost; every answer was timed and counted.
            assert measured["cost_usd"] == 0 and measured["latency_seconds"] > 0 and 0 < measured["completion_tokens"] <= 3 * 8
        eval_id = report["eval_id"]
        assert report["resource_uri"] == f"evals://{eval_id}"
        assert progress, "evaluate sent no progress notification"
        assert progress[-1][0] == progress[-1][1] == 12  # 3 cases x 2 models: an answer and a reference likelihood each

        # 6. Resources.
        index = await read_json(client, "datasets://index")
        assert [d["dataset_id"] for d in index] == [dataset_id]
        assert index[0]["uri"] == f"datasets://{dataset_id}"

        card = await read_json(client, f"datasets://{dataset_id}")
        assert card["id"] == dataset_id
        assert card["counts"] == built["counts"]
        assert card["conversations_read"] == n_conversations
        memory_files = sorted(str(f.resolve()) for folder in demo_paths for f in folder.rglob("*.jsonl"))
        assert sorted(s["path"] for s in card["sources"]) == memory_files
        for source in card["sources"]:
            assert hashlib.sha256(Path(source["path"]).read_bytes()).hexdigest() == source["sha256"]

        jobs_index = await read_json(client, "jobs://index")
        assert [j["job_id"] for j in jobs_index] == [job_id]

        detail = await read_json(client, f"jobs://{job_id}")
        assert detail["status"] == "succeeded" and detail["model_id"] == model_id
        assert isinstance(detail["metrics"], list) and detail["metrics"]
        assert all("train_loss" in m for m in detail["metrics"])
        assert any(m["train_loss"] is not None for m in detail["metrics"])

        evaluation = await read_json(client, f"evals://{eval_id}")
        assert evaluation["id"] == eval_id
        assert isinstance(evaluation["per_case"], list) and len(evaluation["per_case"]) == 3
        for case in evaluation["per_case"]:
            assert set(case["outputs"]) == set(report["scores"])
            assert case["reference"]

        # 7. Building the same memory again is free and says so.
        again = await call_ok(client, "build_dataset_from_memory", {"paths": [str(p) for p in demo_paths]})
        assert again["dataset_id"] == dataset_id and again["already_existed"] is True
        assert (await call_ok(client, "list_datasets"))["total"] == 1


# --- errors the agent can act on ----------------------------------------------------------------------------


async def test_errors_name_the_next_step(ws, tmp_path, demo_paths):
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("this is not json\n{also not json\n", encoding="utf-8")
    good = {
        "messages": [
            {"role": "user", "content": "2026-03-14T09:12:44Z [payments-api] ERROR upstream timeout"},
            {"role": "assistant", "content": "TRIAGE severity=high component=payments-api action=page"},
        ]
    }
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(
        json.dumps(good) + "\n" + "not json at all\n" + json.dumps({"messages": [
            {"role": "user", "content": "Is disk usage on db-replica-2 at 71% something to wake someone for?"},
            {"role": "assistant", "content": "TRIAGE severity=low component=db-replica-2 action=ignore"}]}) + "\n"
        + '{"messages": 5}\n',
        encoding="utf-8",
    )

    async with Client(build_server(ws=ws)) as client:
        text = await call_error(client, "check_job", {"job_id": "job-doesnotexist"})
        assert "job-doesnotexist" in text and "list_jobs" in text

        text = await call_error(client, "cancel_job", {"job_id": "job-doesnotexist"})
        assert "list_jobs" in text

        text = await call_error(client, "start_job", {"dataset_id": "ds-nope"})
        assert "ds-nope" in text
        assert "list_datasets" in text or "build_dataset_from_memory" in text

        missing = tmp_path / "missing-folder"
        text = await call_error(client, "build_dataset_from_memory", {"paths": [str(missing)]})
        assert "not found" in text and str(missing) in text

        text = await call_error(client, "build_dataset_from_memory", {"paths": [str(garbage)]})
        assert "No usable examples" in text or f"{garbage}:1" in text
        assert str(garbage) in text

        text = await call_error(client, "build_dataset_from_memory", {"paths": []})  # min_length=1
        assert "paths" in text

        mixed_result = await call_ok(client, "build_dataset_from_memory", {"paths": [str(mixed)]})
        assert mixed_result["problem_count"] == 2
        assert mixed_result["problems"][0].startswith(f"{mixed}:2:")
        assert mixed_result["problems"][1].startswith(f"{mixed}:4:")
        assert sum(mixed_result["counts"].values()) == 2

        text = await call_error(client, "prompt_model", {"model": "ft-nope", "prompt": "hello"})
        assert "ft-nope" in text and ("check_job" in text or "list_jobs" in text)

        text = await call_error(client, "prompt_model", {"prompt": "hello", "messages": [{"role": "user", "content": "hi"}]})
        assert "exactly one" in text

        text = await call_error(client, "evaluate", {"dataset_id": mixed_result["dataset_id"], "models": ["ft-nope"]})
        assert "models" in text

        text = await call_error(
            client, "evaluate", {"dataset_id": mixed_result["dataset_id"], "models": ["ft-nope", "SmolLM2-135M-Instruct"]}
        )
        assert "ft-nope" in text and "check_job" in text

        demo = await call_ok(client, "build_dataset_from_memory", {"paths": [str(p) for p in demo_paths]})
        text = await call_error(client, "start_job", {"dataset_id": demo["dataset_id"], "hyperparameters": {"epochs": 0}})
        assert "epochs" in text
        text = await call_error(client, "start_job", {"dataset_id": demo["dataset_id"], "hyperparameters": {"epoch": 2}})
        assert "epoch" in text
        text = await call_error(client, "start_job", {"dataset_id": demo["dataset_id"], "base_model": "gpt-9-imaginary"})
        assert "gpt-9-imaginary" in text and "SmolLM2-135M-Instruct" in text
        text = await call_error(client, "start_job", {"dataset_id": mixed_result["dataset_id"]})
        assert "at least 10" in text

        with pytest.raises(MCPError):
            await client.read_resource("datasets://nope")
        with pytest.raises(MCPError):
            await client.read_resource("jobs://job-nope")
        with pytest.raises(MCPError):
            await client.read_resource("evals://ev-nope")

        # Nothing was recorded by any refused call.
        assert (await call_ok(client, "list_jobs"))["jobs"] == []
    assert ws.store.jobs.all() == []


# --- cancel -------------------------------------------------------------------------------------------------


@pytest.mark.timeout(180)
async def test_cancel_a_running_job(ws, embedded_base, demo_paths):
    """The embedded model (real 135M weights) trains for minutes: long enough to catch it running."""
    async with Client(build_server(ws=ws)) as client:
        dataset = await call_ok(client, "build_dataset_from_memory", {"paths": [str(p) for p in demo_paths]})
        job = await call_ok(client, "start_job", {"dataset_id": dataset["dataset_id"], "hyperparameters": {"epochs": 3}})
        job_id = job["job_id"]
        try:
            await poll_job(client, job_id, {"running"}, timeout=90)
            pid = ws.store.jobs.get(job_id)["worker_pid"]
            assert pid and worker_alive(pid, job_id)

            cancelled = await call_ok(client, "cancel_job", {"job_id": job_id})
        finally:
            if ws.store.jobs.get(job_id)["status"] not in TERMINAL:
                await client.call_tool("cancel_job", {"job_id": job_id})

        assert cancelled["status"] == "cancelled"
        assert cancelled["finished_at"] is not None
        assert cancelled["model_id"] is None
        assert any("cancelled" in e["message"] for e in cancelled["events"])
        assert not worker_alive(pid, job_id)
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_bytes().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")

        # It stays cancelled: the dead worker is not mistaken for a crash.
        await anyio.sleep(0.5)
        assert (await call_ok(client, "check_job", {"job_id": job_id}))["status"] == "cancelled"
        assert [j["status"] for j in (await call_ok(client, "list_jobs"))["jobs"]] == ["cancelled"]
        assert (await call_ok(client, "list_jobs", {"status": "cancelled"}))["jobs"][0]["job_id"] == job_id

        text = await call_error(client, "cancel_job", {"job_id": job_id})
        assert "already ended" in text and "cancelled" in text
