"""Bedrock provider against moto (S3 and customization jobs) and botocore Stubbers (what moto lacks).

The Stubber checks every request against botocore's service model, and the names we derive are checked against the
patterns in that model, so a request AWS would refuse fails here. moto's jobs never advance on their own: tests set
the status inside moto's backend.
"""

from __future__ import annotations

import dataclasses

import json
import re
import subprocess
import sys

import boto3
import botocore.session
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws
from moto.bedrock.models import bedrock_backends
from moto.core import DEFAULT_ACCOUNT_ID

from model_customization.datasets.build import build_dataset
from model_customization.errors import NotFoundError, UserError
from model_customization.providers.base import idempotency_key
from model_customization.providers.bedrock import chat as bedrock_chat
from model_customization.providers.bedrock import clients
from model_customization.providers.bedrock.provider import BedrockProvider
from model_customization.providers.bedrock.training import (
    list_remote_jobs,
    provision_throughput,
    release_throughput,
    remote_job_name,
    throughput_status,
)

REGION = "us-west-2"
BUCKET = "mc-training-bucket"
ROLE = "arn:aws:iam::123456789012:role/bedrock-customization"
SECRET = "wJalrXUtnFEMI-not-a-real-secret-K7MDENG"
ACTIVE_CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0:200k"  # a Claude model for chat and provisioned throughput
RETIRED_CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0:200k"
NOVA_LITE = "amazon.nova-lite-v1:0:300k"
PT_ARN = "arn:aws:bedrock:us-west-2:123456789012:provisioned-model/abcdef123456"
BEDROCK_MODEL = botocore.session.get_session().get_service_model("bedrock")


