"""Bedrock's model families: discovery of what an account may fine-tune, the default base, refusals before any
upload, one stored dataset rendered and checked per family, and each family's hyperparameters.

ListFoundationModels is not served by moto, so a botocore Stubber answers it (the Stubber checks each request and
response against botocore's service model); S3 and the customization jobs are moto's. The training files are
checked against JSON Schemas written here from Bedrock's data-preparation guides (bedrock-conversation-2024 for
Nova and Llama 3.2, prompt/completion for Llama 3.1, Titan and Cohere).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import boto3
import jsonschema
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from model_customization.datasets.build import build_dataset, read_split
from model_customization.datasets.inspect import inspect_dataset
from model_customization.errors import ConfirmationNeeded, UserError
from model_customization.jobs.orchestrator import start_job
from model_customization.providers.bedrock import clients, formats
from model_customization.providers.bedrock.families import FAMILIES, family_for
from model_customization.providers.bedrock.hyperparameters import resolve, to_api
from model_customization.providers.bedrock.provider import BedrockProvider
from model_customization.providers.bedrock.training import render_split

REGION = "us-west-2"
BUCKET = "mc-families-bucket"
ROLE = "arn:aws:iam::123456789012:role/bedrock-customization"
NOVA_LITE = "amazon.nova-lite-v1:0:300k"
NOVA_MICRO = "amazon.nova-micro-v1:0:128k"
NOVA_2_LITE = "amazon.nova-2-lite-v1:0:256k"
LLAMA_31_8B = "meta.llama3-1-8b-instruct-v1:0:128k"
LLAMA_32_3B = "meta.llama3-2-3b-instruct-v1:0:128k"
CLAUDE_HAIKU = "anthropic.claude-3-haiku-20240307-v1:0:200k"
TITAN_EXPRESS = "amazon.titan-text-express-v1:0:8k"
COHERE_LIGHT = "cohere.command-light-text-v14:7:4k"

# One training row of bedrock-conversation-2024 with text only (Nova User Guide "Preparing data for fine-tuning
# Understanding models"; Bedrock's "Prepare data for fine-tuning text-to-text models", Converse API format).
CONVERSATION_ROW = {
    "type": "object",
    "required": ["schemaVersion", "messages"],
    "additionalProperties": False,
    "properties": {
        "schemaVersion": {"const": "bedrock-conversation-2024"},
        "system": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/text"}},
        "messages": {
            "type": "array",
            "minItems": 2,
            "prefixItems": [{"$ref": "#/$defs/user"}],
            "items": {"anyOf": [{"$ref": "#/$defs/user"}, {"$ref": "#/$defs/assistant"}]},
        },
    },
    "$defs": {
        "text": {"type": "object", "required": ["text"], "additionalProperties": False, "properties": {"text": {"type": "string", "minLength": 1}}},
        "content": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/text"}},
        "user": {"type": "object", "required": ["role", "content"], "additionalProperties": False, "properties": {"role": {"const": "user"}, "content": {"$ref": "#/$defs/content"}}},
        "assistant": {"type": "object", "required": ["role", "content"], "additionalProperties": False, "properties": {"role": {"const": "assistant"}, "content": {"$ref": "#/$defs/content"}}},
    },
}
PROMPT_COMPLETION_ROW = {
    "type": "object",
    "required": ["prompt", "completion"],
    "additionalProperties": False,
    "properties": {"prompt": {"type": "string", "minLength": 1}, "completion": {"type": "string", "minLength": 1}},
}


def check_conversation(row: dict) -> None:
    """The schema, plus what a schema cannot say: turns alternate, starting with user and ending with assistant."""
    jsonschema.validate(row, CONVERSATION_ROW)
    roles = [m["role"] for m in row["messages"]]
    assert roles == ["user", "assistant"] * (len(roles) // 2), roles


def summary(model_id: str, provider: str, *, lifecycle: str = "ACTIVE", output: str = "TEXT", customizations: list[str] | None = None) -> dict:
    return {
        "modelArn": f"arn:aws:bedrock:{REGION}::foundation-model/{model_id}",
        "modelId": model_id,
        "providerName": provider,
        "inputModalities": ["TEXT"],
        "outputModalities": [output],
        "customizationsSupported": customizations or ["FINE_TUNING"],
        "modelLifecycle": {"status": lifecycle},
    }


# What a us-west-2 account with model access sees, by Bedrock's table of fine-tunable models (checked 2026-12-06),
# plus the retired Claude 3 Haiku, an image model and a text model this product has no format for.
OFFERED = [
    summary(NOVA_MICRO, "Amazon", customizations=["FINE_TUNING", "DISTILLATION"]),
    summary(NOVA_LITE, "Amazon", customizations=["FINE_TUNING", "DISTILLATION"]),
    summary(LLAMA_31_8B, "Meta"),
    summary(LLAMA_32_3B, "Meta"),
    summary(CLAUDE_HAIKU, "Anthropic", lifecycle="LEGACY"),
    summary("amazon.titan-image-generator-v2:0", "Amazon", output="IMAGE"),
    summary("amazon.nova-9-omni-v1:0:1000k", "Amazon"),
]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTINGONLY00000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv(clients.REGION_ENV, REGION)
    monkeypatch.setenv(clients.BUCKET_ENV, BUCKET)
    monkeypatch.setenv(clients.ROLE_ENV, ROLE)
    monkeypatch.delenv(clients.PREFIX_ENV, raising=False)
    monkeypatch.delenv(clients.PRICE_ENV, raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        moto_bedrock = boto3.client("bedrock", region_name=REGION)
        with clients.use_clients({"s3": s3, "bedrock": moto_bedrock}):
            yield type("Aws", (), {"s3": s3, "bedrock": moto_bedrock})


def listing(models: list[dict], calls: int = 1):
    """A bedrock client whose ListFoundationModels answers `models` (checked against botocore's model), `calls` times."""
    client = boto3.client("bedrock", region_name=REGION)
    stub = Stubber(client)
    for _ in range(calls):
        stub.add_response("list_foundation_models", {"modelSummaries": models}, {"byCustomizationType": "FINE_TUNING"})
    return client, stub


@pytest.fixture
def dataset_id(ws, demo_paths) -> str:
    return build_dataset(ws, demo_paths).dataset_id


def uploaded(aws) -> list[str]:
    return [o["Key"] for o in aws.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


# --- discovery and the default ------------------------------------------------------------------------------------
def test_discovery_offers_nova_and_llama_and_picks_nova_lite_by_default(ws, aws):
    client, stub = listing(OFFERED, calls=6)
    provider = BedrockProvider()
    with stub, clients.use_clients({"bedrock": client}):
        assert provider.check_available(ws, None, "sft") == NOVA_LITE
        assert provider.check_available(ws, LLAMA_31_8B, "sft") == LLAMA_31_8B
        assert provider.check_available(ws, f"bedrock:{LLAMA_32_3B}", "sft") == LLAMA_32_3B
        assert provider.check_available(ws, f"arn:aws:bedrock:{REGION}::foundation-model/{NOVA_MICRO}", "sft") == NOVA_MICRO
        assert provider.check_available(ws, "amazon.nova-lite-v1:0", "sft") == NOVA_LITE  # the id without its context suffix
        with pytest.raises(UserError) as no_format:
            provider.check_available(ws, "amazon.nova-9-omni-v1:0:1000k", "sft")
    stub.assert_no_pending_responses()
    assert "no training format" in str(no_format.value) and NOVA_LITE in str(no_format.value) and LLAMA_31_8B in str(no_format.value)


@pytest.mark.parametrize(
    ("offered", "default"),
    [
        ([summary(LLAMA_31_8B, "Meta"), summary(LLAMA_32_3B, "Meta"), summary(TITAN_EXPRESS, "Amazon")], LLAMA_32_3B),  # chat format first
        ([summary(TITAN_EXPRESS, "Amazon"), summary(NOVA_MICRO, "Amazon")], NOVA_MICRO),
        ([summary(CLAUDE_HAIKU, "Anthropic")], CLAUDE_HAIKU),  # Claude, where Bedrock still offers it
        ([summary(COHERE_LIGHT, "Cohere"), summary("amazon.titan-image-generator-v2:0", "Amazon", output="IMAGE")], COHERE_LIGHT),
    ],
)
def test_the_default_follows_the_stated_preference_among_what_is_offered(ws, aws, offered, default):
    client, stub = listing(offered)
    with stub, clients.use_clients({"bedrock": client}):
        assert BedrockProvider().check_available(ws, None, "sft") == default


def test_an_unsupported_base_is_refused_before_anything_is_uploaded_naming_the_alternatives(ws, aws, dataset_id):
    client, stub = listing(OFFERED, calls=2)
    with stub, clients.use_clients({"bedrock": client}):
        with pytest.raises(UserError) as refused:
            start_job(ws, dataset_id, provider="bedrock", base_model="meta.llama3-3-70b-instruct-v1:0", confirm_cost_usd=100)
        with pytest.raises(UserError) as claude:
            start_job(ws, dataset_id, provider="bedrock", base_model=CLAUDE_HAIKU, confirm_cost_usd=100)
    message = str(refused.value)
    assert "meta.llama3-3-70b-instruct-v1:0" in message and "not offered" in message and REGION in message
    assert all(model in message for model in (NOVA_LITE, NOVA_MICRO, LLAMA_31_8B, LLAMA_32_3B))
    assert CLAUDE_HAIKU not in message and "titan-image" not in message  # retired and image models are not offered
    # Claude keeps its own clear refusal, with the date and what to use instead.
    assert "2026-09-10" in str(claude.value) and "Claude 3 Haiku" in str(claude.value) and NOVA_LITE in str(claude.value)
    assert uploaded(aws) == [] and ws.store.jobs.all() == []
    assert aws.bedrock.list_model_customization_jobs()["modelCustomizationJobSummaries"] == []


@pytest.mark.parametrize(
    "offered",
    [[], [summary(CLAUDE_HAIKU, "Anthropic", lifecycle="LEGACY"), summary("amazon.titan-image-generator-v2:0", "Amazon", output="IMAGE")]],
    ids=["nothing-offered", "only-retired-claude"],
)
def test_an_account_with_nothing_to_train_gets_the_clear_refusal(ws, aws, dataset_id, offered):
    client, stub = listing(offered, calls=2)
    with stub, clients.use_clients({"bedrock": client}):
        with pytest.raises(UserError) as default:
            BedrockProvider().check_available(ws, None, "sft")
        with pytest.raises(UserError) as claude:
            start_job(ws, dataset_id, provider="bedrock", base_model="anthropic.claude-3-haiku-20240307-v1:0", confirm_cost_usd=100)
    for refusal in (default.value, claude.value):
        text = str(refusal)
        assert "2026-09-10" in text and "Claude 3 Haiku" in text and REGION in text
    assert "provider='local'" in str(default.value)
    assert uploaded(aws) == [] and ws.store.jobs.all() == []


def test_dpo_is_refused_before_discovery_or_upload(ws, aws, dataset_id):
    client, stub = listing(OFFERED, calls=0)  # any AWS call would fail: nothing is queued
    with stub, clients.use_clients({"bedrock": client}), pytest.raises(UserError) as refused:
        BedrockProvider().check_available(ws, NOVA_LITE, "dpo")
    assert "no 'dpo' training" in str(refused.value) and "method='sft'" in str(refused.value)
    assert uploaded(aws) == []


def serve_listing(client, models: list[dict]) -> None:
    """Answer ListFoundationModels on a moto-backed client (moto lacks it), the answer first checked against botocore's
    output shape as the Stubber would; every other call still goes to moto."""
    from botocore.awsrequest import AWSResponse
    from botocore.validate import ParamValidator

    response = {"modelSummaries": models}
    report = ParamValidator().validate(response, client.meta.service_model.operation_model("ListFoundationModels").output_shape)
    assert not report.has_errors(), report.generate_report()
    client.meta.events.register("before-call.bedrock.ListFoundationModels", lambda **_: (AWSResponse(None, 200, {}, None), response))


def test_start_job_on_the_default_nova_asks_a_person_then_trains_once(ws, aws, dataset_id):
    """The orchestrator's whole path: discovery, the unpriced quote stopping at the spending guard with nothing
    uploaded, a person's approval, the job at Bedrock on Nova Lite, and a retried start_job returning that job."""
    serve_listing(aws.bedrock, OFFERED)
    with pytest.raises(ConfirmationNeeded) as asked:
        start_job(ws, dataset_id, provider="bedrock")
    assert asked.value.quote_usd is None and uploaded(aws) == [] and ws.store.jobs.all() == []
    started = start_job(ws, dataset_id, provider="bedrock", hyperparameters={"epochCount": 3}, human_usd=math.inf)
    job = ws.store.jobs.get(started["job_id"])
    assert job["base_model"] == NOVA_LITE and job["details"]["quote"]["family"] == "nova"
    remote = aws.bedrock.get_model_customization_job(jobIdentifier=job["remote_id"])
    assert remote["baseModelArn"].endswith(NOVA_LITE)
    assert remote["hyperParameters"] == {"epochCount": "3", "learningRate": "1e-05", "learningRateWarmupSteps": "10"}
    assert len(uploaded(aws)) == 2
    again = start_job(ws, dataset_id, provider="bedrock", hyperparameters={"epochCount": 3}, human_usd=math.inf)
    assert again["job_id"] == job["id"] and len(aws.bedrock.list_model_customization_jobs()["modelCustomizationJobSummaries"]) == 1


def test_an_option_the_provider_does_not_take_is_refused_before_anything_is_spent_or_recorded(ws, aws, dataset_id):
    """Bedrock takes no seed or metadata: start_job refuses them before the quote, the guard and the ledger, and
    names the providers that do take them."""
    serve_listing(aws.bedrock, OFFERED)
    with pytest.raises(UserError) as refused:
        start_job(ws, dataset_id, provider="bedrock", options={"seed": 7, "metadata": {"team": "a"}}, human_usd=math.inf)
    assert "metadata, seed" in str(refused.value) and "openai" in str(refused.value)
    assert ws.store.jobs.all() == [] and uploaded(aws) == [] and ws.store.spending.since(0) == 0


# --- one stored dataset, each family's format -----------------------------------------------------------------------
def test_one_stored_dataset_renders_and_validates_for_each_family(ws, dataset_id):
    counts = ws.store.datasets.get(dataset_id)["counts"]
    nova, nova_tokens = render_split(ws, dataset_id, "train", NOVA_LITE)
    llama_31, _ = render_split(ws, dataset_id, "train", LLAMA_31_8B)
    llama_32, _ = render_split(ws, dataset_id, "train", LLAMA_32_3B)
    titan, _ = render_split(ws, dataset_id, "train", TITAN_EXPRESS)
    assert len(nova) == len(llama_31) == len(llama_32) == len(titan) == counts["train"]
    for row in nova + llama_32:
        check_conversation(row)
    for row in llama_31 + titan:
        jsonschema.validate(row, PROMPT_COMPLETION_ROW)
    assert all(n > 0 for n in nova_tokens)
    # The same example, two formats: the prompt/completion's completion is the conversation's last assistant turn.
    stored = list(read_split(ws, dataset_id, "train"))
    for example, conversation, flat in zip(stored, nova, llama_31, strict=True):
        assert flat["completion"] == conversation["messages"][-1]["content"][0]["text"]
        assert conversation["messages"][0]["content"][0]["text"] in flat["prompt"]
        if conversation.get("system"):
            assert flat["prompt"].startswith(conversation["system"][0]["text"])
        assert example["messages"][-1]["role"] == "assistant"


def test_a_bad_row_is_refused_with_split_and_line_by_the_family_whose_rule_it_breaks(ws, dataset_id):
    folder = Path(ws.store.datasets.get(dataset_id)["path"])
    train = folder / "train.jsonl"
    lines = train.read_text(encoding="utf-8").splitlines()
    reserved = json.loads(lines[1])
    reserved["messages"][-1]["content"] = "Assistant: the deploy failed twice; retry with --force."
    lines[1] = json.dumps(reserved)
    train.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError) as nova:
        render_split(ws, dataset_id, "train", NOVA_LITE)
    assert "train line 2" in str(nova.value) and "'Assistant:'" in str(nova.value) and "Nothing was uploaded" in str(nova.value)
    render_split(ws, dataset_id, "train", LLAMA_31_8B)  # no such rule for Llama: the same row trains there

    validation = folder / "validation.jsonl"
    rows = validation.read_text(encoding="utf-8").splitlines()
    rows[0] = json.dumps({"messages": [{"role": "assistant", "content": "an answer to no question"}]})
    validation.write_text("\n".join(rows) + "\n", encoding="utf-8")
    for model in (NOVA_MICRO, LLAMA_31_8B, LLAMA_32_3B):
        with pytest.raises(UserError, match="validation line 1: "):
            render_split(ws, dataset_id, "validation", model)


def test_split_sizes_and_row_lengths_follow_each_family(ws, dataset_id):
    with pytest.raises(UserError) as too_few:
        render_split(ws, dataset_id, "train", NOVA_2_LITE)  # Nova 2 Lite needs at least 200 examples
    assert "takes 200 to 20,000 train examples" in str(too_few.value)
    long = {"messages": [{"role": "user", "content": "summarise: " + "word " * 5000}, {"role": "assistant", "content": "ok"}]}
    cohere = family_for(COHERE_LIGHT)
    row = formats.render(cohere, long)
    assert "over the 4096" in formats.problem(cohere, row, formats.row_tokens(cohere, row, "o200k_base"), COHERE_LIGHT)
    llama = family_for(LLAMA_31_8B)
    assert formats.problem(llama, formats.render(llama, long), formats.row_tokens(llama, formats.render(llama, long), "o200k_base"), LLAMA_31_8B) is None


def test_submitted_nova_and_llama_jobs_upload_their_own_formats(ws, aws, dataset_id):
    client, stub = listing(OFFERED, calls=2)
    with stub, clients.use_clients({"bedrock": client}):
        # The stub answers discovery; moto (handed in again below for the job calls) creates the jobs.
        bases = [BedrockProvider().check_available(ws, None, "sft"), BedrockProvider().check_available(ws, LLAMA_31_8B, "sft")]
    jobs = {}
    for base in bases:
        hp = BedrockProvider().parse_hyperparameters("sft", None)
        job_id = f"job-{base[:12].replace('.', '').replace('-', '')}"
        ws.store.jobs.add(
            {"id": job_id, "provider": "bedrock", "base_model": base, "dataset_id": dataset_id, "method": "sft", "hyperparameters": hp,
             "status": "validating", "attempts": 0, "idempotency_key": f"mc-{job_id}", "details": {"options": {}}}
        )
        jobs[base] = BedrockProvider().submit(ws, ws.store.jobs.get(job_id))
    nova, llama = jobs[NOVA_LITE], jobs[LLAMA_31_8B]
    assert aws.bedrock.get_model_customization_job(jobIdentifier=nova["remote_id"])["hyperParameters"] == {
        "epochCount": "2", "learningRate": "1e-05", "learningRateWarmupSteps": "10"
    }
    assert aws.bedrock.get_model_customization_job(jobIdentifier=llama["remote_id"])["hyperParameters"] == {
        "epochCount": "5", "batchSize": "1", "learningRate": "0.0001"
    }

    def lines(uri: str) -> list[dict]:
        body = aws.s3.get_object(Bucket=BUCKET, Key=uri.removeprefix(f"s3://{BUCKET}/"))["Body"].read().decode("utf-8")
        return [json.loads(line) for line in body.splitlines()]

    for row in lines(nova["details"]["training_data"]) + lines(nova["details"]["validation_data"]):
        check_conversation(row)
    for row in lines(llama["details"]["training_data"]) + lines(llama["details"]["validation_data"]):
        jsonschema.validate(row, PROMPT_COMPLETION_ROW)
    assert nova["details"]["training_data"] != llama["details"]["training_data"]


def test_inspect_dataset_applies_the_family_of_the_model_named(ws, dataset_id):
    nova = inspect_dataset(ws, dataset_id=dataset_id, provider="bedrock")
    llama = inspect_dataset(ws, dataset_id=dataset_id, provider="bedrock", model=LLAMA_31_8B)
    assert (nova["model"], nova["family"], nova["data_format"]) == (NOVA_LITE, "nova", "bedrock-conversation-2024")
    assert (llama["family"], llama["data_format"]) == ("llama-3.1", "prompt-completion")
    assert nova["valid"] and llama["valid"]
    assert nova["quote"]["epochs"] == 2 and llama["quote"]["epochs"] == 5  # each family's default
    assert nova["quote"]["estimated_cost_usd"] is None
    few = inspect_dataset(ws, dataset_id=dataset_id, provider="bedrock", model=NOVA_2_LITE)
    assert not few["valid"] and few["finding_counts"].get("bedrock_split_size") == 1
    with pytest.raises(UserError, match="No Bedrock training format"):
        inspect_dataset(ws, dataset_id=dataset_id, provider="bedrock", model="amazon.titan-embed-image-v1:0")


# --- hyperparameters per family -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "raw", "expected"),
    [
        (NOVA_LITE, {"epoch_count": 6}, "epoch_count must be from 1 to 5 for Amazon Nova"),
        (NOVA_LITE, {"learningRate": 0.001}, "learning_rate must be from 1e-06 to 0.0001"),
        (NOVA_LITE, {"batch_size": 8}, "batch_size is not taken by Amazon Nova"),
        (LLAMA_31_8B, {"epoch_count": 11}, "epoch_count must be from 1 to 10 for Meta Llama 3.1"),
        (LLAMA_32_3B, {"batch_size": 2}, "batch_size must be from 1 to 1 for Meta Llama 3.2"),
        (TITAN_EXPRESS, {"batch_size": 65}, "batch_size must be from 1 to 64 for Amazon Titan Text G1"),
        ("amazon.titan-text-premier-v1:0:32k", {"learning_rate_warmup_steps": 30}, "learning_rate_warmup_steps must be from 0 to 20"),
        (CLAUDE_HAIKU, {"learning_rate": 1e-5}, "learning_rate is not taken by Anthropic Claude 3 Haiku"),
        (CLAUDE_HAIKU, {"batch_size": 3}, "batch_size must be from 4 to 256"),
        ("cohere.command-text-v14:7:4k", {"batch_size": 16}, "batch_size must be from 8 to 8 for Cohere Command"),
    ],
)
def test_each_family_refuses_what_it_does_not_take_and_names_what_it_does(model, raw, expected):
    family = family_for(model)
    values = BedrockProvider().parse_hyperparameters("sft", raw)  # within some family's range: parsing accepts it
    with pytest.raises(UserError) as refused:
        resolve(family, model, values)
    assert expected in str(refused.value) and family.title in str(refused.value)
    assert all(name in str(refused.value) for name in family.hyperparameters)  # it names what the family does take


