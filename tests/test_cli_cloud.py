"""The human CLI's cloud commands, driven with typer's CliRunner against the same fakes the provider tests use.

OpenAI: the real SDK talks to tests/openai_fake.py (every body checked against OpenAI's spec) through
use_http_client. Bedrock: a botocore Stubber with nothing queued, so any AWS call the CLI made would fail the test.
Constitutional data: the chat router is monkeypatched where the module calls it. The CLI opens its own workspace
on the test's data home (--home), exactly as a person's shell would.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from model_customization.cli import common as cli
from model_customization.cli import app
from openai_fake import FakeOpenAI, serving

API_KEY = "sk-test-CLI-DO-NOT-LEAK-0123456789abcdef"
BASE = "gpt-4.1-mini-2025-04-14"


# --- fixtures and helpers -------------------------------------------------------------------------------------------
@pytest.fixture
def fake(ws, monkeypatch: pytest.MonkeyPatch):
    with serving(monkeypatch, API_KEY, ws=ws) as server:
        yield server


@pytest.fixture
def dataset_id(ws, demo_paths) -> str:
    from model_customization.datasets.build import build_dataset

    return build_dataset(ws, demo_paths).dataset_id


@pytest.fixture
def invoke(ws):
    """Run the CLI on the test's data home; the API key must never appear in anything it prints."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        result = runner.invoke(app, [*args, "--home", str(ws.settings.home)], input=input)
        assert API_KEY not in result.output
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return run


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def uploads(fake: FakeOpenAI) -> int:
    return fake.count("POST", "/files")


def created_jobs(fake: FakeOpenAI) -> list[dict[str, Any]]:
    return [body for method, template, body in fake.request_bodies if (method, template) == ("POST", "/fine_tuning/jobs")]