def api_pattern(operation: str, member: str) -> str:
    return BEDROCK_MODEL.operation_model(operation).input_shape.members[member].metadata["pattern"]


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTINGONLY00000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv(clients.REGION_ENV, REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")  # ours wins over it
    monkeypatch.setenv(clients.BUCKET_ENV, BUCKET)
    monkeypatch.setenv(clients.ROLE_ENV, ROLE)
    monkeypatch.delenv(clients.PREFIX_ENV, raising=False)
    monkeypatch.delenv(clients.PRICE_ENV, raising=False)


@pytest.fixture
def aws(aws_env: None):
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        bedrock = boto3.client("bedrock", region_name=REGION)
        with clients.use_clients({"s3": s3, "bedrock": bedrock}):
            yield type("Aws", (), {"s3": s3, "bedrock": bedrock})


@pytest.fixture
def dataset_id(ws, demo_paths) -> str:
    return build_dataset(ws, demo_paths).dataset_id


def stubbed(service: str) -> tuple[object, Stubber]:
    client = boto3.client(service, region_name=REGION)
    return client, Stubber(client)


def new_job(
    ws, dataset_id: str, *, key: str | None = None, hp: dict | None = None, options: dict | None = None, job_id: str = "job-000000000001", base: str = NOVA_LITE
) -> dict:
    provider = BedrockProvider()
    parsed = provider.parse_hyperparameters("sft", hp)
    ws.store.jobs.add(
        {
            "id": job_id, "provider": "bedrock", "base_model": base, "dataset_id": dataset_id, "method": "sft",
            "hyperparameters": parsed, "status": "validating", "attempts": 0,
            "idempotency_key": key or idempotency_key(dataset_id, base, "sft", parsed),
            "details": {"options": options or {}},
        }
    )
    return ws.store.jobs.get(job_id)


def submit(ws, job: dict) -> dict:
    """What the orchestrator does with submit's answer."""
    result = BedrockProvider().submit(ws, job)
    ws.store.jobs.update(job["id"], remote_id=result["remote_id"], remote_status=result["remote_status"], details={**(job["details"] or {}), **result["details"]})
    return ws.store.jobs.get(job["id"])


def moto_job(name: str):
    return bedrock_backends[DEFAULT_ACCOUNT_ID][REGION].model_customization_jobs[name]


def all_keys(s3) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


# --- availability (discovery and the families: tests/test_bedrock_families.py) ------------------------------------
def test_dpo_and_missing_settings_are_refused_with_the_variable_named(ws, aws, monkeypatch):
    provider = BedrockProvider()
    assert clients.settings() == clients.BedrockSettings(region=REGION, bucket=BUCKET, prefix="model-customization", role_arn=ROLE)
    with pytest.raises(UserError, match="Bedrock offers no 'dpo' training"):
        provider.check_available(ws, None, "dpo")
    monkeypatch.delenv(clients.BUCKET_ENV)
    with pytest.raises(UserError, match=clients.BUCKET_ENV):
        provider.check_available(ws, None, "sft")
    monkeypatch.setenv(clients.BUCKET_ENV, BUCKET)
    monkeypatch.delenv(clients.ROLE_ENV)
    with pytest.raises(UserError, match=clients.ROLE_ENV):
        provider.check_available(ws, None, "sft")
    monkeypatch.setenv(clients.ROLE_ENV, "not-an-arn")
    with pytest.raises(UserError, match="not an IAM role ARN"):
        provider.check_available(ws, None, "sft")


def test_missing_credentials_and_region_are_named_without_secrets(ws, aws_env, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    assert clients.client("bedrock").meta.region_name == REGION  # made, not called: no network
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    with pytest.raises(UserError) as refused:
        BedrockProvider().check_available(ws, None, "sft")
    assert "AWS_ACCESS_KEY_ID" in str(refused.value) and SECRET not in str(refused.value)
    monkeypatch.delenv(clients.REGION_ENV)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    with pytest.raises(UserError, match=clients.REGION_ENV):
        clients.region()


# --- quote (per family hyperparameters and formats: tests/test_bedrock_families.py) ---------------------------------
def test_quote_counts_tokens_and_prices_only_when_the_operator_set_a_price(ws, dataset_id, monkeypatch):
    provider = BedrockProvider()
    hp = provider.parse_hyperparameters("sft", {"epoch_count": 3})
    unknown = provider.quote(ws, dataset_id, NOVA_LITE, "sft", hp)
    assert unknown["estimated_cost_usd"] is None and unknown["tokens_approximate"] is True
    assert unknown["family"] == "nova" and unknown["data_format"] == "bedrock-conversation-2024"
    assert unknown["epochs"] == 3 and unknown["train_examples"] == ws.store.datasets.get(dataset_id)["counts"]["train"]
    assert unknown["tokens_per_epoch"] > 1000 and unknown["billed_tokens"] == 3 * unknown["tokens_per_epoch"]
    assert provider.quote(ws, dataset_id, NOVA_LITE, "sft", {})["epochs"] == 2  # Nova's default
    monkeypatch.setenv(clients.PRICE_ENV, "8")
    priced = provider.quote(ws, dataset_id, NOVA_LITE, "sft", hp)
    assert priced["estimated_cost_usd"] == pytest.approx(priced["billed_tokens"] * 8 / 1_000_000, abs=1e-4)
    assert isinstance(priced["estimated_cost_usd"], float)
    # Per family: the longest matching prefix wins; a model without a price stays unpriced (a person must approve).
    monkeypatch.setenv(clients.PRICE_ENV, json.dumps({"amazon.nova": 1, "amazon.nova-lite": 2}))
    assert provider.quote(ws, dataset_id, NOVA_LITE, "sft", hp)["usd_per_million_tokens"] == 2
    assert provider.quote(ws, dataset_id, "meta.llama3-1-8b-instruct-v1:0:128k", "sft", {})["estimated_cost_usd"] is None
    monkeypatch.setenv(clients.PRICE_ENV, "cheap")
    with pytest.raises(UserError, match=clients.PRICE_ENV):
        provider.quote(ws, dataset_id, NOVA_LITE, "sft", hp)


# --- submitting ---------------------------------------------------------------------------------------------------
def test_submit_uploads_nova_format_and_creates_a_valid_job(ws, aws, dataset_id):
    job = new_job(ws, dataset_id, hp={"epoch_count": 3}, options={"suffix": "triage bot"})
    job = submit(ws, job)
    name = remote_job_name(job["idempotency_key"])
    assert job["remote_id"] == name and job["remote_status"] == "InProgress"

    described = aws.bedrock.get_model_customization_job(jobIdentifier=name)
    details = job["details"]
    assert described["roleArn"] == ROLE and described["customizationType"] == "FINE_TUNING"
    assert described["baseModelArn"].endswith(NOVA_LITE)
    assert described["hyperParameters"] == {"epochCount": "3", "learningRate": "1e-05", "learningRateWarmupSteps": "10"}
    assert described["outputDataConfig"]["s3Uri"] == f"s3://{BUCKET}/model-customization/output/{job['id']}/"
    assert described["trainingDataConfig"]["s3Uri"] == details["training_data"]
    assert described["validationDataConfig"]["validators"][0]["s3Uri"] == details["validation_data"]
    assert described["clientRequestToken"] == name
    # The names obey the API's own patterns (botocore does not check patterns client-side; AWS would).
    assert re.fullmatch(api_pattern("CreateModelCustomizationJob", "jobName"), name)
    assert re.fullmatch(api_pattern("CreateModelCustomizationJob", "clientRequestToken"), name)
    assert re.fullmatch(api_pattern("CreateModelCustomizationJob", "customModelName"), details["custom_model_name"])
    assert re.fullmatch(api_pattern("CreateModelCustomizationJob", "baseModelIdentifier"), NOVA_LITE)
    assert details["custom_model_name"] == f"triage-bot-{name}"
    tags = {t["key"]: t["value"] for t in aws.bedrock.list_tags_for_resource(resourceARN=described["jobArn"])["tags"]}
    assert tags == {"model-customization:idempotency-key": job["idempotency_key"], "model-customization:job-id": job["id"]}

    counts = ws.store.datasets.get(dataset_id)["counts"]
    for split, uri in (("train", details["training_data"]), ("validation", details["validation_data"])):
        key = uri.removeprefix(f"s3://{BUCKET}/")
        assert re.fullmatch(r"model-customization/data/[0-9a-f]{64}\.jsonl", key)
        body = aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        rows = [json.loads(line) for line in body.decode("utf-8").splitlines()]
        assert len(rows) == counts[split]
        for row in rows:
            assert row["schemaVersion"] == "bedrock-conversation-2024" and set(row) <= {"schemaVersion", "system", "messages"}
            roles = [m["role"] for m in row["messages"]]
            assert roles == ["user", "assistant"] * (len(roles) // 2) and roles, roles
            assert all(set(m) == {"role", "content"} and m["content"][0]["text"].strip() for m in row["messages"])
        assert SECRET.encode() not in body
    assert any("system" in json.loads(line) for line in aws.s3.get_object(Bucket=BUCKET, Key=details["training_data"].removeprefix(f"s3://{BUCKET}/"))["Body"].read().decode().splitlines())
    stored = json.dumps([ws.store.jobs.events(job["id"], limit=None), ws.store.jobs.get(job["id"])["details"]])
    assert SECRET not in stored


def test_submit_on_claude_keeps_its_format_and_early_stopping(ws, aws, dataset_id):
    """Where Bedrock still offers Claude 3 Haiku, a job on it uploads Claude's own format with its hyperparameters."""
    job = submit(ws, new_job(ws, dataset_id, hp={"learning_rate_multiplier": 0.5}, base=RETIRED_CLAUDE))
    described = aws.bedrock.get_model_customization_job(jobIdentifier=job["remote_id"])
    assert described["hyperParameters"] == {
        "epochCount": "2", "batchSize": "32", "learningRateMultiplier": "0.5", "earlyStoppingThreshold": "0.001", "earlyStoppingPatience": "2",
    }
    body = aws.s3.get_object(Bucket=BUCKET, Key=job["details"]["training_data"].removeprefix(f"s3://{BUCKET}/"))["Body"].read().decode()
    for line in body.splitlines():
        row = json.loads(line)
        assert set(row) <= {"system", "messages"} and all(isinstance(m["content"], str) for m in row["messages"])


def test_same_content_is_uploaded_once(ws, aws, dataset_id):
    puts: list[str] = []
    aws.s3.meta.events.register("before-call.s3.PutObject", lambda params, **_: puts.append(params["url_path"]))
    first = submit(ws, new_job(ws, dataset_id, key="first-key", job_id="job-00000000000a"))
    assert len(puts) == 2  # train and validation
    second = submit(ws, new_job(ws, dataset_id, key="second-key", hp={"epoch_count": 3}, job_id="job-00000000000b"))
    assert len(puts) == 2, "the same rendered data must not be uploaded again"
    assert second["details"]["training_data"] == first["details"]["training_data"]
    assert any("reused" in e["message"] for e in ws.store.jobs.events(second["id"], limit=None))
    assert len(all_keys(aws.s3)) == 2
    assert ws.store.provider_files.find("bedrock", first["details"]["training_data"].rsplit("/", 1)[-1].removesuffix(".jsonl"))


def test_find_existing_and_a_retried_submit_adopt_the_same_job(ws, aws, dataset_id):
    provider = BedrockProvider()
    key = "a caller's own key: not a valid job name!"
    assert provider.find_existing(ws, key) is None
    job = submit(ws, new_job(ws, dataset_id, key=key))
    name = remote_job_name(key)
    assert name == remote_job_name(key) and re.fullmatch(api_pattern("CreateModelCustomizationJob", "jobName"), name)
    found = provider.find_existing(ws, key)
    assert found["remote_id"] == job["remote_id"] == name
    assert found["details"]["job_arn"] == job["details"]["job_arn"]
    again = provider.submit(ws, ws.store.jobs.get(job["id"]))  # a retry after a lost reply: moto says the name is in use
    assert again["remote_id"] == name
    assert len(aws.bedrock.list_model_customization_jobs()["modelCustomizationJobSummaries"]) == 1


# --- following a job ----------------------------------------------------------------------------------------------
def test_statuses_are_mapped_and_an_unknown_one_is_kept_verbatim(ws, aws, dataset_id):
    provider = BedrockProvider()
    job = submit(ws, new_job(ws, dataset_id))
    remote = moto_job(job["remote_id"])
    seen = []
    for status in ("InProgress", "Stopping", "Validating"):
        remote.status = status
        provider.refresh(ws, ws.store.jobs.get(job["id"]))
        row = ws.store.jobs.get(job["id"])
        seen.append((row["status"], row["remote_status"]))
    assert seen == [("running", "InProgress"), ("running", "Stopping"), ("Validating", "Validating")]
    assert any("'Validating'" in e["message"] and e["level"] == "warning" for e in ws.store.jobs.events(job["id"], limit=None))
    remote.status, remote.failure_message = "Failed", "Training data s3 object is not valid JSONL"
    provider.refresh(ws, ws.store.jobs.get(job["id"]))
    row = ws.store.jobs.get(job["id"])
    assert row["status"] == "failed" and row["error"] == "Training data s3 object is not valid JSONL"
    assert row["model_id"] is None


def test_stage_changes_become_events(ws, aws_env, dataset_id):
    """Bedrock's statusDetails (validation, data processing, training) as events, once per change."""
    from datetime import datetime, timezone

    job = new_job(ws, dataset_id)
    ws.store.jobs.update(job["id"], remote_id="mc-stages")
    bedrock, stub = stubbed("bedrock")
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)

    def described(training: str) -> dict:
        return {
            "jobArn": f"arn:aws:bedrock:{REGION}:123456789012:model-customization-job/{ACTIVE_CLAUDE}/abcdef123456",
            "jobName": "mc-stages", "outputModelName": "mc-stages", "roleArn": ROLE, "status": "InProgress",
            "creationTime": now, "baseModelArn": f"arn:aws:bedrock:{REGION}::foundation-model/{ACTIVE_CLAUDE}",
            "hyperParameters": {"epochCount": "2"}, "trainingDataConfig": {"s3Uri": f"s3://{BUCKET}/d.jsonl"},
            "outputDataConfig": {"s3Uri": f"s3://{BUCKET}/out/"}, "validationDataConfig": {"validators": []},
            "statusDetails": {
                "validationDetails": {"status": "Completed"},
                "dataProcessingDetails": {"status": "Completed"},
                "trainingDetails": {"status": training},
            },
        }

    for training in ("NotStarted", "NotStarted", "InProgress"):
        stub.add_response("get_model_customization_job", described(training), {"jobIdentifier": "mc-stages"})
    with stub, clients.use_clients({"bedrock": bedrock}):
        for _ in range(3):
            BedrockProvider().refresh(ws, ws.store.jobs.get(job["id"]))
    stub.assert_no_pending_responses()
    stage_events = [e["message"] for e in ws.store.jobs.events(job["id"], limit=None) if e["message"].startswith("Bedrock stage")]
    assert stage_events == [
        "Bedrock stage dataProcessing: Completed", "Bedrock stage training: NotStarted", "Bedrock stage validation: Completed",
        "Bedrock stage training: InProgress",
    ]
    assert ws.store.jobs.get(job["id"])["status"] == "running"


def test_completed_job_registers_the_model_with_lineage_and_records_metrics(ws, aws, dataset_id):
    provider = BedrockProvider()
    job = submit(ws, new_job(ws, dataset_id))
    output_key = job["details"]["output_data"].removeprefix(f"s3://{BUCKET}/")
    artifacts = f"{output_key}model-customization-job-abc123def456/"
    aws.s3.put_object(
        Bucket=BUCKET,
        Key=artifacts + "training_artifacts/step_wise_training_metrics.csv",
        Body=b"step_number,epoch_number,training_loss,perplexity\n0,0,2.5,12.18\n1,0,2.0,7.39\n2,1,1.25,3.49\n",
    )
    aws.s3.put_object(
        Bucket=BUCKET,
        Key=artifacts + "validation_artifacts/post_fine_tuning_validation/validation/validation_metrics.csv",
        Body=b"step_number,epoch_number,validation_loss,perplexity\n2,1,1.5,4.48\n",
    )
    moto_job(job["remote_id"]).status = "Completed"
    provider.refresh(ws, ws.store.jobs.get(job["id"]))

    row = ws.store.jobs.get(job["id"])
    assert row["status"] == "succeeded" and row["remote_status"] == "Completed"
    model = ws.store.models.get(row["model_id"])
    assert row["model_id"] == job["details"]["custom_model_name"]
    assert (model["provider"], model["kind"], model["base_model"], model["dataset_id"], model["job_id"]) == ("bedrock", "tuned", NOVA_LITE, dataset_id, job["id"])
    described = aws.bedrock.get_model_customization_job(jobIdentifier=job["remote_id"])
    assert model["details"]["model_arn"] == described["outputModelArn"]
    metrics = [(m["step"], m["epoch"], m["train_loss"], m["validation_loss"]) for m in ws.store.jobs.metrics(job["id"])]
    assert metrics == [(0, 0.0, 2.5, None), (1, 0.0, 2.0, None), (2, 1.0, 1.25, 1.5)]
    assert (row["step"], row["train_loss"], row["validation_loss"]) == (2, 1.25, 1.5)
    provider.refresh(ws, ws.store.jobs.get(job["id"]))  # a second poll adds nothing
    assert len(ws.store.jobs.metrics(job["id"])) == 3 and len(ws.store.models.all()) == 1

    listed = list_remote_jobs(ws, limit=5)
    assert [(j["job_name"], j["status"], j["job_id"]) for j in listed["jobs"]] == [(job["remote_id"], "succeeded", job["id"])]


def test_cancel_stops_the_job_by_name(ws, aws, dataset_id):
    provider = BedrockProvider()
    job = submit(ws, new_job(ws, dataset_id))
    provider.cancel(ws, ws.store.jobs.get(job["id"]))
    assert moto_job(job["remote_id"]).status == "Stopped"
    provider.refresh(ws, ws.store.jobs.get(job["id"]))
    assert ws.store.jobs.get(job["id"])["status"] == "cancelled"
    gone = dict(ws.store.jobs.get(job["id"]), remote_id="no-such-job")
    with pytest.raises(NotFoundError):
        provider.cancel(ws, gone)


# --- provisioned throughput and chat ------------------------------------------------------------------------------
@pytest.fixture
def tuned_model(ws) -> str:
    model_arn = f"arn:aws:bedrock:{REGION}:123456789012:custom-model/anthropic.claude-3-5-haiku-20241022-v1:0:200k/abcdef123456"
    ws.store.models.add(
        {"id": "triage-mc-0123", "provider": "bedrock", "kind": "tuned", "base_model": ACTIVE_CLAUDE, "path": None, "job_id": "job-1", "dataset_id": "ds-1", "details": {"model_arn": model_arn}}
    )
    return "triage-mc-0123"


def test_provisioning_is_refused_without_confirm_and_done_with_it(ws, aws_env, tuned_model):
    # confirm=True here is the operator-allowed argument confirmation (by default only a person confirms).
    ws.settings = dataclasses.replace(ws.settings, allow_argument_confirmation=True)
    bedrock, stub = stubbed("bedrock")
    model_arn = ws.store.models.get(tuned_model)["details"]["model_arn"]
    with stub, clients.use_clients({"bedrock": bedrock}):
        with pytest.raises(UserError) as refused:
            provision_throughput(ws, tuned_model)  # no AWS call: the stub has no response queued
        assert "hour" in str(refused.value) and "confirm=true" in str(refused.value)
        assert "provisioned_model_arn" not in ws.store.models.get(tuned_model)["details"]

        stub.add_response(
            "create_provisioned_model_throughput",
            {"provisionedModelArn": PT_ARN},
            {"modelUnits": 1, "provisionedModelName": "pt-triage-mc-0123", "modelId": model_arn, "clientRequestToken": ANY, "tags": ANY},
        )
        created = provision_throughput(ws, tuned_model, confirm=True)
        assert created["provisioned_model_arn"] == PT_ARN and created["status"] == "Creating"
        assert ws.store.models.get(tuned_model)["details"]["provisioned_model_arn"] == PT_ARN

        from datetime import datetime, timezone

        now = datetime(2026, 11, 1, tzinfo=timezone.utc)
        stub.add_response(
            "get_provisioned_model_throughput",
            {
                "modelUnits": 1, "desiredModelUnits": 1, "provisionedModelName": "pt-triage-mc-0123", "provisionedModelArn": PT_ARN,
                "modelArn": model_arn, "desiredModelArn": model_arn, "foundationModelArn": f"arn:aws:bedrock:{REGION}::foundation-model/{ACTIVE_CLAUDE}",
                "status": "InService", "creationTime": now, "lastModifiedTime": now,
            },
            {"provisionedModelId": PT_ARN},
        )
        assert throughput_status(ws, tuned_model)["status"] == "InService"

        stub.add_response("delete_provisioned_model_throughput", {}, {"provisionedModelId": PT_ARN})
        assert release_throughput(ws, tuned_model)["released"] == PT_ARN
        assert "provisioned_model_arn" not in ws.store.models.get(tuned_model)["details"]
        with pytest.raises(UserError, match="provision_throughput"):
            throughput_status(ws, tuned_model)
    stub.assert_no_pending_responses()


def _converse_reply(text: str) -> dict:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 42, "outputTokens": 7, "totalTokens": 49},
        "metrics": {"latencyMs": 120},
    }


