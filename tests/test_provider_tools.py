"""The provider tools through the in-process MCP client: OpenAI training files and Bedrock provisioned throughput.

OpenAI is the stateful fake of tests/openai_fake.py (every request and response checked against OpenAI's published
spec). Bedrock is a botocore Stubber, which checks each request against the service model and fails on any call
that has no response queued: a test that queues nothing proves that nothing was bought.
"""

from __future__ import annotations

import dataclasses

import json
from datetime import datetime, timezone

import boto3
import pytest
from botocore.stub import ANY, Stubber
from mcp import Client, types

from openai_fake import serving
from model_customization.providers.bedrock import clients
from model_customization.server.app import build_server

pytestmark = pytest.mark.anyio

API_KEY = "sk-test-provider-tools-SECRET-0123456789"
REGION = "us-west-2"
SECRET = "wJalrXUtnFEMI-provider-tools-not-a-secret"
TUNED = "triage-mc-0123"
MODEL_ARN = f"arn:aws:bedrock:{REGION}:123456789012:custom-model/anthropic.claude-3-5-haiku-20241022-v1:0:200k/abcdef123456"
PT_ARN = f"arn:aws:bedrock:{REGION}:123456789012:provisioned-model/abcdef123456"
PT_NAME = "pt-triage-mc-0123"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def call_ok(client: Client, name: str, args: dict) -> dict:
    result = await client.call_tool(name, args)
    assert not result.is_error, f"{name} failed: {text_of(result)}"
    assert result.structured_content is not None and json.loads(text_of(result)) == result.structured_content
    return result.structured_content


async def call_error(client: Client, name: str, args: dict) -> str:
    result = await client.call_tool(name, args)
    assert result.is_error, f"{name} should have failed, got {result.structured_content}"
    return text_of(result)


# --- OpenAI training files ---------------------------------------------------------------------------------------------
@pytest.fixture
def fake(ws, monkeypatch: pytest.MonkeyPatch):
    with serving(monkeypatch, API_KEY, ws=ws, fine_tuned_before=False) as server:
        yield server


@pytest.fixture
def dataset_id(ws, demo_paths) -> str:
    from model_customization.datasets.build import build_dataset

    return build_dataset(ws, demo_paths).dataset_id


async def test_upload_reuses_the_same_content_and_lists_pages(ws, fake, dataset_id):
    async with Client(build_server(ws=ws)) as client:
        first = await call_ok(client, "upload_training_file", {"dataset_id": dataset_id})
        again = await call_ok(client, "upload_training_file", {"dataset_id": dataset_id, "split": "train"})
        validation = await call_ok(client, "upload_training_file", {"dataset_id": dataset_id, "split": "validation"})

        page = await call_ok(client, "list_training_files", {"limit": 1})
        rest = await call_ok(client, "list_training_files", {"limit": 1, "after": page["next_after"]})

    assert first["how"] == "uploaded" and not first["reused"] and first["split"] == "train" and first["examples"] > 0
    assert again["file_id"] == first["file_id"] and again["reused"] and again["how"] == "reused"
    assert validation["file_id"] != first["file_id"] and validation["sha256"] != first["sha256"]
    assert fake.count("POST", "/files") == 2  # train once, validation once
    # What OpenAI holds is exactly the rendered split: the hash names its bytes.
    stored = fake.files[first["file_id"]]["object"]
    assert stored["purpose"] == "fine-tune" and stored["bytes"] == first["bytes"] and first["sha256"] in stored["filename"]

    assert page["has_more"] and page["next_after"] == validation["file_id"]
    assert [f["file_id"] for f in page["files"]] == [validation["file_id"]]
    assert page["files"][0]["sha256"] == validation["sha256"] and page["files"][0]["uploaded_from_this_data_home"]
    assert [f["file_id"] for f in rest["files"]] == [first["file_id"]] and not rest["has_more"] and rest["next_after"] is None