def quote_of(invoke, dataset_id: str) -> float:
    dry = invoke("job", "start", dataset_id, "--provider", "openai", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    return json.loads(dry.stdout)["quote"]["estimated_cost_usd"]


# --- job start on OpenAI: dry run, refusal, confirmation --------------------------------------------------------------
def test_dry_run_prints_the_quote_and_creates_nothing(ws, fake, invoke, dataset_id):
    result = invoke("job", "start", dataset_id, "--provider", "openai", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "dry_run" and summary["job_id"] is None and summary["base_model"] == BASE
    quote = summary["quote"]
    assert quote["provider"] == "openai" and quote["billed_tokens"] > 0
    assert quote["estimated_cost_usd"] == pytest.approx(round(quote["billed_tokens"] * quote["usd_per_million_tokens"] / 1_000_000, 4))

    text = invoke("job", "start", dataset_id, "--provider", "openai", "--dry-run")
    assert text.exit_code == 0, text.output
    assert f"estimated cost: ${quote['estimated_cost_usd']:,.2f}" in flat(text.output)
    assert "nothing was started or spent" in flat(text.output)

    assert uploads(fake) == 0 and created_jobs(fake) == []
    assert ws.store.jobs.all() == []


def test_over_budget_without_confirmation_is_refused_and_uploads_nothing(ws, fake, invoke, dataset_id, monkeypatch):
    quote = quote_of(invoke, dataset_id)
    assert quote > 0
    result = invoke("job", "start", dataset_id, "--provider", "openai")  # CliRunner's stdin is no terminal
    assert result.exit_code == 4  # needs a confirmation
    message = flat(result.output)
    assert "per-job budget of $0.00" in message and f"--confirm-cost-usd {quote}" in message

    # --yes never answers a cost question, even at a terminal: still refused, and nobody is asked.
    monkeypatch.setattr(cli, "interactive", lambda: True)
    result = invoke("job", "start", dataset_id, "--provider", "openai", "--yes")
    assert result.exit_code == 4 and "?" not in result.output.split("error:")[0]
    # A confirmation below the quote is refused too.
    result = invoke("job", "start", dataset_id, "--provider", "openai", "--yes", "--confirm-cost-usd", str(quote / 2))
    assert result.exit_code == 4 and "is below the quote" in flat(result.output)

    assert uploads(fake) == 0 and created_jobs(fake) == []
    assert ws.store.jobs.all() == [] and ws.store.spending.since(0) == 0


def test_confirmed_start_sends_the_hyperparameters_and_options(ws, fake, invoke, dataset_id):
    quote = quote_of(invoke, dataset_id)
    result = invoke(
        "job", "start", dataset_id, "--provider", "openai", "--confirm-cost-usd", str(quote), "--json",
        "--hp", "n_epochs=2", "--hp", "learning_rate_multiplier=0.5", "--hp", "batch_size=auto",
        "--suffix", "triage", "--seed", "7", "--metadata", "team=ops", "--metadata", "ticket=42",
        "--integration", '{"type": "wandb", "wandb": {"project": "cli-test"}}', "--idempotency-key", "cli-key-1",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["provider"] == "openai" and summary["remote_id"].startswith("ftjob-")
    assert summary["spend"]["approved_by"] == "argument"

    (request,) = created_jobs(fake)
    assert request["model"] == BASE
    assert request["method"]["supervised"]["hyperparameters"] == {"n_epochs": 2, "learning_rate_multiplier": 0.5, "batch_size": "auto"}
    assert request["suffix"] == "triage" and request["seed"] == 7
    assert request["integrations"] == [{"type": "wandb", "wandb": {"project": "cli-test"}}]
    assert request["metadata"]["team"] == "ops" and request["metadata"]["ticket"] == "42"  # metadata stays text
    assert request["metadata"]["mc_idempotency_key"] == "cli-key-1" and "validation_file" in request

    # The same key again is the same job: nothing new created or uploaded.
    files_before = uploads(fake)
    again = invoke("job", "start", dataset_id, "--provider", "openai", "--confirm-cost-usd", str(quote), "--idempotency-key", "cli-key-1",
                   "--hp", "n_epochs=2", "--hp", "learning_rate_multiplier=0.5", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["job_id"] == summary["job_id"]
    assert len(created_jobs(fake)) == 1 and uploads(fake) == files_before

    shown = invoke("job", "check", summary["job_id"])
    assert shown.exit_code == 0 and f"openai job: {summary['remote_id']}" in flat(shown.output)
    spend = summary["spend"]
    assert spend["quoted_usd"] < quote  # 2 epochs quoted, below the 3 of the default quote that was confirmed
    assert f"quoted ${spend['quoted_usd']:,.2f}, committed ${spend['committed_usd']:,.2f} (approved by argument)" in flat(shown.output)


def test_no_validation_uploads_only_the_training_split(ws, fake, invoke, dataset_id):
    quote = quote_of(invoke, dataset_id)
    result = invoke("job", "start", dataset_id, "--provider", "openai", "--confirm-cost-usd", str(quote), "--no-validation", "--json")
    assert result.exit_code == 0, result.output
    (request,) = created_jobs(fake)
    assert "validation_file" not in request and uploads(fake) == 1


def test_at_a_terminal_the_cost_is_asked_and_a_no_starts_nothing(ws, fake, invoke, dataset_id, monkeypatch):
    quote = quote_of(invoke, dataset_id)
    monkeypatch.setattr(cli, "interactive", lambda: True)
    declined = invoke("job", "start", dataset_id, "--provider", "openai", input="n\n")
    assert declined.exit_code == 1
    assert f"costing at most ${quote:,.2f}" in flat(declined.output) and "did not confirm the cost" in flat(declined.output)
    assert uploads(fake) == 0 and created_jobs(fake) == [] and ws.store.jobs.all() == []

    accepted = invoke("job", "start", dataset_id, "--provider", "openai", "--json", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    # The question went to stderr; CliRunner echoes the typed answer onto stdout (a terminal would show it itself).
    echoed, _, document = accepted.stdout.partition("{")
    assert echoed.strip() == "y"
    summary = json.loads("{" + document)
    assert summary["spend"]["approved_by"] == "terminal" and summary["spend"]["committed_usd"] == pytest.approx(quote)
    assert len(created_jobs(fake)) == 1


def test_options_that_do_not_fit_the_provider_are_refused_before_anything_happens(ws, fake, invoke, dataset_id):
    cases = [
        (["--provider", "openai", "--epochs", "3"], "--epochs sets local LoRA training"),
        (["--provider", "openai", "--hp", "n_epochs"], "--hp takes KEY=VALUE"),
        (["--provider", "openai", "--hp", "n_epochs=2", "--hp", "n_epochs=3"], "given twice"),
        (["--provider", "openai", "--integration", "wandb"], "--integration takes one JSON object"),
        (["--provider", "bedrock", "--seed", "3"], "--seed applies to OpenAI or Azure OpenAI or Together AI jobs"),
        (["--provider", "local", "--suffix", "x"], "--suffix applies to cloud jobs"),
        (["--provider", "local", "--epochs", "1", "--hp", "epochs=2"], "given both as an option and with --hp"),
        (["--provider", "openai", "--hp", "n_epochs=0", "--dry-run"], "n_epochs must be"),
        (["--provider", "azure", "--epochs", "1"], "Unknown --provider 'azure'"),
    ]
    for args, expected in cases:
        result = invoke("job", "start", dataset_id, *args)
        assert result.exit_code == 1, (args, result.output)
        assert expected in flat(result.output), (args, result.output)
    assert fake.count("POST", "/files") == 0 and created_jobs(fake) == [] and ws.store.jobs.all() == []


# --- pause, remote listings -----------------------------------------------------------------------------------------
def test_pause_then_resume_and_the_remote_views(ws, fake, invoke, dataset_id):
    fake.scripts.append(["running", "running", "running", "running", "succeeded"])
    quote = quote_of(invoke, dataset_id)
    started = invoke("job", "start", dataset_id, "--provider", "openai", "--confirm-cost-usd", str(quote), "--json")
    assert started.exit_code == 0, started.output
    job_id = json.loads(started.stdout)["job_id"]
    remote_id = ws.store.jobs.get(job_id)["remote_id"]

    paused = invoke("job", "pause", job_id, "--json")
    assert paused.exit_code == 0, paused.output
    assert json.loads(paused.stdout)["status"] == "paused" and fake.jobs[remote_id]["object"]["status"] == "paused"
    again = invoke("job", "pause", job_id)
    assert again.exit_code == 1  # OpenAI refuses to pause a paused job; the CLI says so and exits 1

    resumed = invoke("job", "start", "--resume", job_id, "--json")
    assert resumed.exit_code == 0, resumed.output
    assert fake.jobs[remote_id]["object"]["status"] == "running"

    listed = invoke("job", "remote-list", "--provider", "openai", "--limit", "1", "--json")
    assert listed.exit_code == 0, listed.output
    page = json.loads(listed.stdout)
    assert [j["id"] for j in page["jobs"]] == [remote_id] and page["jobs"][0]["ledger_job_id"] == job_id
    assert page["has_more"] and page["next_after"] == remote_id
    older = json.loads(invoke("job", "remote-list", "--provider", "openai", "--after", remote_id, "--json").stdout)
    assert [j["fine_tuned_model"] for j in older["jobs"]] == ["ft:gpt-4o-mini-2024-07-18:fake-org::old001"]

    events = invoke("job", "remote-events", job_id, "--json")
    assert events.exit_code == 0, events.output
    messages = [e["message"] for e in json.loads(events.stdout)["events"]]
    assert "Fine-tuning job paused" in messages and f"Created fine-tuning job: {remote_id}" in messages
    text = invoke("job", "remote-events", remote_id)  # OpenAI's own id works too
    assert text.exit_code == 0 and "Fine-tuning job paused" in text.output

    checkpoints = invoke("job", "checkpoints", job_id, "--json")
    assert checkpoints.exit_code == 0, checkpoints.output
    assert json.loads(checkpoints.stdout)["job_id"] == remote_id

    local_only = invoke("job", "remote-list", "--provider", "local")
    assert local_only.exit_code == 1 and "job list" in flat(local_only.output)


# --- files ----------------------------------------------------------------------------------------------------------
def test_files_upload_list_delete(ws, fake, invoke, dataset_id):
    uploaded = invoke("files", "upload", dataset_id, "--split", "validation", "--json")
    assert uploaded.exit_code == 0, uploaded.output
    first = json.loads(uploaded.stdout)
    assert first["how"] == "uploaded" and first["split"] == "validation" and first["file_id"] in fake.files
    from model_customization.datasets.build import read_split
    from model_customization.datasets.render import render_openai

    sent = [json.loads(line) for line in fake.files[first["file_id"]]["content"].decode().splitlines()]
    assert sent == [render_openai(row) for row in read_split(ws, dataset_id, "validation")]

    again = invoke("files", "upload", dataset_id, "--split", "validation")
    assert again.exit_code == 0 and "already uploaded from this data home" in flat(again.output)
    assert uploads(fake) == 1

    listed = invoke("files", "list", "--json")
    assert listed.exit_code == 0, listed.output
    (row,) = [f for f in json.loads(listed.stdout)["files"] if f["id"] == first["file_id"]]
    assert row["uploaded_from_this_data_home"] and row["sha256"] == first["sha256"]
    table = invoke("files", "list")
    assert table.exit_code == 0 and first["file_id"] in table.output

    deleted = invoke("files", "delete", first["file_id"], "--json")
    assert deleted.exit_code == 0 and json.loads(deleted.stdout) == {"id": first["file_id"], "deleted": True}
    assert first["file_id"] not in fake.files
    gone = invoke("files", "delete", first["file_id"])
    assert gone.exit_code == 3 and "list_files" in flat(gone.output)  # not found

    bad_split = invoke("files", "upload", dataset_id, "--split", "dev")
    assert bad_split.exit_code == 1 and "Unknown split 'dev'" in flat(bad_split.output)


def test_missing_key_is_a_clear_error(ws, fake, invoke, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    result = invoke("files", "list")
    assert result.exit_code == 1 and "OPENAI_API_KEY is not set" in flat(result.output)


# --- model prompt goes through the chat router ----------------------------------------------------------------------
def test_model_prompt_reaches_a_cloud_model_through_the_router(ws, fake, invoke, monkeypatch):
    monkeypatch.setenv("MODEL_CUSTOMIZATION_BUDGET_PER_JOB_USD", "1")  # chat within budgets the operator set
    monkeypatch.setenv("MODEL_CUSTOMIZATION_BUDGET_PER_DAY_USD", "10")
    fake.chat_reply = lambda model, messages: f"[{model}] saw {messages[-1]['content']}"  # brackets stay text, not markup
    result = invoke("model", "prompt", "gpt-4.1-mini", "ping", "--max-tokens", "16")
    assert result.exit_code == 0, result.output
    assert "[gpt-4.1-mini] saw ping" in result.output
    as_json = json.loads(invoke("model", "prompt", "openai:gpt-4.1-mini", "ping", "--system", "be brief", "--json").stdout)
    assert as_json["provider"] == "openai" and as_json["text"].endswith("saw ping")
    (last,) = [body for method, template, body in fake.request_bodies if template == "/chat/completions"][-1:]
    assert last["messages"][0] == {"role": "system", "content": "be brief"}


# --- Bedrock provisioned throughput ---------------------------------------------------------------------------------
@pytest.fixture
def bedrock_model(ws, monkeypatch):
    import boto3
    from botocore.stub import ANY, Stubber

    from model_customization.providers.bedrock import clients

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTINGONLY00000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv(clients.REGION_ENV, "us-west-2")
    model_arn = "arn:aws:bedrock:us-west-2:123456789012:custom-model/anthropic.claude-3-5-haiku-20241022-v1:0:200k/abcdef123456"
    ws.store.models.add(
        {"id": "triage-mc-0123", "provider": "bedrock", "kind": "tuned", "base_model": "anthropic.claude-3-5-haiku-20241022-v1:0:200k", "path": None,
         "job_id": "job-1", "dataset_id": "ds-1", "details": {"model_arn": model_arn}}
    )
    bedrock = boto3.client("bedrock", region_name="us-west-2")
    stub = Stubber(bedrock)
    with stub, clients.use_clients({"bedrock": bedrock}):
        yield type("Bedrock", (), {"stub": stub, "model_id": "triage-mc-0123", "model_arn": model_arn, "ANY": ANY})
    stub.assert_no_pending_responses()


def test_provision_is_refused_without_yes_and_bought_with_it(ws, invoke, bedrock_model, monkeypatch):
    monkeypatch.setenv("MODEL_CUSTOMIZATION_ALLOW_ARGUMENT_CONFIRMATION", "true")  # --yes stands in for a person only then
    model_id = bedrock_model.model_id
    refused = invoke("model", "provision", model_id)  # nothing queued on the stub: any AWS call would fail
    assert refused.exit_code == 4  # needs a confirmation
    assert "hour" in flat(refused.output) and "add --yes" in flat(refused.output)
    assert "provisioned_model_arn" not in ws.store.models.get(model_id)["details"]

    monkeypatch.setattr(cli, "interactive", lambda: True)
    declined = invoke("model", "provision", model_id, input="n\n")
    assert declined.exit_code == 1 and "Nothing was bought" in flat(declined.output)
    assert "provisioned_model_arn" not in ws.store.models.get(model_id)["details"]

    other = invoke("model", "provision", "no-such-model")  # not a billing question: fails without asking
    assert other.exit_code == 3 and "not found" in flat(other.output) and "Buy" not in other.output

    pt_arn = "arn:aws:bedrock:us-west-2:123456789012:provisioned-model/abcdef123456"
    bedrock_model.stub.add_response(
        "create_provisioned_model_throughput",
        {"provisionedModelArn": pt_arn},
        {"modelUnits": 2, "provisionedModelName": "pt-triage-mc-0123", "modelId": bedrock_model.model_arn, "clientRequestToken": bedrock_model.ANY, "tags": bedrock_model.ANY},
    )
    bought = invoke("model", "provision", model_id, "--model-units", "2", "--yes", "--json")
    assert bought.exit_code == 0, bought.output
    assert json.loads(bought.stdout)["provisioned_model_arn"] == pt_arn
    assert ws.store.models.get(model_id)["details"]["provisioned_model_arn"] == pt_arn

    bedrock_model.stub.add_response("delete_provisioned_model_throughput", {}, {"provisionedModelId": pt_arn})
    released = invoke("model", "release", model_id)
    assert released.exit_code == 0 and pt_arn in released.output
    status = invoke("model", "throughput", model_id)
    assert status.exit_code == 1 and "has no provisioned throughput" in flat(status.output)


def test_provision_asks_at_a_terminal(ws, invoke, bedrock_model, monkeypatch):
    monkeypatch.setattr(cli, "interactive", lambda: True)
    pt_arn = "arn:aws:bedrock:us-west-2:123456789012:provisioned-model/fedcba654321"
    bedrock_model.stub.add_response(
        "create_provisioned_model_throughput",
        {"provisionedModelArn": pt_arn},
        {"modelUnits": 1, "provisionedModelName": "pt-triage-mc-0123", "modelId": bedrock_model.model_arn, "clientRequestToken": bedrock_model.ANY, "tags": bedrock_model.ANY},
    )
    result = invoke("model", "provision", bedrock_model.model_id, input="y\n")
    assert result.exit_code == 0, result.output
    assert "Buy 1 model unit(s)" in result.output and f"provisioned_model_arn: {pt_arn}" in result.output


# --- constitutional data --------------------------------------------------------------------------------------------
class EchoChat:
    """A model that answers "A(...)", critiques "C(...)" and revises "R(...)"; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, ws, model, messages, *, max_tokens=256, temperature=0.0, seed=0, allowance=None) -> dict[str, Any]:
        assert model == "openai:scripted" and max_tokens == 32
        self.calls += 1
        ask = messages[-1]["content"]
        if ask.startswith("Review your previous answer"):
            text = f"C({messages[-2]['content']})"
        elif ask.startswith("Now rewrite"):
            text = f"R({messages[-4]['content']})"
        else:
            text = f"A({ask})"
        return {"model": model, "text": text, "prompt_tokens": 3, "completion_tokens": 2, "seconds": 0.0, "stop_reason": "stop"}


def test_dataset_constitutional_stores_both_datasets(ws, invoke, monkeypatch):
    from model_customization.datasets import constitutional
    from model_customization.datasets.build import read_split

    model = EchoChat()
    monkeypatch.setattr(constitutional.chat_router, "chat", model)
    prompts = [f"How do I do task {n} safely?" for n in range(6)]
    args = ["dataset", "constitutional", "--principle", "Be harmless.", "--principle", "Be honest.", "--model", "openai:scripted", "--max-tokens", "32", "--name", "cli-const"]
    for text in prompts:
        args += ["--prompt", text]
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert model.calls == report["model_calls"] == len(prompts) * (1 + 2 * 2)
    assert report["succeeded"] == len(prompts) and report["dpo_dataset_id"]
    sft_rows = [row for split in ("train", "validation", "test") for row in read_split(ws, report["sft_dataset_id"], split)]
    assert len(sft_rows) == len(prompts)
    assert all(row["messages"][-1]["content"].startswith("R(R(A(") for row in sft_rows)  # two revisions of the answer

    # The progress-bar path (no --json) gives the same datasets and says where they are.
    shown = invoke(*args, "--limit", "2")
    assert shown.exit_code == 0, shown.output
    assert "SFT dataset" in shown.output and "2 of 2 prompts revised" in flat(shown.output)


def test_dataset_constitutional_needs_prompts_or_a_dataset(ws, invoke, monkeypatch):
    from model_customization.datasets import constitutional

    model = EchoChat()
    monkeypatch.setattr(constitutional.chat_router, "chat", model)
    both = invoke("dataset", "constitutional", "--principle", "Be kind.", "--model", "openai:scripted", "--prompt", "hi", "--from-dataset", "ds-x")
    assert both.exit_code == 1 and "exactly one of prompts" in flat(both.output)
    missing = invoke("dataset", "constitutional", "--principle", "Be kind.", "--model", "openai:scripted", "--from-dataset", "ds-missing", "--max-tokens", "32")
    assert missing.exit_code == 3 and "list_datasets" in flat(missing.output)  # not found
    assert model.calls == 0