def test_chat_goes_through_the_provisioned_throughput_with_the_converse_api(ws, aws_env, tuned_model):
    details = ws.store.models.get(tuned_model)["details"]
    messages = [
        {"role": "system", "content": "You triage log lines."},
        {"role": "user", "content": "WARN job failed after 9 attempts"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "grep", "arguments": "{\"q\": \"job\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "3 matches"},
        {"role": "user", "content": "so?"},
    ]
    with pytest.raises(UserError, match="provision_throughput"):
        bedrock_chat.chat(ws, tuned_model, messages, max_tokens=64, temperature=0.0, seed=None)

    ws.store.models.update(tuned_model, details={**details, "provisioned_model_arn": PT_ARN})
    runtime, stub = stubbed("bedrock-runtime")
    sent: list[dict] = []
    runtime.meta.events.register("before-parameter-build.bedrock-runtime.Converse", lambda params, **_: sent.append(dict(params)))
    stub.add_response("converse", _converse_reply("TRIAGE severity=medium"), {"modelId": PT_ARN, "messages": ANY, "system": ANY, "inferenceConfig": ANY})
    stub.add_response("converse", _converse_reply("hello"), {"modelId": NOVA_LITE, "messages": ANY, "inferenceConfig": ANY})
    with stub, clients.use_clients({"bedrock-runtime": runtime}):
        reply = bedrock_chat.chat(ws, tuned_model, messages, max_tokens=64, temperature=0.0, seed=7)
        base = bedrock_chat.chat(ws, f"bedrock:{NOVA_LITE}", [{"role": "user", "content": "hi"}], max_tokens=8, temperature=0.5, seed=None)
    stub.assert_no_pending_responses()
    assert reply["text"] == "TRIAGE severity=medium" and (reply["prompt_tokens"], reply["completion_tokens"]) == (42, 7)
    assert reply["model"] == tuned_model and reply["seconds"] >= 0 and reply["stop_reason"] == "end_turn"
    assert base["text"] == "hello"
    first = sent[0]
    assert first["inferenceConfig"] == {"maxTokens": 64, "temperature": 0.0}
    assert first["system"] == [{"text": "You triage log lines."}]
    assert [m["role"] for m in first["messages"]] == ["user", "assistant", "user"]
    texts = [m["content"][0]["text"] for m in first["messages"]]
    assert "<tool_call>" in texts[1] and "<tool_result>3 matches</tool_result>" in texts[2]
    assert "system" not in sent[1]


def test_hyperparameters_module_does_not_load_boto3():
    code = "import sys, model_customization.providers.bedrock.hyperparameters; print('boto3' in sys.modules or 'botocore' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