def test_each_family_maps_to_its_api_names_with_its_defaults():
    def api(model: str, raw: dict, validation: bool) -> dict:
        family = family_for(model)
        return to_api(family, resolve(family, model, BedrockProvider().parse_hyperparameters("sft", raw)), with_validation=validation)

    assert api(NOVA_MICRO, {"epochCount": 3}, True) == {"epochCount": "3", "learningRate": "1e-05", "learningRateWarmupSteps": "10"}
    assert api(LLAMA_32_3B, {}, True) == {"epochCount": "5", "batchSize": "1", "learningRate": "0.0001"}
    assert api(TITAN_EXPRESS, {"batch_size": 16}, True) == {"epochCount": "5", "batchSize": "16", "learningRate": "1e-05", "learningRateWarmupSteps": "5"}
    assert api(CLAUDE_HAIKU, {}, False) == {"epochCount": "2", "batchSize": "32", "learningRateMultiplier": "1"}  # early stopping needs validation
    assert api(CLAUDE_HAIKU, {}, True)["earlyStoppingPatience"] == "2"
    # Cohere stops early on its held-out share when no validation file is uploaded, and on the file when one is.
    cohere_alone = {"epochCount": "1", "batchSize": "32", "learningRate": "1e-05", "earlyStoppingThreshold": "0.01", "earlyStoppingPatience": "6"}
    assert api(COHERE_LIGHT, {"batch_size": 32}, False) == {**cohere_alone, "evalPercentage": "20"}
    assert api(COHERE_LIGHT, {"batch_size": 32}, True) == cohere_alone


def test_parsing_refuses_unknown_names_and_values_no_family_takes():
    provider = BedrockProvider()
    assert provider.parse_hyperparameters("sft", {"epochCount": 3, "learning_rate": 2e-5}) == {"epoch_count": 3, "learning_rate": 2e-5}
    with pytest.raises(UserError, match="'epochs' is not a Bedrock hyperparameter"):
        provider.parse_hyperparameters("sft", {"epochs": 3})
    with pytest.raises(UserError, match="epoch_count must be a whole number from 1 to 100"):
        provider.parse_hyperparameters("sft", {"epoch_count": 0})


def test_every_family_is_reachable_and_its_defaults_lie_in_its_ranges():
    for family in FAMILIES:
        assert family.prefixes and all(family_for(prefix + "x") is family for prefix in family.prefixes)
        for name, rule in family.hyperparameters.items():
            assert rule.low <= rule.default <= rule.high, (family.name, name)