async def test_delete_removes_the_file_and_a_later_upload_sends_it_again(ws, fake, dataset_id):
    async with Client(build_server(ws=ws)) as client:
        uploaded = await call_ok(client, "upload_training_file", {"dataset_id": dataset_id})
        deleted = await call_ok(client, "delete_training_file", {"file_id": uploaded["file_id"]})
        assert deleted == {"file_id": uploaded["file_id"], "deleted": True}
        assert uploaded["file_id"] not in fake.files
        assert ws.store.provider_files.find("openai", uploaded["sha256"]) == []
        assert (await call_ok(client, "list_training_files", {}))["files"] == []

        missing = await call_error(client, "delete_training_file", {"file_id": uploaded["file_id"]})
        assert "list_training_files" in missing and uploaded["file_id"] in missing

        again = await call_ok(client, "upload_training_file", {"dataset_id": dataset_id})
    assert again["how"] == "uploaded" and again["file_id"] != uploaded["file_id"] and again["sha256"] == uploaded["sha256"]
    assert fake.count("POST", "/files") == 2


async def test_file_tool_errors_name_the_fix_and_never_the_key(ws, fake, dataset_id, monkeypatch):
    async with Client(build_server(ws=ws)) as client:
        unknown = await call_error(client, "upload_training_file", {"dataset_id": "ds-000000000000"})
        bad_limit = await client.call_tool("list_training_files", {"limit": 0})  # refused by the input schema
        fake.fail("GET", "/files", 401, code="invalid_api_key", message=f"Incorrect API key provided: {API_KEY}")
        unauthorised = await call_error(client, "list_training_files", {})
        monkeypatch.delenv("OPENAI_API_KEY")
        no_key = await call_error(client, "upload_training_file", {"dataset_id": dataset_id})
    assert "ds-000000000000" in unknown and "list_datasets" in unknown
    assert bad_limit.is_error
    assert API_KEY not in unauthorised and "list files" in unauthorised
    assert "OPENAI_API_KEY" in no_key
    assert fake.count("POST", "/files") == 0
    assert API_KEY not in json.dumps([unknown, unauthorised, no_key])


