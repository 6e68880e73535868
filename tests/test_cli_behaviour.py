"""The behaviour the CLI and the MCP tools share: --json output, exit codes, dataset deletion and its refusals, paging
with cursors, long text cut with a pointer to the rest. (That both take the same arguments is test_cli_operations.py.)"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
import typer.main
from typer.testing import CliRunner

from model_customization.cli import app

def test_every_command_takes_json():
    def walk(command: Any, path: str):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, f"{path} {name}".strip())
        else:
            yield path, command

    lacking = [path for path, command in walk(typer.main.get_command(app), "") if path != "serve" and "--json" not in {o for p in command.params for o in p.opts}]
    assert not lacking, f"commands without --json: {lacking}"


# --- behaviour ------------------------------------------------------------------------------------------------

runner = CliRunner()


def cli(home: Path, *args: str) -> Any:
    return runner.invoke(app, [*args, "--home", str(home)])


def cli_json(home: Path, *args: str) -> Any:
    result = cli(home, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # exactly one JSON document on stdout


CARD_FIELDS = {"sources": [], "conversations_read": 6, "formats": {"openai_chat": 6}, "dropped": {}, "unreadable": {"count": 0, "first": []}, "options": {}}


def _dataset(ws, tag: str) -> str:
    from model_customization.datasets.build import store_examples

    examples = [
        (split, {"messages": [{"role": "user", "content": f"{tag} question {i}"}, {"role": "assistant", "content": f"{tag} answer {i}"}]})
        for i, split in enumerate(["train"] * 4 + ["validation", "test"])
    ]
    dataset_id, _, _ = store_examples(ws, examples, name=f"set {tag}", method="sft", card_fields=CARD_FIELDS)
    return dataset_id


def _ended_job(ws, job_id: str, dataset_id: str, status: str = "failed") -> None:
    # An ended job (nothing for the dispatcher to start), written the way the orchestrator writes rows.
    ws.store.jobs.add({"id": job_id, "provider": "local", "base_model": "SmolLM2-135M-Instruct", "dataset_id": dataset_id, "method": "sft",
                       "hyperparameters": {"epochs": 1}, "status": status})  # fmt: skip


@pytest.fixture
def home(ws) -> Path:
    return ws.settings.home


def test_json_output_of_list_and_check_commands_parses(ws, home):
    dataset_id = _dataset(ws, "a")
    _ended_job(ws, "job-p1", dataset_id)
    ws.store.jobs.add_event("job-p1", "worker exited with code 1", "error")
    datasets = cli_json(home, "dataset", "list")
    assert [d["dataset_id"] for d in datasets["datasets"]] == [dataset_id] and datasets["next_cursor"] is None
    jobs = cli_json(home, "job", "list")
    assert [j["job_id"] for j in jobs["jobs"]] == ["job-p1"] and jobs["next_cursor"] is None
    check = cli_json(home, "job", "check", "job-p1", "--events", "10")
    assert check["status"] == "failed" and [e["message"] for e in check["events"]] == ["job created", "worker exited with code 1"]
    events = cli_json(home, "job", "events", "job-p1")
    assert [e["level"] for e in events["events"]] == ["info", "error"]
    models = cli_json(home, "model", "list")
    assert models["models"][0]["kind"] == "base" and models["next_cursor"] is None


def test_exit_codes_say_what_happened(ws, home):
    missing = cli(home, "job", "check", "job-nope")
    assert missing.exit_code == 3 and "not found" in missing.stderr
    assert cli(home, "job", "events", "job-nope").exit_code == 3
    assert cli(home, "dataset", "delete", "ds-nope").exit_code == 3
    assert cli(home, "job", "check").exit_code == 2  # usage: the job id is missing
    bad = cli(home, "dataset", "list", "--cursor", "not-a-cursor")
    assert bad.exit_code == 1 and "cursor" in bad.stderr and bad.stdout == ""


def test_dataset_delete_refuses_while_a_job_used_it_and_deletes_otherwise(ws, home):
    used, unused = _dataset(ws, "used"), _dataset(ws, "unused")
    _ended_job(ws, "job-d1", used, status="succeeded")
    folder = Path(ws.store.datasets.get(used)["path"])
    refused = cli(home, "dataset", "delete", used, "--force")
    assert refused.exit_code == 1 and "job-d1" in refused.stderr and "Nothing was deleted" in refused.stderr
    assert ws.store.datasets.get(used) and folder.is_dir()

    gone = cli_json(home, "dataset", "delete", unused)
    assert gone["deleted"] and gone["files_removed"] and gone["bytes_freed"] > 0 and not gone["forced"]
    assert ws.store.datasets.get(unused) is None
    assert not any(p.name.endswith(unused) for p in ws.settings.datasets_dir.iterdir()), "no folder is left behind"
    assert cli(home, "dataset", "delete", unused).exit_code == 3  # already gone


def test_dataset_named_by_an_evaluation_needs_force(ws, home):
    dataset_id = _dataset(ws, "evaluated")
    ws.store.evaluations.add({"id": "ev-x1", "dataset_id": dataset_id, "models": ["a", "b"], "status": "succeeded", "summary": {}, "path": str(ws.settings.home / "evals" / "ev-x1")})
    refused = cli(home, "dataset", "delete", dataset_id)
    assert refused.exit_code == 1 and "ev-x1" in refused.stderr and "force" in refused.stderr
    assert ws.store.datasets.get(dataset_id)
    forced = cli_json(home, "dataset", "delete", dataset_id, "--force")
    assert forced["forced"] and any("ev-x1" in note for note in forced["notes"])
    assert ws.store.datasets.get(dataset_id) is None


def test_paging_returns_every_row_once_even_when_rows_arrive_between_pages(ws, home):
    ids = []
    for tag in "abcde":
        ids.append(_dataset(ws, tag))
        time.sleep(0.002)  # distinct creation times
    newest_first = ids[::-1]
    first = cli_json(home, "dataset", "list", "--limit", "2")
    assert [d["dataset_id"] for d in first["datasets"]] == newest_first[:2] and first["total"] == 5
    newcomer = _dataset(ws, "late")  # arrives after the first page was read: it belongs before it, not on a later one
    seen = [d["dataset_id"] for d in first["datasets"]]
    cursor = first["next_cursor"]
    while cursor:
        page = cli_json(home, "dataset", "list", "--limit", "2", "--cursor", cursor)
        seen += [d["dataset_id"] for d in page["datasets"]]
        cursor = page["next_cursor"]
    assert seen == newest_first and newcomer not in seen
    # The text output names the next page on stderr.
    text = cli(home, "dataset", "list", "--limit", "2")
    assert text.exit_code == 0 and "more: --cursor " in text.stderr


def test_job_and_event_paging(ws, home):
    dataset_id = _dataset(ws, "jobs")
    for n in range(3):
        _ended_job(ws, f"job-q{n}", dataset_id)
        time.sleep(0.002)
    for n in range(5):
        ws.store.jobs.add_event("job-q0", f"event {n}")
    first = cli_json(home, "job", "list", "--limit", "2")
    second = cli_json(home, "job", "list", "--limit", "2", "--cursor", first["next_cursor"])
    assert [j["job_id"] for j in first["jobs"] + second["jobs"]] == ["job-q2", "job-q1", "job-q0"] and second["next_cursor"] is None
    messages, cursor = [], None
    while True:
        page = cli_json(home, "job", "events", "job-q0", "--limit", "2", *(["--cursor", cursor] if cursor else []))
        messages += [e["message"] for e in page["events"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert messages == ["job created"] + [f"event {n}" for n in range(5)]
    # A cursor of one list is refused by another, and by another job's events.
    wrong_list = cli(home, "dataset", "list", "--cursor", first["next_cursor"])
    assert wrong_list.exit_code == 1 and "belongs to a 'jobs' list" in wrong_list.stderr
    events_cursor = cli_json(home, "job", "events", "job-q0", "--limit", "1")["next_cursor"]
    other = cli(home, "job", "events", "job-q1", "--cursor", events_cursor)
    assert other.exit_code == 1 and "another job" in other.stderr


def test_model_list_shows_base_then_tuned_models_paged(ws, home):
    dataset_id = _dataset(ws, "models")
    for n in range(2):
        _ended_job(ws, f"job-m{n}", dataset_id, status="succeeded")
        ws.store.models.add({"id": f"ft-m{n}", "provider": "local", "kind": "tuned", "base_model": "SmolLM2-135M-Instruct", "job_id": f"job-m{n}", "dataset_id": dataset_id})
        time.sleep(0.002)
    first = cli_json(home, "model", "list", "--limit", "2")
    rest = cli_json(home, "model", "list", "--limit", "2", "--cursor", first["next_cursor"])
    models = first["models"] + rest["models"]
    assert [m["model_id"] for m in models] == ["SmolLM2-135M-Instruct", "ft-m1", "ft-m0"] and rest["next_cursor"] is None
    assert models[1]["job_id"] == "job-m1" and models[1]["dataset_id"] == dataset_id and models[1]["created_at"]


# --- the same through MCP -------------------------------------------------------------------------------------


def test_mcp_paging_delete_and_truncation(ws):
    from mcp import Client

    from model_customization.server.app import build_server

    dataset_id = _dataset(ws, "mcp")
    other = _dataset(ws, "mcp2")
    _ended_job(ws, "job-t1", dataset_id)
    long_message = "x" * 5000
    ws.store.jobs.add_event("job-t1", long_message, "error")

    async def scenario() -> None:
        async with Client(build_server(ws=ws)) as client:
            page = await client.call_tool("list_datasets", {"limit": 1})
            assert not page.is_error and page.structured_content["next_cursor"]
            second = await client.call_tool("list_datasets", {"limit": 1, "cursor": page.structured_content["next_cursor"]})
            assert [d["dataset_id"] for d in page.structured_content["datasets"] + second.structured_content["datasets"]] == [other, dataset_id]
            bad = await client.call_tool("list_jobs", {"cursor": "garbage!"})
            assert bad.is_error and "cursor" in bad.content[0].text

            status = (await client.call_tool("check_job", {"job_id": "job-t1"})).structured_content
            cut = status["events"][-1]["message"]
            assert len(cut) < 2300 and "truncated (3,000 more characters)" in cut and "jobs://job-t1/events" in cut
            events = (await client.call_tool("list_job_events", {"job_id": "job-t1", "limit": 1})).structured_content
            assert events["events"][0]["message"] == "job created" and events["next_cursor"]

            refused = await client.call_tool("delete_dataset", {"dataset_id": dataset_id})
            assert refused.is_error and "job-t1" in refused.content[0].text
            deleted = await client.call_tool("delete_dataset", {"dataset_id": other})
            assert not deleted.is_error and deleted.structured_content["deleted"]
            models = (await client.call_tool("list_models", {})).structured_content
            assert models["models"][0]["kind"] == "base"

    anyio.run(scenario)
    assert ws.store.datasets.get(other) is None and ws.store.datasets.get(dataset_id)
    # The resource still has the whole event.
    assert ws.store.jobs.events("job-t1", None)[-1]["message"] == long_message