# --- Bedrock provisioned throughput ------------------------------------------------------------------------------------
@pytest.fixture
def bedrock(ws, monkeypatch: pytest.MonkeyPatch):
    """A Stubber-backed Bedrock client used by the domain, and a tuned Bedrock model in the registry."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTINGONLY00000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv(clients.REGION_ENV, REGION)
    # These tests buy with confirm=true as an operator who allowed argument confirmation; the default (only a person
    # confirms) is tested in tests/test_spending_everywhere.py.
    ws.settings = dataclasses.replace(ws.settings, allow_argument_confirmation=True)
    ws.store.models.add(
        {"id": TUNED, "provider": "bedrock", "kind": "tuned", "base_model": "anthropic.claude-3-5-haiku-20241022-v1:0:200k", "path": None, "job_id": "job-1", "dataset_id": "ds-1", "details": {"model_arn": MODEL_ARN}}
    )
    client = boto3.client("bedrock", region_name=REGION)
    stub = Stubber(client)
    with stub, clients.use_clients({"bedrock": client}):
        yield stub
    stub.assert_no_pending_responses()


def expect_create(stub: Stubber, *, model_units: int = 1, commitment: str | None = None) -> None:
    expected = {"modelUnits": model_units, "provisionedModelName": PT_NAME, "modelId": MODEL_ARN, "clientRequestToken": ANY, "tags": ANY}
    if commitment:
        expected["commitmentDuration"] = commitment
    stub.add_response("create_provisioned_model_throughput", {"provisionedModelArn": PT_ARN}, expected)


def expect_status(stub: Stubber, status: str = "InService") -> None:
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    stub.add_response(
        "get_provisioned_model_throughput",
        {
            "modelUnits": 1, "desiredModelUnits": 1, "provisionedModelName": PT_NAME, "provisionedModelArn": PT_ARN,
            "modelArn": MODEL_ARN, "desiredModelArn": MODEL_ARN, "foundationModelArn": f"arn:aws:bedrock:{REGION}::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0:200k",
            "status": status, "creationTime": now, "lastModifiedTime": now,
        },
        {"provisionedModelId": PT_ARN},
    )


def provisioned_arn(ws) -> str | None:
    return ws.store.models.get(TUNED)["details"].get("provisioned_model_arn")


async def test_without_confirm_or_elicitation_nothing_is_bought(ws, bedrock):
    async with Client(build_server(ws=ws)) as client:  # a client without elicitation
        refused = await call_error(client, "provision_throughput", {"model_id": TUNED, "model_units": 2})
    # The stub has nothing queued: any AWS call would have failed the call with another message.
    assert "hour" in refused and "2 model unit" in refused and "confirm=true" in refused and "Ask the user" in refused
    assert "nothing was bought" in refused
    assert provisioned_arn(ws) is None


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # input-required round trip (2026-07-28) and a mid-call request
async def test_an_accepted_elicitation_buys_it(ws, bedrock, mode):
    asked: list[types.ElicitRequestParams] = []

    async def accept(context, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params)
        return types.ElicitResult(action="accept", content={"confirm": True})

    expect_create(bedrock, commitment="OneMonth")
    async with Client(build_server(ws=ws), elicitation_callback=accept, mode=mode) as client:
        bought = await call_ok(client, "provision_throughput", {"model_id": TUNED, "commitment": "OneMonth"})
    assert len(asked) == 1
    question = asked[0].message
    assert TUNED in question and "by the hour" in question and "OneMonth" in question and "whole term" in question
    assert asked[0].requested_schema["properties"]["confirm"]["type"] == "boolean"
    assert bought["provisioned_model_arn"] == PT_ARN and bought["status"] == "Creating" and bought["commitment"] == "OneMonth"
    assert "throughput_status" in bought["next"]
    assert provisioned_arn(ws) == PT_ARN


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize(("action", "content"), [("decline", None), ("cancel", None), ("accept", {"confirm": False})])
async def test_an_elicitation_that_does_not_confirm_buys_nothing(ws, bedrock, action, content, mode):
    asked: list[str] = []

    async def respond(context, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action=action, content=content)

    async with Client(build_server(ws=ws), elicitation_callback=respond, mode=mode) as client:
        refused = await call_error(client, "provision_throughput", {"model_id": TUNED})
    assert len(asked) == 1
    assert "did not confirm" in refused and "Nothing was bought" in refused and action in refused
    assert provisioned_arn(ws) is None


async def test_confirm_true_alone_buys_nothing_unless_the_operator_allowed_it(ws, bedrock):
    """By default the agent cannot approve the hourly bill itself: confirm=true is refused without a person, and a
    client that can ask its user is asked anyway."""
    ws.settings = dataclasses.replace(ws.settings, allow_argument_confirmation=False)
    async with Client(build_server(ws=ws)) as client:  # a client without elicitation
        refused = await call_error(client, "provision_throughput", {"model_id": TUNED, "confirm": True})
    assert "confirm=true cannot approve spending on this server" in refused and "MODEL_CUSTOMIZATION_ALLOW_ARGUMENT_CONFIRMATION" in refused
    assert provisioned_arn(ws) is None

    asked: list[str] = []

    async def decline(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="decline")

    async with Client(build_server(ws=ws), elicitation_callback=decline) as client:
        declined = await call_error(client, "provision_throughput", {"model_id": TUNED, "confirm": True})
    assert len(asked) == 1 and "did not confirm" in declined and provisioned_arn(ws) is None


async def test_confirm_true_buys_without_asking_then_status_and_release(ws, bedrock):
    asked: list[str] = []

    async def must_not_be_asked(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="decline")

    async with Client(build_server(ws=ws), elicitation_callback=must_not_be_asked) as client:
        expect_create(bedrock)
        bought = await call_ok(client, "provision_throughput", {"model_id": TUNED, "confirm": True})
        assert bought["provisioned_model_arn"] == PT_ARN and bought["model_units"] == 1 and bought["commitment"] is None
        assert "release_throughput" in bought["billing"]

        # Asked again: nothing new is bought, the current state comes back (one get, no create queued).
        expect_status(bedrock, "Creating")
        repeated = await call_ok(client, "provision_throughput", {"model_id": TUNED})
        assert repeated["status"] == "Creating" and "already provisioned" in repeated["note"]

        expect_status(bedrock, "InService")
        status = await call_ok(client, "throughput_status", {"model_id": TUNED})
        assert status["status"] == "InService" and status["provisioned_model_name"] == PT_NAME and status["model_units"] == 1

        bedrock.add_response("delete_provisioned_model_throughput", {}, {"provisionedModelId": PT_ARN})
        released = await call_ok(client, "release_throughput", {"model_id": TUNED})
        assert released["released"] == PT_ARN and "billing stops" in released["note"]
        assert provisioned_arn(ws) is None

        after = await call_error(client, "throughput_status", {"model_id": TUNED})
        again = await call_error(client, "release_throughput", {"model_id": TUNED})
    assert asked == []
    assert "provision_throughput" in after and "no provisioned throughput" in again


async def test_release_of_throughput_already_gone_at_bedrock_forgets_it(ws, bedrock):
    ws.store.models.update(TUNED, details={"model_arn": MODEL_ARN, "provisioned_model_arn": PT_ARN})
    bedrock.add_client_error("delete_provisioned_model_throughput", "ResourceNotFoundException", "not found", 404, expected_params={"provisionedModelId": PT_ARN})
    async with Client(build_server(ws=ws)) as client:
        released = await call_ok(client, "release_throughput", {"model_id": TUNED})
    assert released["released"] == PT_ARN and "no longer existed" in released["note"]
    assert provisioned_arn(ws) is None


async def test_models_that_cannot_have_throughput_are_refused_without_asking(ws, bedrock):
    ws.store.models.add({"id": "ft-local-1", "provider": "local", "kind": "tuned", "base_model": "x", "path": None, "job_id": "job-2", "dataset_id": "ds-1", "details": {}})
    asked: list[str] = []

    async def accept(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"confirm": True})

    async with Client(build_server(ws=ws), elicitation_callback=accept) as client:
        unknown = await call_error(client, "provision_throughput", {"model_id": "no-such-model"})
        local = await call_error(client, "provision_throughput", {"model_id": "ft-local-1"})
        bad_units = await client.call_tool("provision_throughput", {"model_id": TUNED, "model_units": 0})
        bad_term = await client.call_tool("provision_throughput", {"model_id": TUNED, "commitment": "OneYear"})
        status = await call_error(client, "throughput_status", {"model_id": "no-such-model"})
    assert asked == []  # nothing to buy: the user is not bothered
    assert "no-such-model" in unknown and "not found" in unknown
    assert "local model" in local and "Bedrock" in local
    assert bad_units.is_error and bad_term.is_error
    assert "no-such-model" in status


async def test_aws_errors_reach_the_agent_without_secrets(ws, bedrock):
    bedrock.add_client_error(
        "create_provisioned_model_throughput", "ServiceQuotaExceededException", "Quota for model units exceeded", 400, expected_params={"modelUnits": 1, "provisionedModelName": PT_NAME, "modelId": MODEL_ARN, "clientRequestToken": ANY, "tags": ANY}
    )
    async with Client(build_server(ws=ws)) as client:
        refused = await call_error(client, "provision_throughput", {"model_id": TUNED, "confirm": True})
    assert "Quota for model units exceeded" in refused and SECRET not in refused
    assert provisioned_arn(ws) is None
